// warren dashboard behaviour. Loaded after htmx.min.js; no inline scripts
// anywhere because the Content-Security-Policy is script-src 'self'.
//
// What lives here instead of hx-* attributes (htmx expressions need eval):
//   - the CSRF header on every htmx request (token from <meta name="csrf-token">);
//   - refreshes of a consumer row are skipped while the user edits one of its
//     inputs, and for a few seconds after a control showed an error;
//   - error responses that carry an HTML fragment (the re-rendered consumer row
//     with the message next to the control and the real value) are swapped in;
//     other errors (403 CSRF, network) are written next to the control and the
//     inputs go back to their last rendered value;
//   - "last updated" and, after two failed refreshes in a row, "connection lost".
(function () {
  'use strict';

  var ERROR_HOLD_MS = 8000; // how long a control's error stays before refreshes resume
  var LOST_AFTER = 2; // consecutive failed refreshes before "connection lost"

  htmx.config.allowEval = false;
  htmx.config.allowScriptTags = false;
  htmx.config.includeIndicatorStyles = false;
  htmx.config.selfRequestsOnly = true;
  htmx.config.historyCacheSize = 0;
  htmx.config.timeout = 10000;

  var failures = 0;

  function csrfToken() {
    var m = document.querySelector('meta[name="csrf-token"]');
    return m ? m.getAttribute('content') : '';
  }

  function isHTML(xhr) {
    return (xhr.getResponseHeader('Content-Type') || '').indexOf('text/html') === 0;
  }

  function isRefresh(detail) {
    return detail && detail.requestConfig && detail.requestConfig.verb === 'get';
  }

  // editing reports whether the user is busy with an input inside el: it has
  // focus, or its value differs from what the server last rendered.
  function editing(el) {
    var inputs = el.querySelectorAll('input');
    for (var i = 0; i < inputs.length; i++) {
      var input = inputs[i];
      if (input === document.activeElement) return true;
      if (input.type !== 'hidden' && input.value !== input.defaultValue) return true;
    }
    return false;
  }

  function holdingError(el) {
    var at = Number(el.getAttribute('data-error-shown') || 0);
    return at > 0 && Date.now() - at < ERROR_HOLD_MS;
  }

  function setConn(state, text) {
    var el = document.getElementById('conn');
    if (!el) return;
    el.className = 'conn conn-' + state;
    el.textContent = text;
  }

  function pad(n) {
    return (n < 10 ? '0' : '') + n;
  }

  // clock writes a time in UTC with its zone, like the server-rendered times
  // next to it ("polled 16:23:48 UTC"): one zone on the page, the one an
  // on-call team shares.
  function clock(d) {
    return pad(d.getUTCHours()) + ':' + pad(d.getUTCMinutes()) + ':' + pad(d.getUTCSeconds()) + ' UTC';
  }

  function refreshOK() {
    failures = 0;
    setConn('live', 'live · updated ' + clock(new Date()));
  }

  function refreshFailed() {
    failures++;
    if (failures >= LOST_AFTER) {
      setConn('lost', 'connection lost · retrying');
    }
  }

  // errorText extracts a short message from a failed response.
  function errorText(xhr) {
    if (!xhr || xhr.status === 0) return 'request failed: server unreachable';
    var body = xhr.responseText || '';
    try {
      var parsed = JSON.parse(body);
      if (parsed && typeof parsed.error === 'string') return parsed.error;
    } catch (e) {
      // not JSON: fall through
    }
    return 'request failed (' + xhr.status + ')';
  }

  // showControlError writes msg next to the control that sent the request and
  // puts the inputs back to the value the server last rendered.
  function showControlError(elt, msg) {
    var form = elt && elt.closest ? elt.closest('form') : null;
    if (!form) return;
    var out = form.querySelector('.control-error');
    if (out) out.textContent = msg;
    var inputs = form.querySelectorAll('input');
    for (var i = 0; i < inputs.length; i++) inputs[i].value = inputs[i].defaultValue;
    var row = form.closest('[data-refresh]');
    if (row) row.setAttribute('data-error-shown', String(Date.now()));
  }

  document.addEventListener('htmx:configRequest', function (evt) {
    var token = csrfToken();
    if (token) evt.detail.headers['X-CSRF-Token'] = token;
  });

  // Skip a refresh while the user edits the element, while it shows a fresh
  // error, or while the tab is hidden (nobody is looking; saves the server).
  document.addEventListener('htmx:confirm', function (evt) {
    var elt = evt.detail.elt;
    if (evt.detail.verb !== 'get' || !elt.hasAttribute('data-refresh')) return;
    if (document.hidden || editing(elt) || holdingError(elt)) evt.preventDefault();
  });

  // htmx does not swap 4xx/5xx bodies by default. The UI endpoints answer
  // errors with the re-rendered fragment (text/html: the row with the real
  // values and the message next to the control), so swap those; the error
  // is then handled and shown, not a failure of the connection.
  document.addEventListener('htmx:beforeSwap', function (evt) {
    var xhr = evt.detail.xhr;
    if (xhr.status < 400) return;
    if (isHTML(xhr)) {
      evt.detail.shouldSwap = true;
      evt.detail.isError = false;
    }
  });

  // Stamp freshly swapped rows that show an error so refreshes hold off.
  document.addEventListener('htmx:load', function (evt) {
    var el = evt.detail.elt;
    if (el && el.matches && el.matches('[data-refresh]') && el.querySelector('form .control-error:not(:empty)')) {
      el.setAttribute('data-error-shown', String(Date.now()));
    }
  });

  document.addEventListener('htmx:afterRequest', function (evt) {
    if (isRefresh(evt.detail) && evt.detail.xhr && evt.detail.xhr.status >= 200 && evt.detail.xhr.status < 400) {
      refreshOK();
    }
  });

  // onFailure handles what was not swapped: a failed refresh counts towards
  // "connection lost"; a failed control shows the message next to itself.
  function onFailure(evt) {
    var detail = evt.detail;
    if (isRefresh(detail)) {
      refreshFailed();
      return;
    }
    showControlError(detail.elt, errorText(detail.xhr));
  }
  document.addEventListener('htmx:responseError', onFailure);
  document.addEventListener('htmx:sendError', onFailure);
  document.addEventListener('htmx:timeout', onFailure);

  // The page itself was just rendered by the server: that is an update.
  document.addEventListener('DOMContentLoaded', refreshOK);

  // Escape abandons an edit: back to the rendered value, refreshes resume.
  document.addEventListener('keydown', function (evt) {
    var t = evt.target;
    if (evt.key === 'Escape' && t && t.tagName === 'INPUT') {
      t.value = t.defaultValue;
      t.blur();
    }
  });
})();
