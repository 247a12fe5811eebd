// The admin dashboard and branding in a real browser: sign in with the admin key, find a
// connection made through the built-in sandbox, read its history, create a test link, revoke a
// connection and delete another through the forms, sign out. Then a branded appliance: name,
// logo, accent colour and footer links on the hosted pages. The CSP must hold throughout (no
// violation reported by the browser). Screenshots: target/e2e/dashboard-*.png, branding-*.png.

import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after } from 'node:test';
import { scenario, createLink, getConnection, screenshot, waitForLanding, ADMIN_KEY } from './harness.mjs';

const SANDBOX = { client_id: 'sandbox-client', client_secret: 'sandbox-secret-0123456789' };

function withSandbox(doc) {
  doc.sandbox = { enabled: true };
  doc.plugins.sandbox = { provider: 'sandbox', ...SANDBOX, scopes: ['profile'], display_name: 'Sandbox' };
}

/** Records CSP violations the browser reports on the console. */
function watchCsp(page) {
  const violations = [];
  page.on('console', (msg) => {
    if (/Content Security Policy/i.test(msg.text())) violations.push(msg.text());
  });
  return violations;
}

/** Hosted page -> Continue -> sandbox Approve. */
async function approveInSandbox(page, connectUrl) {
  await page.goto(connectUrl);
  await page.locator('#continue').click();
  await page.locator('#approve').click();
}

scenario('dashboard: sign in, inspect a sandbox connection, test link, revoke, delete, sign out', { tweakConfig: withSandbox }, async (s) => {
  const base = s.appliance.base;
  // An end user connects through the sandbox (the link comes from the API, as a backend would).
  const link = await createLink(s, 'sandbox');
  const user = await (await s.browser()).newPage();
  await approveInSandbox(user, link.connect_url);
  await waitForLanding(user, s.target.url);
  assert.equal((await getConnection(s, link.connection_id)).status, 'connected');

  const page = await (await s.browser()).newPage();
  const csp = watchCsp(page);
  await page.goto(`${base}/admin`);
  assert.equal(new URL(page.url()).pathname, '/admin/sign-in', 'unauthenticated /admin goes to sign-in');
  await screenshot(page, 'dashboard-1-sign-in');

  // A wrong key is refused on the page, then the right one signs in.
  await page.fill('#admin-key', 'not-the-admin-key-0123456789');
  await page.click('#sign-in');
  await page.locator('#sign-in-error').waitFor();
  await page.fill('#admin-key', ADMIN_KEY);
  await Promise.all([page.waitForURL(`${base}/admin`), page.click('#sign-in')]);
  await page.locator('#plugin-sandbox').waitFor();
  assert.match(await page.locator('#plugin-sandbox').textContent(), /present/);
  await screenshot(page, 'dashboard-2-overview');

  // Connections, filtered to the sandbox's connected ones.
  await page.click('#nav-connections');
  await page.selectOption('#f-plugin', 'sandbox');
  await page.selectOption('#f-status', 'connected');
  await Promise.all([page.waitForURL(/status=connected/), page.click('#apply-filters')]);
  const row = page.locator(`tr.connection[data-id="${link.connection_id}"]`);
  await row.waitFor();
  assert.equal(await page.locator('tr.connection').count(), 1);
  await screenshot(page, 'dashboard-3-connections');

  // Its detail and history.
  await Promise.all([page.waitForURL(`${base}/admin/connections/${link.connection_id}`), row.locator('a').click()]);
  assert.equal((await page.locator('#connection-status').textContent()).trim(), 'connected');
  await page.locator('tr.event[data-type="connection.connected"]').waitFor();
  await page.locator('tr.event[data-type="link.created"]').waitFor();
  await screenshot(page, 'dashboard-4-connection');

  // A test link from the overview; it opens the hosted connect page.
  await page.click('#nav-overview');
  await page.fill('#link-tenant', 'tenant-dashboard');
  await page.selectOption('#link-plugin', 'sandbox');
  await page.click('#create-link');
  const connectUrl = await page.locator('#connect-url').getAttribute('href');
  assert.ok(connectUrl.startsWith(`${base}/connect/`), connectUrl);
  await screenshot(page, 'dashboard-5-test-link');
  const testConnection = (await page.locator('#link-connection').textContent()).trim();
  assert.equal((await getConnection(s, testConnection)).status, 'pending');
  const probe = await (await s.browser()).newPage();
  assert.equal((await probe.goto(connectUrl)).status(), 200);

  // Revoke the sandbox connection through its form.
  await page.goto(`${base}/admin/connections/${link.connection_id}`);
  await Promise.all([page.waitForURL(/done=revoked/), page.click('#revoke')]);
  await page.locator('#notice').waitFor();
  assert.equal((await page.locator('#connection-status').textContent()).trim(), 'revoked');
  assert.equal((await getConnection(s, link.connection_id)).status, 'revoked');
  await screenshot(page, 'dashboard-6-revoked');

  // Delete the test link's connection, through the confirmation step.
  await page.goto(`${base}/admin/connections/${testConnection}`);
  await page.click('#delete');
  await page.locator('#confirm-delete').waitFor();
  await screenshot(page, 'dashboard-7-confirm-delete');
  await Promise.all([page.waitForURL(/done=deleted/), page.click('#confirm-delete')]);
  assert.equal((await s.admin.connection(testConnection)).status, 404);

  await page.click('#nav-events');
  await page.locator('tr.event[data-type="connection.revoked"]').first().waitFor();
  await screenshot(page, 'dashboard-8-events');

  // Sign out: the session is gone, /admin asks for the key again.
  await Promise.all([page.waitForURL(/signed_out=1/), page.click('#sign-out')]);
  await page.locator('#notice').waitFor();
  await screenshot(page, 'dashboard-9-signed-out');
  await page.goto(`${base}/admin/connections`);
  assert.equal(new URL(page.url()).pathname, '/admin/sign-in');
  assert.deepEqual(csp, [], 'the browser reported CSP violations');
});

