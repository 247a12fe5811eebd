// POST /v1/connections/{id}/revoke: RFC 7009 at the provider (S12) with the configured client auth
// method, local status revoked, tokens no longer served.

import assert from 'node:assert/strict';
import { scenario, connectInBrowser, getConnection, show, tokenSummary, PLUGINS } from './harness.mjs';

for (const [plugin, client] of Object.entries(PLUGINS)) {
  const method = client.token_endpoint_auth_method;
  scenario(`revoke with ${method} (${plugin}): provider revocation (refresh token first), connection revoked, token gone`, {}, async (s) => {
    const { link, params, page } = await connectInBrowser(s, { plugin });
    assert.equal(params.get('status'), 'connected', `landing URL ${page.url()}; ${tokenSummary(s)}`);
    const id = link.connection_id;
    const t0 = await s.admin.token(id);
    assert.equal(t0.status, 200, show(t0));

    const r = await s.admin.revoke(id);
    assert.equal(r.status, 200, `revoke: ${show(r)}`);
    assert.equal(r.json?.status, 'revoked', show(r));
    s.t.diagnostic(`provider_revocation: ${JSON.stringify(r.json?.provider_revocation)}`);

    const revs = s.provider.stats.revocation.requests;
    const summary = JSON.stringify(revs.map((x) => ({ hint: x.token_type_hint, via: x.auth_method, status: x.status })));
    assert.ok(revs.length >= 1, 'the provider revocation endpoint was not called');
    assert.equal(revs[0].token_type_hint, 'refresh_token', `first revocation request: ${summary}`);
    for (const x of revs) {
      assert.equal(x.auth_method, method, `revocation sent with the wrong client auth: ${summary}`);
      assert.equal(x.status, 200, `revocation refused: ${summary}`);
    }

    // The access token is dead at the provider.
    const me = await fetch(s.provider.urls.apiMe, { headers: { authorization: `Bearer ${t0.json.access_token}` } });
    assert.equal(me.status, 401, 'the access token still works at the provider after revoke');

    assert.equal((await getConnection(s, id)).status, 'revoked');
    const t1 = await s.admin.token(id);
    assert.notEqual(t1.status, 200, `a revoked connection still serves a token: ${show(t1)}`);
    const tokenCalls = s.provider.stats.token.total;
    const t2 = await s.admin.token(id, { forceRefresh: true });
    assert.notEqual(t2.status, 200, `a revoked connection refreshed: ${show(t2)}`);
    assert.equal(s.provider.stats.token.total, tokenCalls, 'a revoked connection called the token endpoint');
  });
}
