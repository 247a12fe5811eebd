// The end user cancels at the provider's consent page.

import assert from 'node:assert/strict';
import { scenario, connectInBrowser, getConnection } from './harness.mjs';

scenario('user cancels at provider consent -> redirect with error=access_denied, connection failed, no token call', {}, async (s) => {
  const { link, page, params } = await connectInBrowser(s, {
    plugin: 'oidc_basic',
    consent: 'deny',
    shotPrefix: 'deny',
  });
  assert.equal(params.get('status'), 'error', `landing URL ${page.url()}`);
  assert.equal(params.get('error'), 'access_denied', `landing URL ${page.url()}`);
  assert.equal(params.get('code'), null);
  assert.equal(params.get('state'), null);

  assert.equal(s.provider.stats.token.total, 0, 'a denied consent must not reach the token endpoint');

  const conn = await getConnection(s, link.connection_id);
  assert.equal(conn.status, 'failed', JSON.stringify(conn));
});
