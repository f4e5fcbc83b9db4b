// warren dashboard behaviour. Loaded after htmx.min.js; no inline scripts
// anywhere because the Content-Security-Policy is script-src 'self'.
//
// What lives here instead of hx-* attributes (htmx expressions need eval):
//   - the CSRF header on every htmx request (token from <meta name="csrf-token">);
//   - refreshes of an element are skipped while the user edits one of its
//     inputs, and for a few seconds after a control showed an error or a result;
//   - error responses that carry an HTML fragment (the re-rendered row or
//     panel with the message next to the control and the real value) are
//     swapped in; other errors (403 CSRF, network) are written next to the
//     control and the inputs go back to their last rendered value;
//   - "live · updated HH:MM:SS" and, after two failed refreshes in a row,
//     "connection lost, last updated at HH:MM:SS": values greyed, controls
//     disabled, until a refresh succeeds again;
//   - a reload when the server answers with another build (X-Warren-Build
//     differs from <meta name="warren-build">): new assets, new markup.
//
// Nothing here grows with time: a fixed set of listeners, one timer, counters
// and flags only. Every polling element has hx-sync="this:drop", so htmx
// sends at most one request per element at a time.
(function () {
  'use strict';

  var ERROR_HOLD_MS = 8000; // how long a control's error or result stays before refreshes resume
  var LOST_AFTER = 2; // consecutive failed refreshes before "connection lost"
  var HEARTBEAT_MS = 2000; // pages without refreshing elements probe /healthz this often

  htmx.config.allowEval = false;
  htmx.config.allowScriptTags = false;
  htmx.config.includeIndicatorStyles = false;
  htmx.config.selfRequestsOnly = true;
  htmx.config.historyCacheSize = 0;
  htmx.config.timeout = 10000;

  var failures = 0;
  var lastOK = null; // Date of the last successful update
  var lost = false;
  var reloading = false;
  var heartbeatBusy = false;

  function meta(name) {
    var m = document.querySelector('meta[name="' + name + '"]');
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
    var fields = el.querySelectorAll('input, select, textarea');
    for (var i = 0; i < fields.length; i++) {
      var f = fields[i];
      if (f === document.activeElement) return true;
      if (f.tagName === 'INPUT' && f.type !== 'hidden' && f.value !== f.defaultValue) return true;
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

  // Controls are disabled while the connection is lost (a click could not
  // reach the server, and the values it would act on are stale). Only those
  // disabled here are enabled again.
  var CONTROLS = 'main button, main input, main select, main textarea';

  function disableControls(root) {
    var els = root.querySelectorAll ? root.querySelectorAll(CONTROLS) : [];
    for (var i = 0; i < els.length; i++) {
      if (!els[i].disabled) {
        els[i].disabled = true;
        els[i].setAttribute('data-offline-disabled', '');
      }
    }
  }

  function enableControls() {
    var els = document.querySelectorAll('[data-offline-disabled]');
    for (var i = 0; i < els.length; i++) {
      els[i].disabled = false;
      els[i].removeAttribute('data-offline-disabled');
    }
  }

  function setLost(on) {
    lost = on;
    document.documentElement.classList.toggle('offline', on);
    if (on) {
      disableControls(document);
    } else {
      enableControls();
    }
  }

  function refreshOK() {
    failures = 0;
    lastOK = new Date();
    if (lost) setLost(false);
    setConn('live', 'live · updated ' + clock(lastOK));
  }

  function refreshFailed() {
    failures++;
    if (failures < LOST_AFTER) return;
    if (!lost) setLost(true);
    setConn('lost', 'connection lost, last updated at ' + (lastOK ? clock(lastOK) : 'never') + ' · retrying');
  }

  // checkBuild reloads the page once the server runs another build, so the
  // page never mixes old assets with new fragments.
  function checkBuild(xhr) {
    var mine = meta('warren-build');
    var theirs = xhr && xhr.getResponseHeader ? xhr.getResponseHeader('X-Warren-Build') : null;
    if (reloading || !mine || !theirs || theirs === mine) return false;
    reloading = true;
    setConn('pending', 'new version of warren · reloading');
    window.location.reload();
    return true;
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
    var result = form.querySelector('.control-result');
    if (result) result.textContent = '';
    var inputs = form.querySelectorAll('input');
    for (var i = 0; i < inputs.length; i++) inputs[i].value = inputs[i].defaultValue;
    var holder = form.closest('[data-refresh]');
    if (holder) holder.setAttribute('data-error-shown', String(Date.now()));
  }

  document.addEventListener('htmx:configRequest', function (evt) {
    var token = meta('csrf-token');
    if (token) evt.detail.headers['X-CSRF-Token'] = token;
  });

  // Skip a refresh while the user edits the element, while it shows a fresh
  // error or result, or while the tab is hidden (nobody is looking; saves the
  // server). No control request while the page knows it is offline.
  document.addEventListener('htmx:confirm', function (evt) {
    var elt = evt.detail.elt;
    if (evt.detail.verb !== 'get') {
      if (lost) evt.preventDefault();
      return;
    }
    if (!elt.hasAttribute('data-refresh')) return;
    if (document.hidden || editing(elt) || holdingError(elt)) evt.preventDefault();
  });

  // htmx does not swap 4xx/5xx bodies by default. The UI endpoints answer
  // errors with the re-rendered fragment (text/html: the row or panel with
  // the real values and the message next to the control), so swap those;
  // the error is then handled and shown, not a failure of the connection.
  // The element under a pressed pointer, until the click it makes has been
  // dispatched (click follows pointerup in the same task).
  var pressed = null;
  document.addEventListener('pointerdown', function (evt) { pressed = evt.target; }, true);
  document.addEventListener('pointerup', function () { setTimeout(function () { pressed = null; }, 0); }, true);
  document.addEventListener('pointercancel', function () { pressed = null; }, true);

  document.addEventListener('htmx:beforeSwap', function (evt) {
    var xhr = evt.detail.xhr;
    if (checkBuild(xhr)) {
      evt.detail.shouldSwap = false;
      return;
    }
    // A refresh that was already on its way when the user started to type
    // or to press a button must not replace what is under their hands:
    // the typed text would be lost, or the click would land on nothing.
    var target = evt.detail.target;
    if (isRefresh(evt.detail) && target && evt.detail.elt.hasAttribute('data-refresh') &&
        (editing(target) || (pressed && target.contains(pressed)))) {
      evt.detail.shouldSwap = false;
      return;
    }
    if (xhr.status < 400) return;
    if (isHTML(xhr)) {
      evt.detail.shouldSwap = true;
      evt.detail.isError = false;
    }
  });

  // Stamp freshly swapped elements that show an error or a result so
  // refreshes hold off; content that arrives while offline starts disabled.
  document.addEventListener('htmx:load', function (evt) {
    var el = evt.detail.elt;
    if (!el || !el.matches) return;
    if (el.matches('[data-refresh]') && el.querySelector('form .control-error:not(:empty), form .control-result:not(:empty)')) {
      el.setAttribute('data-error-shown', String(Date.now()));
    }
    if (lost) disableControls(el.parentNode || el);
  });

  document.addEventListener('htmx:afterRequest', function (evt) {
    var xhr = evt.detail.xhr;
    if (!xhr || xhr.status === 0) return;
    checkBuild(xhr);
    if (isRefresh(evt.detail) && xhr.status >= 200 && xhr.status < 400) refreshOK();
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

  // A page without refreshing elements (nothing polls) still learns that the
  // server went away, came back or changed build: one probe at a time.
  function heartbeat() {
    if (heartbeatBusy || document.hidden || document.querySelector('[data-refresh]')) return;
    heartbeatBusy = true;
    var xhr = new XMLHttpRequest();
    xhr.open('GET', '/healthz', true);
    xhr.timeout = htmx.config.timeout;
    xhr.onload = function () {
      heartbeatBusy = false;
      if (checkBuild(xhr)) return;
      if (xhr.status >= 200 && xhr.status < 400) refreshOK(); else refreshFailed();
    };
    xhr.onerror = xhr.ontimeout = xhr.onabort = function () {
      heartbeatBusy = false;
      refreshFailed();
    };
    xhr.send();
  }
  window.setInterval(heartbeat, HEARTBEAT_MS);

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
