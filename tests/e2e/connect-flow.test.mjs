// Full connect flow in a real browser against a real provider, for both client auth methods.

import assert from 'node:assert/strict';
import { scenario, connectInBrowser, getConnection, show, screenshot, tokenSummary, PLUGINS, TENANT } from './harness.mjs';

for (const [plugin, client] of Object.entries(PLUGINS)) {
  const method = client.token_endpoint_auth_method;

  scenario(`full flow with ${method} (${plugin}): link -> consent -> connected -> token accepted by provider API`, {}, async (s) => {
    const login = `user-${plugin}`;
    const { link, page, params, callbacks, authorizeRequests } = await connectInBrowser(s, {
      plugin,
      login,
      shotPrefix: `flow-${plugin}`,
    });

    // Landing on the redirect target with the documented query, and nothing secret in it (S7).
    assert.equal(params.get('status'), 'connected', `landing URL ${page.url()}; ${tokenSummary(s)}`);
    assert.equal(params.get('connection_id'), link.connection_id, `landing URL ${page.url()}`);
    assert.equal(params.get('code'), null, `landing URL leaks the code: ${page.url()}`);
    assert.equal(params.get('state'), null, `landing URL leaks the state: ${page.url()}`);
    assert.equal(new URL(page.url()).pathname, '/landing', 'redirect_url path was not kept');
    assert.equal(callbacks.length, 1, `browser requested the callback ${callbacks.length} times`);

    // The authorize request: exact redirect URI, code flow, PKCE S256, state, prompt=consent (S2, S3).
    assert.equal(authorizeRequests.length, 1, `authorize requests: ${authorizeRequests.join('\n')}`);
    const auth = new URL(authorizeRequests[0]).searchParams;
    assert.equal(auth.get('response_type'), 'code');
    assert.equal(auth.get('client_id'), client.client_id);
    assert.equal(auth.get('redirect_uri'), s.redirectUri);
    assert.equal(auth.get('code_challenge_method'), 'S256');
    assert.match(auth.get('code_challenge') ?? '', /^[A-Za-z0-9_-]{43}$/);
    assert.ok((auth.get('state') ?? '').length >= 22, `state too short: ${auth.get('state')}`);
    assert.equal(auth.get('prompt'), 'consent');

    // Exactly one token request, with the configured client auth method, the PKCE verifier and the
    // byte-identical redirect URI.
    const tok = s.provider.stats.token;
    assert.equal(tok.total, 1, `token requests: ${JSON.stringify(tok.requests)}`);
    const [req] = tok.requests;
    assert.equal(req.grant_type, 'authorization_code');
    assert.equal(req.auth_method, method, `appliance used ${req.auth_method}, configured ${method}`);
    assert.equal(req.refused_by_guard, false);
    assert.equal(req.status, 200);
    assert.equal(req.has_code_verifier, true);
    assert.equal(req.redirect_uri, s.redirectUri);

    // Connection record.
    const conn = await getConnection(s, link.connection_id);
    assert.equal(conn.status, 'connected', JSON.stringify(conn));
    assert.equal(conn.id, link.connection_id);
    assert.equal(conn.tenant_id, TENANT);
    assert.equal(conn.plugin, plugin);
    assert.ok(conn.connected_at, `connected_at missing: ${JSON.stringify(conn)}`);

    // The stored access token works at the provider's protected API.
    const t = await s.admin.token(link.connection_id);
    assert.equal(t.status, 200, `GET token: ${show(t)}`);
    assert.ok(t.json.access_token, show(t));
    assert.match(t.json.token_type ?? '', /^bearer$/i);
    assert.ok(t.json.expires_at, `expires_at missing: ${show(t)}`);
    assert.match(t.headers.get('cache-control') ?? '', /no-store/, 'token response lacks Cache-Control: no-store (S13)');
    const me = await fetch(s.provider.urls.apiMe, { headers: { authorization: `Bearer ${t.json.access_token}` } });
    const meText = await me.text();
    assert.equal(me.status, 200, `provider /api/me refused the appliance's token: ${meText}`);
    const body = JSON.parse(meText);
    assert.equal(body.sub, login);
    assert.equal(body.client_id, client.client_id);

    // The hosted page of a used link is gone (410).
    const again = await page.goto(link.connect_url);
    assert.equal(again?.status(), 410, `used link answered ${again?.status()}`);
    await screenshot(page, `flow-${plugin}-5-used-link`);
  });
}
