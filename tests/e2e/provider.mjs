// A strict, loopback-only OAuth 2.0 / OIDC provider for the acceptance tests.
//
// Built on oidc-provider 9 (koa based) behind a plain node:http server, so that we can:
//   * listen first (ephemeral port) and register the clients' redirect URI later, once the
//     appliance has told us its own port (chicken-and-egg: see `mount()`);
//   * put a guard in front of the client-authenticating endpoints that refuses the auth method the
//     client is NOT registered with (proves the appliance sends the configured method);
//   * count every token-endpoint request (`GET /test/stats`, or `stats` in-process);
//   * serve a protected API (`GET /api/me`) that accepts only live access tokens.
//
// Everything binds to 127.0.0.1; issuer and every URL use 127.0.0.1 (never `localhost`).

import http from 'node:http';
import { randomBytes } from 'node:crypto';
import querystring from 'node:querystring';
import './quiet.mjs';
import Provider from 'oidc-provider';

export const CLIENTS = Object.freeze({
  basic: Object.freeze({
    client_id: 'appliance-basic',
    client_secret: 'basic-secret-7f3c9a1e5d2b4c6a8e0f1a2b3c4d5e6f',
    token_endpoint_auth_method: 'client_secret_basic',
  }),
  post: Object.freeze({
    client_id: 'appliance-post',
    client_secret: 'post-secret-0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d',
    token_endpoint_auth_method: 'client_secret_post',
  }),
});

export const SCOPES = Object.freeze(['openid', 'offline_access', 'api']);

// Endpoints that authenticate the client. The guard applies to all of them.
const CLIENT_AUTH_PATHS = new Set(['/token', '/token/revocation', '/token/introspection']);

function freshStats() {
  return {
    // POST /token, every request, including ones the guard refused.
    token: { total: 0, byGrant: {}, refused: 0, requests: [] },
    revocation: { total: 0, refused: 0, requests: [] },
    introspection: { total: 0, refused: 0 },
    api: { total: 0, unauthorized: 0 },
  };
}

