// Live parts of console pages, without a build step or any library.
//   data-live="URL"          the element's content is replaced by the fragment at URL when it changes
//   data-live-version="V"    sent as ?have=V; the server answers 204 while nothing changed, and names the
//                            new version in the X-Live-Version header
//   data-deadline="MS"       a countdown to a Unix-ms instant, corrected by the server's clock (body data-now)
// Fragments answer 401 once the session has ended: the page then reloads into the sign-in page.
"use strict";
(function () {
  var body = document.body;
  var every = parseInt(body.getAttribute("data-live-ms") || "2000", 10);
  var skew = parseInt(body.getAttribute("data-now") || "0", 10) - Date.now();

  function get(url) {
    return fetch(url, {
      credentials: "same-origin",
      headers: { "X-Parley-Live": "1" },
      cache: "no-store",
    }).then(function (r) {
      if (r.status === 401) {
        window.location.reload();
        throw new Error("signed out");
      }
      if (!r.ok) throw new Error("HTTP " + r.status);
      return r;
    });
  }

  function focusKey(el) {
    var a = document.activeElement;
    return a && el.contains(a) && a.id ? a.id : null;
  }

  function replace(el) {
    var url = el.getAttribute("data-live");
    var version = el.getAttribute("data-live-version");
    if (version !== null) url += (url.indexOf("?") < 0 ? "?" : "&") + "have=" + encodeURIComponent(version);
    get(url).then(function (r) {
      if (r.status === 204) return null;
      return r.text().then(function (html) { return { html: html, version: r.headers.get("X-Live-Version") }; });
    }).then(function (got) {
      if (got === null || got.html === el.getAttribute("data-live-last")) return;
      // Never pull a form from under someone typing in it: try again on the next round.
      var a = document.activeElement;
      if (a && el.contains(a) && /^(INPUT|TEXTAREA|SELECT)$/.test(a.tagName) && a.value) return;
      var keep = focusKey(el);
      el.innerHTML = got.html;
      el.setAttribute("data-live-last", got.html);
      if (got.version !== null) el.setAttribute("data-live-version", got.version);
      if (keep && document.getElementById(keep)) document.getElementById(keep).focus();
      countdowns(el);
    }).catch(function () {}).then(function () { setTimeout(function () { replace(el); }, every); });
  }

  function span(ms) {
    var s = Math.floor(Math.abs(ms) / 1000);
    var d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600);
    var m = Math.floor((s % 3600) / 60), r = s % 60;
    function two(n) { return (n < 10 ? "0" : "") + n; }
    return (d ? d + "d " : "") + two(h) + ":" + two(m) + ":" + two(r);
  }

  function tick(el) {
    var left = parseInt(el.getAttribute("data-deadline"), 10) - (Date.now() + skew);
    var over = left < 0;
    el.textContent = over
      ? el.getAttribute("data-overdue") + " " + span(left)
      : span(left) + " " + el.getAttribute("data-left");
    el.classList.toggle("overdue", over);
  }

  var clocks = [];
  function countdowns(root) {
    root.querySelectorAll("[data-deadline]").forEach(function (el) {
      if (clocks.indexOf(el) < 0) clocks.push(el);
      tick(el);
    });
  }

  countdowns(document);
  setInterval(function () {
    clocks = clocks.filter(function (el) { return document.body.contains(el); });
    clocks.forEach(tick);
  }, 1000);
  document.querySelectorAll("[data-live]").forEach(function (el) {
    el.setAttribute("data-live-last", el.innerHTML);
    setTimeout(function () { replace(el); }, every);
  });
})();
