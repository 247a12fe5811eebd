// connect.js in a real browser: a "team app" page on a loopback origin listed in
// [cors] allowed_origins loads <appliance>/connect.js and opens a connect link in a popup on a
// click; the built-in sandbox provider approves or denies. A second loopback origin, not listed,
// plays a page that must learn nothing and a page that forges messages.

import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before } from 'node:test';
import { scenario, createLink, getConnection, screenshot, sleep, TENANT } from './harness.mjs';

const SANDBOX = { client_id: 'sandbox-client', client_secret: 'sandbox-secret-0123456789' };

// The team's page: loads connect.js from the appliance, records what open() resolves with and
// every message it receives. `?connect_url=` is the link to open.
function appPage(applianceBase) {
  return `<!doctype html><html><head><title>team app</title>
<script src="${applianceBase}/connect.js"></script></head>
<body><h1>Team app</h1><button id="connect">Connect</button><pre id="out"></pre>
<script>
window.RESULTS = [];
window.MESSAGES = [];
addEventListener('message', (e) => { if (e.data && e.data.source === 'connect-appliance') MESSAGES.push({ origin: e.origin, data: e.data }); });
document.getElementById('connect').addEventListener('click', () => {
  const url = new URLSearchParams(location.search).get('connect_url');
  ConnectAppliance.open(url, { width: 600, height: 700 }).then((r) => {
    RESULTS.push(r);
    document.getElementById('out').textContent = JSON.stringify(r);
  });
});
</script></body></html>`;
}

// A page on the other origin that, opened in the popup, forges an outcome for its opener.
const FORGER = `<!doctype html><html><body><h1 id="forger">forger</h1><script>
window.opener.postMessage({ source: 'connect-appliance', status: 'connected', connection_id: 'conn_forged' }, '*');
document.getElementById('forger').dataset.posted = 'yes';
</script></body></html>`;

const LANDING = '<!doctype html><html><body><h1 id="landing">back in the team app</h1></body></html>';

async function startApp() {
  const app = { applianceBase: '' };
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://127.0.0.1');
    const body =
      url.pathname === '/' ? appPage(app.applianceBase) : url.pathname === '/forge' ? FORGER : LANDING;
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
    res.end(body);
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  app.origin = `http://127.0.0.1:${server.address().port}`;
  app.close = () => {
    server.closeAllConnections?.();
    return new Promise((resolve) => server.close(() => resolve()));
  };
  return app;
}

let allowed;
let other;
before(async () => {
  allowed = await startApp();
  other = await startApp();
});
after(async () => {
  await allowed?.close();
  await other?.close();
});

const opts = {
  tweakConfig(doc) {
    doc.sandbox = { enabled: true };
    doc.plugins.sandbox = { provider: 'sandbox', ...SANDBOX, scopes: ['profile'], display_name: 'Sandbox' };
    doc.cors = { allowed_origins: [allowed.origin] };
    doc.links.allowed_redirect_urls.push(`${allowed.origin}/`);
  },
};

/** The team page on `app`'s origin, ready to open `connectUrl`. */
async function openApp(s, app, connectUrl) {
  app.applianceBase = s.appliance.base;
  const b = await s.browser();
  const page = await b.newPage();
  await page.goto(`${app.origin}/?connect_url=${encodeURIComponent(connectUrl)}`);
  await page.waitForFunction(() => typeof window.ConnectAppliance?.open === 'function');
  return page;
}

async function clickConnect(page) {
  const [popup] = await Promise.all([page.waitForEvent('popup'), page.click('#connect')]);
  await popup.waitForLoadState('domcontentloaded');
  return popup;
}

/** In the popup: hosted page -> Continue -> sandbox decision. */
async function decide(popup, decision, shot) {
  await popup.locator('#continue').waitFor({ state: 'visible' });
  if (shot) await screenshot(popup, `${shot}-1-popup-hosted`);
  await popup.locator('#continue').click();
  await popup.locator(`#${decision}`).waitFor({ state: 'visible' });
  if (shot) await screenshot(popup, `${shot}-2-popup-sandbox`);
  await popup.locator(`#${decision}`).click();
}

async function results(page, { wait = true } = {}) {
  if (wait) await page.waitForFunction(() => window.RESULTS.length > 0);
  return page.evaluate(() => window.RESULTS);
}