// A logo the browser can render, written next to the test (the appliance reads it at start).
const LOGO_SVG = `<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="84" height="28" viewBox="0 0 84 28">
<rect width="28" height="28" rx="7" fill="#0f766e"/><path d="M8 20 14 7l6 13" stroke="#fff" stroke-width="2.6" fill="none"/>
<text x="36" y="19.5" font-family="sans-serif" font-size="14" font-weight="700" fill="#0f3d3a">ACME</text>
</svg>
`;

// Written before any scenario starts an appliance, which reads it once at start.
const logoDir = await mkdtemp(path.join(os.tmpdir(), 'connect-e2e-logo-'));
await writeFile(path.join(logoDir, 'acme.svg'), LOGO_SVG);
after(() => rm(logoDir, { recursive: true, force: true }));

const branded = {
  timeout: 60_000,
  tweakConfig(doc) {
    withSandbox(doc);
    doc.branding = {
      name: 'Acme Cloud',
      logo_file: path.join(logoDir, 'acme.svg'),
      accent_color: '#0f766e',
      support_url: 'https://acme.example/support',
      privacy_url: 'https://acme.example/privacy',
      terms_url: 'https://acme.example/terms',
      success_redirect_url: 'https://acme.example/welcome',
    };
  },
};

scenario('branding: name, logo, accent colour and links on the hosted pages', branded, async (s) => {
  const link = await createLink(s, 'sandbox', { redirect_url: undefined });
  const page = await (await s.browser()).newPage();
  const csp = watchCsp(page);
  await page.goto(link.connect_url);
  assert.equal((await page.locator('#brand-name').textContent()).trim(), 'Acme Cloud');
  const logoWidth = await page.locator('header.brand img').evaluate((img) => img.naturalWidth);
  assert.ok(logoWidth > 0, 'the logo loaded');
  const accent = await page.locator('#continue').evaluate((el) => getComputedStyle(el).backgroundColor);
  assert.equal(accent, 'rgb(15, 118, 110)');
  for (const [id, href] of [
    ['support-link', 'https://acme.example/support'],
    ['privacy-link', 'https://acme.example/privacy'],
    ['terms-link', 'https://acme.example/terms'],
  ]) {
    assert.equal(await page.locator(`#${id}`).getAttribute('href'), href);
  }
  await screenshot(page, 'branding-connect');

  // Through the sandbox to the success page: a Continue button to success_redirect_url.
  await page.locator('#continue').click();
  await page.locator('#approve').click();
  await page.waitForURL((u) => u.pathname === '/connect/result');
  assert.equal(await page.locator('#continue').getAttribute('href'), 'https://acme.example/welcome');
  await screenshot(page, 'branding-success');

  await page.goto(`${s.appliance.base}/admin/sign-in`);
  assert.equal((await page.locator('#brand-name').textContent()).trim(), 'Acme Cloud');
  await screenshot(page, 'dashboard-0-branded-sign-in');
  assert.deepEqual(csp, [], 'the browser reported CSP violations');
});
