// Shared helpers for the acceptance tests: appliance process, provider, redirect target,
// headless Chromium (loopback only), admin API client, screenshots and the consent flow.
//
// Nothing here talks to anything outside 127.0.0.0/8.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, mkdir, readdir, rm, writeFile, access } from 'node:fs/promises';
import { constants as fsConstants } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { chromium } from 'playwright-core';

import { startProviderServer, CLIENTS, SCOPES } from './provider.mjs';

export { CLIENTS, SCOPES, sleep };

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = path.resolve(HERE, '..', '..');
// A relative CONNECT_APPLIANCE_BIN is taken relative to the current directory (the appliance itself
// is started in its temp dir).
export const APPLIANCE_BIN = path.resolve(
  process.env.CONNECT_APPLIANCE_BIN ?? path.join(REPO_ROOT, 'target', 'debug', 'connect-appliance'),
);
export const CHROMIUM = process.env.E2E_CHROMIUM ?? '/usr/bin/chromium';
export const SCREENSHOT_DIR = path.join(REPO_ROOT, 'target', 'e2e');
export const ADMIN_KEY = 'test-admin-key-0123456789abcdef';
export const TENANT = 'tenant-e2e';

// Plugin name -> provider client. Both are configured in every appliance started here.
export const PLUGINS = Object.freeze({
  oidc_basic: CLIENTS.basic,
  oidc_post: CLIENTS.post,
});

const STARTUP_TIMEOUT_MS = 20_000;

// ---------------------------------------------------------------------------------------------
// Small utilities

export function isLoopbackUrl(u) {
  let url;
  try {
    url = new URL(u);
  } catch {
    return false;
  }
  if (url.protocol === 'data:' || url.protocol === 'about:' || url.protocol === 'blob:') return true;
  const h = url.hostname;
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h) || h === 'localhost' || h === '[::1]';
}

async function withTimeout(promise, ms, what) {
  let timer;
  const t = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, t]);
  } finally {
    clearTimeout(timer);
  }
}

/** A TOML value: strings via JSON escaping (valid TOML basic strings), arrays, inline tables. */
function tomlValue(v) {
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (Array.isArray(v)) return `[${v.map(tomlValue).join(', ')}]`;
  if (v && typeof v === 'object') {
    return `{ ${Object.entries(v).map(([k, x]) => `${tomlKey(k)} = ${tomlValue(x)}`).join(', ')} }`;
  }
  throw new Error(`cannot encode ${v} as TOML`);
}
function tomlKey(k) {
  return /^[A-Za-z0-9_-]+$/.test(k) ? k : JSON.stringify(k);
}

/**
 * `{ server: {...}, plugins: { oidc_basic: {...} } }` -> TOML: one `[section]` per top-level key,
 * `[plugins.NAME]` per plugin; deeper objects become inline tables.
 */
export function toToml(doc) {
  const out = [];
  const table = (name, obj) => {
    out.push(`[${name}]`);
    for (const [k, v] of Object.entries(obj)) if (v !== undefined) out.push(`${tomlKey(k)} = ${tomlValue(v)}`);
    out.push('');
  };
  for (const [section, obj] of Object.entries(doc)) {
    if (section === 'plugins') {
      for (const [name, p] of Object.entries(obj)) table(`plugins.${tomlKey(name)}`, p);
    } else {
      table(tomlKey(section), obj);
    }
  }
  return out.join('\n');
}

// ---------------------------------------------------------------------------------------------
// Redirect target: where the appliance sends the end user after the callback.

