// S1: the state is bound to the browser that started the flow (cookie). A genuine, unused callback
// URL opened in another browser (no state cookie) is refused before any token request.
//
// Getting an unused callback URL: Playwright's route() does not see redirect hops and closing the
// browser on page.on('request') races with the request already being sent. Instead the test
// provider holds the redirect itself (provider.holdNextRedirectTo): its 303 to /oauth/callback is
// replaced by a 200 page, and the Location is handed to the test. Browser A never sends it.

import assert from 'node:assert/strict';
import { scenario, createLink, consentFlow, captureRequests, getConnection, errorCode, screenshot } from './harness.mjs';

async function startFlowAndHoldCallback(s, plugin) {
  const link = await createLink(s, plugin);
  const a = await s.browser();
  const pageA = await a.newPage();
  const callbacksA = captureRequests(pageA, `${s.appliance.base}/oauth/callback`);
  const held = s.provider.holdNextRedirectTo(`${s.appliance.base}/oauth/callback`);
  await consentFlow(pageA, { connectUrl: link.connect_url, issuer: s.provider.issuer, login: 'victim' });
  const callbackUrl = await held;
  await pageA.locator('#held').waitFor();
  assert.equal(callbacksA.length, 0, 'browser A reached the callback although the provider held it');
  assert.ok(new URL(callbackUrl).searchParams.get('code'), `held callback has no code: ${callbackUrl}`);
  return { link, a, pageA, callbackUrl };
}

scenario('callback opened in a different browser (no state cookie) -> 400 resolve_failed, zero token calls', {}, async (s) => {
  const { link, a, callbackUrl } = await startFlowAndHoldCallback(s, 'oidc_basic');
  await a.close();

  const b = await s.browser();
  const pageB = await b.newPage();
  const res = await pageB.goto(callbackUrl);
  await screenshot(pageB, 'callback-other-browser');
  assert.equal(res?.status(), 400, `callback in browser B answered ${res?.status()} at ${pageB.url()}`);
  assert.equal(await errorCode(pageB), 'resolve_failed');
  assert.equal(s.provider.stats.token.total, 0, 'a callback without the state cookie reached the token endpoint');

  const conn = await getConnection(s, link.connection_id);
  assert.notEqual(conn.status, 'connected', JSON.stringify(conn));
});

scenario('a refused foreign-browser callback does not burn the flow: the original browser can still finish', {}, async (s) => {
  // SECURITY.md S1: a missing cookie -> 4xx with no database write, so the state stays usable by the
  // browser that owns it.
  const { link, pageA, callbackUrl } = await startFlowAndHoldCallback(s, 'oidc_post');

  const b = await s.browser();
  const pageB = await b.newPage();
  const resB = await pageB.goto(callbackUrl);
  assert.equal(resB?.status(), 400, `callback in browser B answered ${resB?.status()}`);
  assert.equal(s.provider.stats.token.total, 0);

  await pageA.goto(callbackUrl);
  await pageA.waitForURL((u) => u.href.startsWith(s.target.url));
  const params = new URL(pageA.url()).searchParams;
  assert.equal(params.get('status'), 'connected', `browser A landed on ${pageA.url()}`);
  assert.equal(s.provider.stats.token.total, 1);
  const conn = await getConnection(s, link.connection_id);
  assert.equal(conn.status, 'connected', JSON.stringify(conn));
});
