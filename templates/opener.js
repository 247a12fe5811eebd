// Tells the page that opened this connect popup (see /connect.js) how the flow ended.
// Posted once per configured [cors] allowed_origins entry: the browser drops a message whose
// targetOrigin is not the opener's origin, so a page on any other origin learns nothing.
// The message carries no token: a status, the connection id and an error code.
(() => {
  'use strict';
  const origins = {{ origins_json }};
  const script = document.currentScript;
  const opener = window.opener;
  if (!opener || !script || origins.length === 0) return;
  const status = script.dataset.status === 'connected' ? 'connected' : 'error';
  const id = new URLSearchParams(window.location.search).get('connection_id');
  const message = {
    source: 'connect-appliance',
    status,
    connection_id: id && /^[A-Za-z0-9_-]{1,128}$/.test(id) ? id : null,
  };
  if (status === 'error') message.error = script.dataset.error || 'unknown_error';
  for (const origin of origins) {
    try {
      opener.postMessage(message, origin);
    } catch {
      // the opener is gone
    }
  }
})();