export async function startRedirectTarget() {
  const hits = [];
  const server = http.createServer((req, res) => {
    hits.push(new URL(req.url, 'http://127.0.0.1'));
    const body = '<!doctype html><html><head><title>done</title></head><body><h1 id="done">done</h1></body></html>';
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const url = `http://127.0.0.1:${server.address().port}/`;
  return {
    url,
    hits,
    async close() {
      server.closeAllConnections?.();
      await new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

// ---------------------------------------------------------------------------------------------
// The appliance process

// The appliance reads overrides such as CONNECT_APPLIANCE_ADMIN_API_KEYS and
// CONNECT_APPLIANCE_PLUGIN_<ID>_CLIENT_SECRET from its environment: keep the developer's out.
function applianceEnv() {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('CONNECT_APPLIANCE_')));
}

async function assertExecutable(file) {
  try {
    await access(file, fsConstants.X_OK);
  } catch {
    throw new Error(
      `appliance binary not found or not executable: ${file}\n` +
        'build it with `cargo build` or set CONNECT_APPLIANCE_BIN',
    );
  }
}

/**
 * Write a config into a fresh temp dir and spawn the appliance.
 *
 * @param {object} o
 * @param {(dir: string) => object} o.config builds the config document (gets the temp dir)
 * @returns {Promise<{base: string, port: number, dir: string, logs: () => string, stop: () => Promise<void>, proc}>}
 */
export async function startAppliance({ config }) {
  await assertExecutable(APPLIANCE_BIN);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'connect-e2e-'));
  const doc = config(dir);
  const configPath = path.join(dir, 'config.toml');
  await writeFile(configPath, toToml(doc));

  const proc = spawn(APPLIANCE_BIN, ['--config', configPath], {
    cwd: dir,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...applianceEnv(), RUST_BACKTRACE: '1', NO_COLOR: '1' },
  });
  let stdout = '';
  let stderr = '';
  let exited = null;
  const exitPromise = new Promise((resolve) => {
    proc.on('exit', (code, signal) => {
      exited = { code, signal };
      resolve(exited);
    });
    // A failed spawn emits 'error' and never 'exit'.
    proc.on('error', (error) => {
      exited ??= { code: null, signal: null, error };
      resolve(exited);
    });
  });
  // If this node process dies (test timeout, crash), do not leave the appliance behind.
  const killOnExit = () => {
    if (!exited) proc.kill('SIGKILL');
  };
  process.on('exit', killOnExit);
  exitPromise.then(() => process.off('exit', killOnExit));
  const logs = () => `--- appliance stdout ---\n${stdout}\n--- appliance stderr ---\n${stderr}`;

  const listening = new Promise((resolve, reject) => {
    proc.stdout.setEncoding('utf8');
    proc.stderr.setEncoding('utf8');
    proc.stdout.on('data', (chunk) => {
      stdout += chunk;
      const m = /listening on (http:\/\/127\.0\.0\.1:(\d+))\b/.exec(stdout);
      if (m) resolve({ base: m[1], port: Number(m[2]) });
    });
    proc.stderr.on('data', (chunk) => {
      stderr += chunk;
      if (process.env.E2E_VERBOSE) process.stderr.write(chunk);
    });
    proc.on('error', reject);
    exitPromise.then((e) =>
      reject(
        new Error(
          `appliance exited before listening (code ${e.code}, signal ${e.signal}${e.error ? `, ${e.error.message}` : ''})\n${logs()}`,
        ),
      ),
    );
  });

  async function stop() {
    if (exited) return;
    proc.kill('SIGTERM');
    const r = await Promise.race([exitPromise, sleep(5000, null, { ref: false })]);
    if (!r) {
      proc.kill('SIGKILL');
      await Promise.race([exitPromise, sleep(5000, null, { ref: false })]);
    }
  }

  let base;
  let port;
  try {
    ({ base, port } = await withTimeout(listening, STARTUP_TIMEOUT_MS, `appliance "listening on" line\n${logs()}`));
    // Readiness: GET /healthz -> 200
    const deadline = Date.now() + STARTUP_TIMEOUT_MS;
    for (;;) {
      try {
        const r = await fetch(`${base}/healthz`);
        if (r.status === 200) break;
      } catch {
        // not accepting yet
      }
      if (exited) throw new Error(`appliance exited during startup\n${logs()}`);
      if (Date.now() > deadline) throw new Error(`appliance /healthz never answered 200\n${logs()}`);
      await sleep(50);
    }
  } catch (err) {
    await stop();
    await rm(dir, { recursive: true, force: true });
    throw err;
  }

  return {
    base,
    port,
    dir,
    configPath,
    proc,
    logs,
    get exited() {
      return exited;
    },
    async stop() {
      await stop();
      if (!process.env.E2E_KEEP_TMP) await rm(dir, { recursive: true, force: true });
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Provider + redirect target + appliance, wired together.

/**
 * @param {object} [o]
 * @param {number} [o.linkTtl=900]      [links] ttl_seconds
 * @param {number} [o.accessTokenTtl=60] provider access-token lifetime (s)
 * @param {(doc: object) => void} [o.tweakConfig] last-minute edits to the config document
 */
export async function startStack(o = {}) {
  const cleanups = [];
  const stack = { cleanups };
  try {
    const provider = await startProviderServer({ accessTokenTtl: o.accessTokenTtl ?? 60 });
    cleanups.push(() => provider.close());
    const target = await startRedirectTarget();
    cleanups.push(() => target.close());

    const pluginConfig = (client, displayName) => ({
      authorization_url: provider.urls.authorization,
      token_url: provider.urls.token,
      revocation_url: provider.urls.revocation,
      api_base_url: provider.urls.apiBase,
      issuer: provider.issuer,
      client_id: client.client_id,
      client_secret: client.client_secret,
      scopes: [...SCOPES],
      token_auth_method: client.token_endpoint_auth_method,
      pkce: true,
      authorize_params: { prompt: 'consent' },
      display_name: displayName,
    });

    const appliance = await startAppliance({
      config: (dir) => {
        const doc = {
          server: { listen: '127.0.0.1:0' },
          storage: { path: path.join(dir, 'connect.redb') },
          vault: { identity_file: path.join(dir, 'identity.txt') },
          admin: { api_keys: [ADMIN_KEY] },
          links: { ttl_seconds: o.linkTtl ?? 900, allowed_redirect_urls: [target.url] },
          sandbox: { enabled: false },
          plugins: {
            oidc_basic: pluginConfig(PLUGINS.oidc_basic, 'OIDC (basic)'),
            oidc_post: pluginConfig(PLUGINS.oidc_post, 'OIDC (post)'),
          },
        };
        o.tweakConfig?.(doc);
        return doc;
      },
    });
    cleanups.push(() => appliance.stop());

    // Now that the appliance's port is known, register its exact redirect URI at the provider.
    const redirectUri = `${appliance.base}/oauth/callback`;
    provider.mount({ redirectUri });

    Object.assign(stack, {
      provider,
      target,
      appliance,
      redirectUri,
      admin: adminClient(appliance.base, ADMIN_KEY),
      async close() {
        for (const c of cleanups.reverse()) {
          try {
            await c();
          } catch {
            // best effort
          }
        }
      },
    });
    return stack;
  } catch (err) {
    for (const c of cleanups.reverse()) {
      try {
        await c();
      } catch {
        // best effort
      }
    }
    throw err;
  }
}

// ---------------------------------------------------------------------------------------------
// Admin API

export function adminClient(base, key) {
  async function call(method, p, body, { auth = true } = {}) {
    const headers = { accept: 'application/json' };
    if (auth) headers.authorization = `Bearer ${key}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(`${base}${p}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      redirect: 'manual',
    });
    const text = await res.text();
    let json;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    return { status: res.status, headers: res.headers, text, json };
  }
  return {
    call,
    createLink: (body) => call('POST', '/v1/links', body),
    connection: (id) => call('GET', `/v1/connections/${encodeURIComponent(id)}`),
    token: (id, { forceRefresh = false } = {}) =>
      call('GET', `/v1/connections/${encodeURIComponent(id)}/token${forceRefresh ? '?force_refresh=true' : ''}`),
    revoke: (id) => call('POST', `/v1/connections/${encodeURIComponent(id)}/revoke`),
  };
}

/** The provider's view of the token endpoint, for assertion messages. */
export function tokenSummary(s) {
  const r = s.provider.stats.token.requests.map(
    (x) => `${x.grant_type} by ${x.client_id} via ${x.auth_method} -> ${x.status}${x.refused_by_guard ? ' (refused by auth-method guard)' : ''}`,
  );
  return `provider token requests: ${r.length ? r.join('; ') : 'none'}`;
}

/** Describe a response for assertion messages. */
export function show(r) {
  return `HTTP ${r.status}: ${r.text?.slice(0, 800)}`;
}

// ---------------------------------------------------------------------------------------------
// Chromium

const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-domain-reliability',
  '--no-pings',
  // Anything not on loopback dies at a closed local port.
  '--proxy-server=http://127.0.0.1:9',
  '--proxy-bypass-list=127.0.0.1;localhost;[::1]',
  // And no DNS query for any other name ever leaves the browser (the system resolver is not on
  // loopback).
  '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost',
];