scenario('connect.js: the popup flow resolves connected with the connection id', opts, async (s) => {
  const link = await createLink(s, 'sandbox', { redirect_url: undefined });
  const page = await openApp(s, allowed, link.connect_url);
  await screenshot(page, 'connect-js-1-app');
  const popup = await clickConnect(page);
  await decide(popup, 'approve', 'connect-js');
  const [result] = await results(page);
  assert.deepEqual(result, { status: 'connected', connection_id: link.connection_id });
  await popup.waitForEvent('close', { timeout: 5000 }).catch(() => {});
  assert.ok(popup.isClosed(), 'connect.js closes the popup');
  await screenshot(page, 'connect-js-3-app-resolved');
  const messages = await page.evaluate(() => window.MESSAGES);
  assert.equal(messages.length, 1, JSON.stringify(messages));
  assert.equal(messages[0].origin, s.appliance.base);
  assert.deepEqual(Object.keys(messages[0].data).sort(), ['connection_id', 'source', 'status']);
  assert.equal((await getConnection(s, link.connection_id)).status, 'connected');
});

scenario('connect.js: a denied flow resolves error with the provider code', opts, async (s) => {
  const link = await createLink(s, 'sandbox', { redirect_url: undefined });
  const page = await openApp(s, allowed, link.connect_url);
  const popup = await clickConnect(page);
  await decide(popup, 'deny');
  const [result] = await results(page);
  assert.deepEqual(result, { status: 'error', connection_id: link.connection_id, error: 'access_denied' });
  await screenshot(page, 'connect-js-denied');
  assert.equal((await getConnection(s, link.connection_id)).status, 'failed');
});

scenario('connect.js: a redirect_url on the app origin resolves from the popup landing there', opts, async (s) => {
  const link = await createLink(s, 'sandbox', { redirect_url: `${allowed.origin}/done` });
  const page = await openApp(s, allowed, link.connect_url);
  const popup = await clickConnect(page);
  await decide(popup, 'approve');
  const [result] = await results(page);
  assert.deepEqual(result, { status: 'connected', connection_id: link.connection_id });
});

scenario('connect.js: with popups blocked the page goes to the connect URL and comes back', opts, async (s) => {
  const link = await createLink(s, 'sandbox', { redirect_url: `${allowed.origin}/done` });
  const page = await openApp(s, allowed, link.connect_url);
  await page.evaluate(() => {
    window.open = () => null;
  });
  await Promise.all([page.waitForURL(link.connect_url), page.click('#connect')]);
  await screenshot(page, 'connect-js-blocked-1-full-page');
  await decide(page, 'approve');
  await page.waitForURL((u) => u.href.startsWith(`${allowed.origin}/done?`));
  const q = new URL(page.url()).searchParams;
  assert.equal(q.get('status'), 'connected');
  assert.equal(q.get('connection_id'), link.connection_id);
  await screenshot(page, 'connect-js-blocked-2-back');
});

scenario('connect.js: a page on a non-allowed origin is told nothing', opts, async (s) => {
  const link = await createLink(s, 'sandbox', { redirect_url: undefined });
  const page = await openApp(s, other, link.connect_url);
  const popup = await clickConnect(page);
  const opener = popup.waitForResponse((r) => r.url() === `${s.appliance.base}/connect/opener.js`);
  await decide(popup, 'approve');
  await popup.waitForURL((u) => u.href.startsWith(`${s.appliance.base}/connect/result?status=connected`));
  assert.equal((await opener).status(), 200);
  await popup.waitForLoadState('load');
  await screenshot(popup, 'connect-js-other-origin-result');
  await sleep(700);
  assert.deepEqual(await page.evaluate(() => window.MESSAGES), []);
  assert.deepEqual(await results(page, { wait: false }), []);
  // The flow itself worked; closing the popup settles the promise as "closed".
  assert.equal((await getConnection(s, link.connection_id)).status, 'connected');
  await popup.close();
  assert.deepEqual(await results(page), [{ status: 'closed' }]);
});

scenario('connect.js: forged messages from other origins or windows resolve nothing', opts, async (s) => {
  const link = await createLink(s, 'sandbox', { redirect_url: undefined, tenant_id: TENANT });
  const page = await openApp(s, allowed, link.connect_url);
  const popup = await clickConnect(page);
  await popup.locator('#continue').waitFor({ state: 'visible' });
  // The popup itself, on another origin, posts a well-formed "connected".
  await popup.evaluate((url) => window.location.assign(url), `${other.origin}/forge`);
  await popup.waitForFunction(() => document.getElementById('forger')?.dataset.posted === 'yes');
  // And a window that is not the popup posts one claiming the app's own origin.
  await page.evaluate(() =>
    window.postMessage({ source: 'connect-appliance', status: 'connected', connection_id: 'conn_self' }, '*'),
  );
  await sleep(700);
  assert.equal((await page.evaluate(() => window.MESSAGES)).length, 2, 'both forgeries arrived');
  assert.deepEqual(await results(page, { wait: false }), [], 'and were ignored');
  // Back to the real flow in the same popup: the real outcome still resolves.
  await popup.evaluate((url) => window.location.assign(url), link.connect_url);
  await decide(popup, 'approve');
  const [result] = await results(page);
  assert.deepEqual(result, { status: 'connected', connection_id: link.connection_id });
});
