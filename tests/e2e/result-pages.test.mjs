// Flows without a redirect_url end on our own result pages, at a clean URL (S7: no code or
// state left in the address bar or history).

import assert from 'node:assert/strict';
import { scenario, createLink, consentFlow, errorCode, getConnection, screenshot } from './harness.mjs';

async function flowToResult(s, consent) {
  const link = await createLink(s, 'oidc_basic', { redirect_url: undefined });
  const b = await s.browser();
  const page = await b.newPage();
  await consentFlow(page, { connectUrl: link.connect_url, issuer: s.provider.issuer, consent });
  const resultPrefix = `${s.appliance.base}/connect/result`;
  await page.waitForURL((u) => u.href.startsWith(resultPrefix), { waitUntil: 'domcontentloaded' });
  const url = new URL(page.url());
  assert.equal(url.searchParams.get('code'), null, `code left in ${url}`);
  assert.equal(url.searchParams.get('state'), null, `state left in ${url}`);
  return { link, page, url };
}

scenario('without redirect_url a successful flow ends on our success page', {}, async (s) => {
  const { link, page, url } = await flowToResult(s, 'approve');
  await screenshot(page, 'result-success');
  assert.equal(url.searchParams.get('status'), 'connected');
  assert.equal((await page.locator('#result-title').textContent())?.trim(), 'Connected');
  assert.equal((await getConnection(s, link.connection_id)).status, 'connected');
  assert.equal(s.provider.stats.token.total, 1);
});

scenario('without redirect_url a denied flow ends on our error page with the provider code', {}, async (s) => {
  const { link, page, url } = await flowToResult(s, 'deny');
  await screenshot(page, 'result-denied');
  assert.equal(url.searchParams.get('status'), 'error');
  assert.equal(await errorCode(page), 'access_denied');
  assert.equal((await getConnection(s, link.connection_id)).status, 'failed');
  assert.equal(s.provider.stats.token.total, 0);
});
