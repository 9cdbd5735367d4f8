/*
 * Mergewise site snippet: a first-party visitor id for the intake (POST /api/leads/).
 *
 * <script src="https://crm.example.com/static/crm/snippet.js" defer></script>
 *
 * Sets the cookie mw_vid (a random id, one year, SameSite=Lax, Secure on https) on the page's own site, and
 * adds it to what the page sends: a hidden input "visitor_id" in every form submitted, and to JSON posts to a
 * URL ending in /api/leads/ (the field visitor_id, and the header X-Visitor-Id). Two requests from one browser
 * then meet in duplicate control even without a phone or an email. No other data is read or sent.
 */
(function () {
  "use strict";
  var NAME = "mw_vid";
  var VALID = /^[A-Za-z0-9_-]{16,64}$/;
  var YEAR = 365 * 24 * 60 * 60;

  function readCookie() {
    var found = document.cookie.match(new RegExp("(?:^|;\\s*)" + NAME + "=([^;]*)"));
    var value = found ? decodeURIComponent(found[1]) : "";
    return VALID.test(value) ? value : "";
  }

  function newId() {
    var bytes = new Uint8Array(16);
    (window.crypto || window.msCrypto).getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }

  var id = readCookie() || newId();
  document.cookie = NAME + "=" + id + "; Max-Age=" + YEAR + "; Path=/; SameSite=Lax" +
    (location.protocol === "https:" ? "; Secure" : "");
  window.mergewiseVisitorId = id;

  function stamp(form) {
    if (!form || form.tagName !== "FORM") { return; }
    var input = form.querySelector('input[name="visitor_id"]');
    if (!input) {
      input = document.createElement("input");
      input.type = "hidden";
      input.name = "visitor_id";
      form.appendChild(input);
    }
    input.value = id;
  }
  document.addEventListener("submit", function (event) { stamp(event.target); }, true);
  Array.prototype.forEach.call(document.forms, stamp);

  if (window.fetch) {
    var originalFetch = window.fetch;
    window.fetch = function (resource, init) {
      var url = typeof resource === "string" ? resource : (resource && resource.url) || "";
      if (/\/api\/leads\/?(\?|$)/.test(url) && init && typeof init.body === "string") {
        try {
          var body = JSON.parse(init.body);
          if (body && typeof body === "object" && !body.visitor_id) {
            body.visitor_id = id;
            init = Object.assign({}, init, { body: JSON.stringify(body) });
          }
        } catch (error) { /* not JSON: sent as it is, with the header below */ }
        var headers = new Headers(init.headers || {});
        headers.set("X-Visitor-Id", id);
        init = Object.assign({}, init, { headers: headers });
      }
      return originalFetch.call(this, resource, init);
    };
  }
}());