// RFC 6749 §2.3.1: id and secret are form-urlencoded before being put in the Basic header.
function decodeBasic(header) {
  if (typeof header !== 'string' || !/^basic /i.test(header)) return undefined;
  const raw = Buffer.from(header.slice(6).trim(), 'base64').toString('utf8');
  const i = raw.indexOf(':');
  if (i < 0) return { client_id: undefined, client_secret: undefined };
  const dec = (s) => {
    try {
      return decodeURIComponent(s.replace(/\+/g, ' '));
    } catch {
      return s;
    }
  };
  return { client_id: dec(raw.slice(0, i)), client_secret: dec(raw.slice(i + 1)) };
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (c) => {
      size += c.length;
      if (size > 1 << 20) {
        reject(new Error('body too large'));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function sendJson(res, status, obj, extraHeaders = {}) {
  const body = JSON.stringify(obj);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'cache-control': 'no-store',
    'content-length': Buffer.byteLength(body),
    ...extraHeaders,
  });
  res.end(body);
}

/**
 * Start listening on 127.0.0.1:<ephemeral>. The OIDC provider itself is created by `mount()`.
 *
 * @param {object} [opts]
 * @param {number} [opts.accessTokenTtl=60] access-token lifetime in seconds
 * @param {number} [opts.refreshTokenTtl=86400]
 */
export async function startProviderServer(opts = {}) {
  const accessTokenTtl = opts.accessTokenTtl ?? 60;
  const refreshTokenTtl = opts.refreshTokenTtl ?? 86400;
  const stats = freshStats();
  let provider;
  let providerHandler;
  let hold; // see holdNextRedirectTo()

  const server = http.createServer((req, res) => {
    handle(req, res).catch((err) => {
      if (!res.headersSent) sendJson(res, 500, { error: 'server_error', error_description: String(err) });
      else res.destroy();
    });
  });

  async function handle(req, res) {
    const url = new URL(req.url, 'http://127.0.0.1');
    const path = url.pathname;

    if (path === '/test/stats' && req.method === 'GET') {
      sendJson(res, 200, stats);
      return;
    }
    if (!providerHandler) {
      sendJson(res, 503, { error: 'not_ready', error_description: 'provider not mounted yet' });
      return;
    }
    if (hold) interceptRedirect(res, hold);
    if (path === '/api/me' && req.method === 'GET') {
      await apiMe(req, res);
      return;
    }
    if (req.method === 'POST' && CLIENT_AUTH_PATHS.has(path)) {
      const raw = await readBody(req);
      const body = querystring.parse(raw.toString('utf8'));
      const basic = decodeBasic(req.headers.authorization);
      const viaPost = typeof body.client_secret === 'string';
      const used = basic && viaPost ? 'both' : basic ? 'client_secret_basic' : viaPost ? 'client_secret_post' : 'none';
      const clientId = basic?.client_id ?? body.client_id;
      const client = Object.values(CLIENTS).find((c) => c.client_id === clientId);
      const record = {
        at: new Date().toISOString(),
        client_id: clientId,
        auth_method: used,
        grant_type: body.grant_type,
        has_code_verifier: typeof body.code_verifier === 'string',
        redirect_uri: body.redirect_uri,
        token_type_hint: body.token_type_hint,
        status: undefined,
        refused_by_guard: false,
      };
      const bucket = path === '/token' ? stats.token : path === '/token/revocation' ? stats.revocation : stats.introspection;
      bucket.total += 1;
      if (path === '/token') {
        const g = String(body.grant_type);
        stats.token.byGrant[g] = (stats.token.byGrant[g] ?? 0) + 1;
        stats.token.requests.push(record);
      } else if (path === '/token/revocation') {
        stats.revocation.requests.push(record);
      }
      if (client && used !== client.token_endpoint_auth_method) {
        bucket.refused += 1;
        record.refused_by_guard = true;
        record.status = 401;
        sendJson(
          res,
          401,
          {
            error: 'invalid_client',
            error_description: `test guard: ${client.client_id} is registered for ${client.token_endpoint_auth_method} but the request used ${used}`,
          },
          { 'www-authenticate': 'Basic realm="test-guard"' },
        );
        return;
      }
      res.on('finish', () => {
        record.status = res.statusCode;
      });
      // Hand the already-read body to oidc-provider (it falls back to req.body when the stream
      // has been consumed).
      req.body = raw;
      providerHandler(req, res);
      return;
    }
    providerHandler(req, res);
  }

  // Replace a 3xx whose Location starts with h.prefix by a 200 page, and hand the Location to the
  // test instead. koa sets headers with setHeader() and then calls res.end(body), so patching end()
  // on this response sees the final status and Location before anything is sent.
  function interceptRedirect(res, h) {
    const origEnd = res.end;
    res.end = function end(...args) {
      const loc = res.getHeader('location');
      if (hold === h && res.statusCode >= 300 && res.statusCode < 400 && typeof loc === 'string') {
        const abs = new URL(loc, issuer).href;
        if (abs.startsWith(h.prefix)) {
          hold = undefined;
          res.statusCode = 200;
          res.removeHeader('location');
          const html = '<!doctype html><html><head><title>held</title></head><body>' +
            '<h1 id="held">redirect held by the test provider</h1></body></html>';
          res.setHeader('content-type', 'text/html; charset=utf-8');
          res.setHeader('content-length', Buffer.byteLength(html));
          h.resolve(abs);
          return origEnd.call(res, html);
        }
      }
      return origEnd.apply(res, args);
    };
  }

  async function apiMe(req, res) {
    stats.api.total += 1;
    const m = /^Bearer ([^\s]+)$/i.exec(req.headers.authorization ?? '');
    const deny = (why) => {
      stats.api.unauthorized += 1;
      sendJson(res, 401, { error: 'invalid_token', error_description: why }, {
        'www-authenticate': `Bearer error="invalid_token", error_description="${why}"`,
      });
    };
    if (!m) return deny('missing bearer token');
    const at = await provider.AccessToken.find(m[1]);
    if (!at) return deny('unknown, revoked or expired access token');
    if (at.isExpired) return deny('expired access token');
    sendJson(res, 200, { sub: at.accountId, client_id: at.clientId, scope: at.scope, exp: at.exp });
  }

  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;

  /**
   * Create the provider with both clients registered for exactly `redirectUri`.
   */
  function mount({ redirectUri }) {
    if (provider) throw new Error('provider already mounted');
    const clients = Object.values(CLIENTS).map((c) => ({
      ...c,
      redirect_uris: [redirectUri],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
    }));
    const config = {
      clients,
      scopes: [...SCOPES],
      responseTypes: ['code'],
      pkce: { required: () => true },
      allowOmittingSingleRegisteredRedirectUri: false,
      // Always a refresh token for clients allowed the refresh_token grant.
      issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
      rotateRefreshToken: true,
      clockTolerance: 0,
      ttl: {
        AccessToken: accessTokenTtl,
        AuthorizationCode: 60,
        RefreshToken: refreshTokenTtl,
        Grant: refreshTokenTtl,
        Interaction: 600,
        Session: 3600,
      },
      features: {
        devInteractions: { enabled: true },
        revocation: { enabled: true },
        introspection: { enabled: true },
      },
      cookies: { keys: [randomBytes(32).toString('hex')] },
    };
    provider = new Provider(issuer, config);
    providerHandler = provider.callback();
    return provider;
  }

  async function close() {
    server.closeAllConnections?.();
    await new Promise((resolve) => server.close(() => resolve()));
  }

  return {
    issuer,
    port,
    stats,
    mount,
    close,
    get provider() {
      return provider;
    },
    urls: {
      authorization: `${issuer}/auth`,
      token: `${issuer}/token`,
      revocation: `${issuer}/token/revocation`,
      introspection: `${issuer}/token/introspection`,
      apiBase: `${issuer}/api`,
      apiMe: `${issuer}/api/me`,
      stats: `${issuer}/test/stats`,
    },
    /**
     * Arm a one-shot interception: the next provider redirect whose absolute Location starts with
     * `prefix` is NOT sent to the browser (it gets a 200 "held" page instead); the returned promise
     * resolves with that Location. Used to obtain a genuine callback URL without the browser that
     * started the flow ever delivering it.
     */
    holdNextRedirectTo(prefix) {
      let resolve;
      const promise = new Promise((r) => {
        resolve = r;
      });
      hold = { prefix, resolve };
      return promise;
    },
    /** Is this access token live at the provider (what /api/me would say)? */
    async accessTokenValid(token) {
      const at = await provider.AccessToken.find(token);
      return Boolean(at && !at.isExpired);
    },
    async refreshTokenValid(token) {
      const rt = await provider.RefreshToken.find(token);
      return Boolean(rt && !rt.isExpired && !rt.consumed);
    },
  };
}
