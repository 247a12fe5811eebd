// S1/S5: a callback URL that was already used is refused without touching the token endpoint.

import assert from 'node:assert/strict';
import { scenario, connectInBrowser, getConnection, errorCode, screenshot } from './harness.mjs';

scenario('replayed callback URL in the same browser -> 400 resolve_failed, no extra token call', {}, async (s) => {
  const { link, page, params, callbacks } = await connectInBrowser(s, { plugin: 'oidc_post' });
  assert.equal(params.get('status'), 'connected', `landing URL ${page.url()}`);
  assert.equal(callbacks.length, 1, `callback requests seen: ${callbacks.length}`);
  const callbackUrl = callbacks[0];
  assert.ok(new URL(callbackUrl).searchParams.get('code'), `captured callback has no code: ${callbackUrl}`);

  const tokenCallsBefore = s.provider.stats.token.total;
  assert.equal(tokenCallsBefore, 1);

  const res = await page.goto(callbackUrl);
  await screenshot(page, 'callback-replay');
  assert.equal(res?.status(), 400, `replayed callback answered ${res?.status()} at ${page.url()}`);
  assert.equal(await errorCode(page), 'resolve_failed');
  assert.equal(s.provider.stats.token.total, tokenCallsBefore, 'the replay reached the token endpoint');

  // The replay did not disturb the connection.
  const conn = await getConnection(s, link.connection_id);
  assert.equal(conn.status, 'connected', JSON.stringify(conn));
});
