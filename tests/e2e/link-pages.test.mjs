// Hosted link pages that must refuse: expired and unknown links.

import assert from 'node:assert/strict';
import { scenario, createLink, errorCode, screenshot, sleep } from './harness.mjs';

scenario('expired link -> hosted page answers 410 with an error code, no provider contact', { linkTtl: 1 }, async (s) => {
  const link = await createLink(s, 'oidc_basic');
  await sleep(2000);
  const b = await s.browser();
  const page = await b.newPage();
  const res = await page.goto(link.connect_url);
  await screenshot(page, 'expired-link');
  assert.equal(res?.status(), 410, `expired link answered ${res?.status()}`);
  const code = await errorCode(page);
  assert.ok(code, 'expired-link page has no #error-code');
  s.t.diagnostic(`#error-code: ${code}`);
  assert.equal(await page.locator('#continue').count(), 0, 'expired-link page still offers Continue');

  // The authorize step of an expired link must not send the browser to the provider either.
  const auth = await page.goto(`${link.connect_url}/authorize`);
  assert.ok(
    page.url().startsWith(s.appliance.base),
    `expired link's /authorize sent the browser to ${page.url()} (HTTP ${auth?.status()})`,
  );
  assert.ok((auth?.status() ?? 0) >= 400, `expired link's /authorize answered ${auth?.status()}`);
  assert.equal(s.provider.stats.token.total, 0);
});

scenario('unknown link -> hosted page answers 404 with an error code', {}, async (s) => {
  const b = await s.browser();
  const page = await b.newPage();
  const res = await page.goto(`${s.appliance.base}/connect/this-link-token-does-not-exist-0123456789`);
  await screenshot(page, 'unknown-link');
  assert.equal(res?.status(), 404, `unknown link answered ${res?.status()}`);
  assert.ok(await errorCode(page), 'unknown-link page has no #error-code');
});