const PROFILE_PREFERENCES = {
  credentials_enable_service: false,
  profile: { password_manager_enabled: false, password_manager_leak_detection: false },
  safebrowsing: { enabled: false },
  autofill: { enabled: false },
};

/**
 * A fresh Chromium profile (own user-data-dir with Default/Preferences) as a persistent context.
 * Each call is a separate browser: contexts share no cookies.
 */
export async function launchContext() {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'connect-e2e-chromium-'));
  await mkdir(path.join(dir, 'Default'), { recursive: true });
  await writeFile(path.join(dir, 'Default', 'Preferences'), JSON.stringify(PROFILE_PREFERENCES));
  let context;
  try {
    context = await chromium.launchPersistentContext(dir, {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: { width: 1100, height: 800 },
      timeout: 30_000,
    });
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  // Belt and braces: also refuse non-loopback requests Playwright can see (the proxy catches the rest,
  // including redirect hops, which route() does not see).
  const blocked = [];
  await context.route(
    (url) => !isLoopbackUrl(url.href),
    (route) => {
      blocked.push(route.request().url());
      return route.abort('blockedbyclient');
    },
  );
  context.setDefaultTimeout(15_000);
  context.setDefaultNavigationTimeout(15_000);
  return {
    context,
    blocked,
    async newPage() {
      const existing = context.pages();
      if (existing.length === 1 && existing[0].url() === 'about:blank' && !existing[0].__used) {
        existing[0].__used = true;
        return existing[0];
      }
      return context.newPage();
    },
    async close() {
      try {
        await withTimeout(context.close(), 10_000, 'closing chromium');
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Screenshots

export async function screenshot(page, name) {
  await mkdir(SCREENSHOT_DIR, { recursive: true });
  const file = path.join(SCREENSHOT_DIR, `${name.replace(/[^A-Za-z0-9._-]+/g, '-')}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

// ---------------------------------------------------------------------------------------------
// The end-user flow

/** Record every request (including redirect hops) whose URL starts with `prefix`. */
export function captureRequests(page, prefix) {
  const urls = [];
  page.on('request', (req) => {
    if (req.url().startsWith(prefix)) urls.push(req.url());
  });
  return urls;
}

/**
 * Hosted page -> Continue -> provider login -> consent (approve or deny).
 * Does not wait for the final landing; callers wait for what they expect.
 *
 * @param {import('playwright-core').Page} page
 * @param {object} o
 * @param {string} o.connectUrl
 * @param {string} o.issuer provider issuer (to recognise its pages)
 * @param {'approve'|'deny'} [o.consent='approve']
 * @param {string} [o.login='alice']
 * @param {string} [o.shotPrefix] screenshot name prefix; no screenshots when absent
 */
export async function consentFlow(page, o) {
  const login = o.login ?? 'alice';
  const shot = async (n) => {
    if (o.shotPrefix) await screenshot(page, `${o.shotPrefix}-${n}`);
  };

  const hosted = await page.goto(o.connectUrl);
  if (!hosted) throw new Error('no response for the hosted connect page');
  if (hosted.status() !== 200) {
    throw new Error(`hosted connect page answered ${hosted.status()}: ${(await page.content()).slice(0, 600)}`);
  }
  await page.locator('#continue').waitFor({ state: 'visible' });
  await shot('1-hosted-page');

  await Promise.all([
    page.waitForURL((u) => u.href.startsWith(`${o.issuer}/interaction/`), { waitUntil: 'domcontentloaded' }),
    page.locator('#continue').click(),
  ]);
  await page.locator('input[name="login"]').waitFor({ state: 'visible' });
  await shot('2-provider-login');
  await page.fill('input[name="login"]', login);
  await page.fill('input[name="password"]', 'any-password');
  await page.click('button[type=submit]');
  // The consent page carries a hidden prompt=consent input (the login page's says prompt=login).
  await page.locator('input[name="prompt"][value="consent"]').waitFor({ state: 'attached' });
  await shot('3-provider-consent');

  if ((o.consent ?? 'approve') === 'approve') {
    await page.click('button[type=submit]');
  } else {
    await page.locator('a[href$="/abort"]').click();
  }
}

/** Wait until the page is on the redirect target; returns the URL's search params. */
export async function waitForLanding(page, targetUrl) {
  await page.waitForURL((u) => u.href.startsWith(targetUrl), { waitUntil: 'domcontentloaded' });
  return new URL(page.url()).searchParams;
}

/** Text of #error-code on the current page, or undefined. */
export async function errorCode(page) {
  const loc = page.locator('#error-code');
  if ((await loc.count()) === 0) return undefined;
  return (await loc.first().textContent())?.trim();
}

/** Poll until fn() returns truthy (or time out). */
export async function eventually(fn, { timeout = 5000, interval = 50, what = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    last = await fn();
    if (last) return last;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(interval);
  }
}

// ---------------------------------------------------------------------------------------------
// Scenario wrapper: one stack (provider + redirect target + appliance) per test, browsers closed
// and processes stopped whatever happens, diagnostics written on failure.


function slug(s) {
  return s.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 80);
}

/**
 * @param {string} name
 * @param {object} opts startStack options (+ `timeout`)
 * @param {(s: object) => Promise<void>} fn gets the stack plus `browser()`, `slug`, `t`
 */
export function scenario(name, opts, fn) {
  test(name, { timeout: opts.timeout ?? 60_000 }, async (t) => {
    const started = Date.now();
    const name_ = slug(name);
    try {
      for (const f of await readdir(SCREENSHOT_DIR)) {
        if (f.startsWith(`FAIL-${name_}`)) await rm(path.join(SCREENSHOT_DIR, f), { force: true });
      }
    } catch {
      // no directory yet
    }
    const s = await startStack(opts);
    const browsers = [];
    const ctx = Object.assign(Object.create(s), {
      t,
      slug: name_,
      async browser() {
        const b = await launchContext();
        browsers.push(b);
        return b;
      },
    });
    try {
      await fn(ctx);
    } catch (err) {
      await mkdir(SCREENSHOT_DIR, { recursive: true });
      let i = 0;
      for (const b of browsers) {
        for (const p of b.context.pages()) {
          try {
            await screenshot(p, `FAIL-${ctx.slug}-${i++}`);
          } catch {
            // page may be gone
          }
        }
      }
      const logFile = path.join(SCREENSHOT_DIR, `FAIL-${ctx.slug}.log`);
      await writeFile(
        logFile,
        `${err?.stack ?? err}\n\n${s.appliance.logs()}\n--- provider stats ---\n${JSON.stringify(s.provider.stats, null, 2)}\n` +
          `--- blocked non-loopback requests ---\n${browsers.flatMap((b) => b.blocked).join('\n')}\n`,
      );
      t.diagnostic(`appliance logs, provider stats and screenshots: ${logFile}`);
      for (const line of s.appliance.logs().split('\n').slice(-25)) t.diagnostic(line);
      throw err;
    } finally {
      for (const b of browsers) {
        try {
          await b.close();
        } catch {
          // best effort
        }
      }
      await s.close();
      t.diagnostic(`took ${Date.now() - started} ms`);
    }
  });
}

/** POST /v1/links for `plugin`, asserting the documented 201 shape. */
export async function createLink(s, plugin, extra = {}) {
  const r = await s.admin.createLink({ tenant_id: TENANT, plugin, redirect_url: `${s.target.url}landing`, ...extra });
  assert.equal(r.status, 201, `POST /v1/links: ${show(r)}`);
  for (const k of ['link_token', 'connect_url', 'expires_at', 'connection_id']) {
    assert.ok(r.json?.[k], `POST /v1/links response lacks ${k}: ${show(r)}`);
  }
  assert.ok(
    r.json.connect_url.startsWith(`${s.appliance.base}/connect/`),
    `connect_url ${r.json.connect_url} is not under ${s.appliance.base}/connect/`,
  );
  return r.json;
}

/** GET /v1/connections/{id}, asserting 200; returns the JSON. */
export async function getConnection(s, id) {
  const r = await s.admin.connection(id);
  assert.equal(r.status, 200, `GET /v1/connections/${id}: ${show(r)}`);
  return r.json;
}

/**
 * Create a link and run the whole browser flow to the redirect target.
 * Returns the link, the page, the landing query and every callback / authorize URL the browser
 * requested (redirect hops included).
 */
export async function connectInBrowser(s, { plugin, login = 'alice', consent = 'approve', browser, shotPrefix }) {
  const link = await createLink(s, plugin);
  const b = browser ?? (await s.browser());
  const page = await b.newPage();
  const callbacks = captureRequests(page, `${s.appliance.base}/oauth/callback`);
  const authorizeRequests = captureRequests(page, `${s.provider.issuer}/auth?`);
  await consentFlow(page, { connectUrl: link.connect_url, issuer: s.provider.issuer, consent, login, shotPrefix });
  const params = await waitForLanding(page, s.target.url);
  if (shotPrefix) await screenshot(page, `${shotPrefix}-4-landed`);
  return { link, page, browser: b, params, callbacks, authorizeRequests };
}
