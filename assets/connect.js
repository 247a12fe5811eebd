// connect.js: opens a connect-appliance connect_url in a popup and resolves when the flow ends.
// No dependencies. Served by the appliance at /connect.js.
//
//   ConnectAppliance.open(connectUrl, { width, height })
//     -> Promise<{ status: "connected" | "error" | "closed", connection_id?, error? }>
//
// Call it from a click handler (browsers block popups opened without a user gesture). When the
// popup is blocked anyway, the page itself goes to connectUrl and the promise never resolves: the
// link's redirect_url brings the user back. "closed" means the popup went away without reporting
// (closed by the user, or cut off from this page by a provider's Cross-Origin-Opener-Policy):
// ask your backend for the connection's status. Treat every result as a hint for the UI; your
// backend confirms it with GET /v1/connections/{id}.
(function (global) {
  'use strict';

  var SOURCE = 'connect-appliance';
  var POLL_MS = 300;

  function features(width, height) {
    var left = Math.max(0, Math.round(global.screenX + (global.outerWidth - width) / 2));
    var top = Math.max(0, Math.round(global.screenY + (global.outerHeight - height) / 2));
    return 'popup=yes,width=' + width + ',height=' + height + ',left=' + left + ',top=' + top;
  }

  // A redirect_url on this page's own origin: the popup came back here with the outcome in the
  // query (?status=connected&connection_id=... or ?status=error&error=...).
  function landedHere(popup) {
    var loc;
    try {
      loc = popup.location;
      if (loc.origin !== global.location.origin) return null;
    } catch (e) {
      return null; // still on another origin
    }
    var q = new URLSearchParams(loc.search);
    var status = q.get('status');
    if (status !== 'connected' && status !== 'error') return null;
    return { source: SOURCE, status: status, connection_id: q.get('connection_id'), error: q.get('error') };
  }

  function outcome(data) {
    if (data.status === 'connected') {
      return { status: 'connected', connection_id: data.connection_id || null };
    }
    return {
      status: 'error',
      connection_id: data.connection_id || null,
      error: String(data.error || 'unknown_error'),
    };
  }

  function open(connectUrl, options) {
    var opts = options || {};
    var url;
    try {
      url = new URL(connectUrl, global.location.href);
    } catch (e) {
      return Promise.reject(new TypeError('ConnectAppliance.open: invalid connect URL'));
    }
    var popup = global.open(url.href, '_blank', features(opts.width || 520, opts.height || 720));
    if (!popup) {
      global.location.assign(url.href);
      return new Promise(function () {});
    }
    return new Promise(function (resolve) {
      var timer;
      function finish(result) {
        global.removeEventListener('message', onMessage);
        clearInterval(timer);
        try {
          popup.close();
        } catch (e) {
          // already gone
        }
        resolve(result);
      }
      function onMessage(event) {
        // Only the appliance's pages, only in the popup this call opened.
        if (event.origin !== url.origin || event.source !== popup) return;
        var data = event.data;
        if (!data || data.source !== SOURCE) return;
        if (data.status !== 'connected' && data.status !== 'error') return;
        finish(outcome(data));
      }
      global.addEventListener('message', onMessage);
      timer = setInterval(function () {
        if (popup.closed) {
          finish({ status: 'closed' });
          return;
        }
        var landed = landedHere(popup);
        if (landed) finish(outcome(landed));
      }, POLL_MS);
    });
  }

  global.ConnectAppliance = Object.freeze({ open: open });
})(window);
