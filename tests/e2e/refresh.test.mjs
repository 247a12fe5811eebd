// Token refresh: GET /v1/connections/{id}/token?force_refresh=true, expiry-driven refresh,
// rotation (S10), single flight (S10) and invalid_grant -> expired (S11).
//
// The provider rotates refresh tokens and treats the reuse of an old refresh token as theft: it
// answers invalid_grant and kills the whole grant. So "every refresh request answered 200" proves
// the appliance stored each rotated refresh token and never sent one twice.

import assert from 'node:assert/strict';
import { scenario, connectInBrowser, getConnection, show, sleep, tokenSummary, PLUGINS } from './harness.mjs';

async function apiMe(s, accessToken) {
  const r = await fetch(s.provider.urls.apiMe, { headers: { authorization: `Bearer ${accessToken}` } });
  return { status: r.status, text: await r.text() };
}

function refreshRequests(s) {
  return s.provider.stats.token.requests.filter((r) => r.grant_type === 'refresh_token');
}

async function connected(s, plugin) {
  const { link, params, page } = await connectInBrowser(s, { plugin });
  assert.equal(params.get('status'), 'connected', `landing URL ${page.url()}; ${tokenSummary(s)}`);
  return link.connection_id;
}

scenario('force_refresh twice: each rotates the refresh token, uses the configured auth method, and yields a token the provider accepts', {}, async (s) => {
  const plugin = 'oidc_basic';
  const id = await connected(s, plugin);

  const t0 = await s.admin.token(id);
  assert.equal(t0.status, 200, show(t0));
  assert.equal(refreshRequests(s).length, 0, 'a fresh token was refreshed without being asked to');

  const t1 = await s.admin.token(id, { forceRefresh: true });
  assert.equal(t1.status, 200, `force_refresh #1: ${show(t1)}; ${tokenSummary(s)}`);
  assert.notEqual(t1.json.access_token, t0.json.access_token, 'force_refresh returned the old access token');
  assert.match(t1.headers.get('cache-control') ?? '', /no-store/);
  let me = await apiMe(s, t1.json.access_token);
  assert.equal(me.status, 200, `provider refused the refreshed token: ${me.text}`);

  const t2 = await s.admin.token(id, { forceRefresh: true });
  assert.equal(t2.status, 200, `force_refresh #2 (needs the rotated refresh token): ${show(t2)}; ${tokenSummary(s)}`);
  assert.notEqual(t2.json.access_token, t1.json.access_token);
  me = await apiMe(s, t2.json.access_token);
  assert.equal(me.status, 200, `provider refused the second refreshed token: ${me.text}`);

  const refreshes = refreshRequests(s);
  assert.equal(refreshes.length, 2, tokenSummary(s));
  for (const r of refreshes) {
    assert.equal(r.auth_method, PLUGINS[plugin].token_endpoint_auth_method, tokenSummary(s));
    assert.equal(r.status, 200, tokenSummary(s));
  }

  // Without force_refresh the stored (live) token is served as is.
  const t3 = await s.admin.token(id);
  assert.equal(t3.status, 200, show(t3));
  assert.equal(t3.json.access_token, t2.json.access_token, 'a live token was not served from the vault');
  assert.equal(refreshRequests(s).length, 2, 'a plain GET token triggered a refresh');

  assert.equal((await getConnection(s, id)).status, 'connected');
});

scenario('concurrent force_refresh calls are single-flight: no refresh token is ever sent twice (S10)', {}, async (s) => {
  const plugin = 'oidc_post';
  const id = await connected(s, plugin);

  const results = await Promise.all(Array.from({ length: 5 }, () => s.admin.token(id, { forceRefresh: true })));
  for (const r of results) assert.equal(r.status, 200, `concurrent force_refresh: ${show(r)}; ${tokenSummary(s)}`);
  const failed = refreshRequests(s).filter((r) => r.status !== 200);
  assert.deepEqual(failed, [], `refresh requests refused by the provider (refresh token reused?): ${tokenSummary(s)}`);

  // The grant is still alive: one more refresh works and its token is accepted.
  const after = await s.admin.token(id, { forceRefresh: true });
  assert.equal(after.status, 200, `force_refresh after the burst: ${show(after)}; ${tokenSummary(s)}`);
  const me = await apiMe(s, after.json.access_token);
  assert.equal(me.status, 200, me.text);
  for (const r of refreshRequests(s)) assert.equal(r.auth_method, PLUGINS[plugin].token_endpoint_auth_method);
  assert.equal((await getConnection(s, id)).status, 'connected');
});

scenario('an expired access token is refreshed by GET /token without force_refresh', { accessTokenTtl: 2 }, async (s) => {
  const id = await connected(s, 'oidc_basic');
  await sleep(2500); // the provider's access token (TTL 2 s, clockTolerance 0) is now expired
  const t = await s.admin.token(id);
  assert.equal(t.status, 200, `${show(t)}; ${tokenSummary(s)}`);
  const me = await apiMe(s, t.json.access_token);
  assert.equal(me.status, 200, `GET token served an access token the provider refuses (${me.text}); ${tokenSummary(s)}`);
  assert.ok(refreshRequests(s).length >= 1, tokenSummary(s));
  assert.ok(Date.parse(t.json.expires_at) > Date.now(), `expires_at ${t.json.expires_at} is in the past`);
});

scenario('refresh answered invalid_grant -> connection expired, no retry loop (S11)', {}, async (s) => {
  const id = await connected(s, 'oidc_post');
  const t0 = await s.admin.token(id);
  assert.equal(t0.status, 200, show(t0));

  // The user withdraws consent at the provider: grant and all its tokens are gone.
  const { provider } = s.provider;
  const at = await provider.AccessToken.find(t0.json.access_token);
  assert.ok(at, 'provider does not know the appliance access token');
  await provider.RefreshToken.revokeByGrantId(at.grantId);
  await provider.AccessToken.revokeByGrantId(at.grantId);
  const grant = await provider.Grant.find(at.grantId);
  await grant?.destroy();

  const before = refreshRequests(s).length;
  const t1 = await s.admin.token(id, { forceRefresh: true });
  assert.notEqual(t1.status, 200, `force_refresh of a dead grant answered 200: ${show(t1)}`);
  assert.ok(t1.json?.error, `error response is not {"error", "message"}: ${show(t1)}`);
  const attempts = refreshRequests(s).length - before;
  assert.equal(attempts, 1, `expected exactly one refresh attempt, saw ${attempts}: ${tokenSummary(s)}`);

  const conn = await getConnection(s, id);
  assert.equal(conn.status, 'expired', JSON.stringify(conn));

  // And it stays that way without hammering the provider.
  const t2 = await s.admin.token(id);
  assert.notEqual(t2.status, 200, show(t2));
  assert.equal(refreshRequests(s).length - before, 1, `an expired connection kept refreshing: ${tokenSummary(s)}`);
});
