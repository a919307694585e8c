// The front desk's one script (the pages' Content-Security-Policy allows no other): keeps the live part of
// a page and the inbox badge fresh by polling, asks before a form marked data-confirm is sent, puts the
// cursor on the first field marked invalid, and reloads a page marked data-reload after that many ms.
// A failed poll (the stack restarting) is shown and retried.
(function () {
  "use strict";
  var EVERY = 2500;

  function busy(region) {
    // Never replace what someone is typing in.
    var active = document.activeElement;
    if (active && region.contains(active) && /^(INPUT|TEXTAREA|SELECT)$/.test(active.tagName)) return true;
    var fields = region.querySelectorAll("textarea, input[type=text]");
    for (var i = 0; i < fields.length; i++) if (fields[i].value !== fields[i].defaultValue) return true;
    return false;
  }

  function poll() {
    var main = document.getElementById("main");
    var url = main && main.getAttribute("data-live");
    if (!url) return;
    var conn = document.getElementById("conn");
    var region = document.getElementById("live");
    fetch(url, { credentials: "same-origin", cache: "no-store" })
      .then(function (response) {
        // Signed out, or the thing shown is gone: the page itself says so.
        if (response.status === 401 || response.status === 404) { location.reload(); return null; }
        if (!response.ok) throw new Error("status " + response.status);
        var count = response.headers.get("X-Inbox-Count");
        var badge = document.getElementById("inbox-badge");
        if (badge && count !== null && badge.textContent !== count) {
          badge.textContent = count;
          badge.setAttribute("aria-label", count + " waiting");
        }
        return response.text();
      })
      .then(function (html) {
        if (conn.textContent) conn.textContent = "";
        if (html === null || !region || busy(region)) return;
        if (region.getAttribute("data-last") !== html) {
          region.innerHTML = html;
          region.setAttribute("data-last", html);
        }
      })
      .catch(function () {
        if (conn) conn.textContent = "Connection lost; retrying…";
      })
      .then(function () { setTimeout(poll, EVERY); });
  }

  document.addEventListener("DOMContentLoaded", function () {
    setTimeout(poll, EVERY);
    var invalid = document.querySelector("[aria-invalid=true]");
    if (invalid) invalid.focus();
    var reload = document.querySelector("[data-reload]");
    if (reload) setTimeout(function () { location.reload(); }, Number(reload.getAttribute("data-reload")));
    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        if (!window.confirm(form.getAttribute("data-confirm"))) event.preventDefault();
      });
    });
  });
})();
