// Stallbox till enhancement. Every form works without this file; with it,
// taps update the page without a full reload, run one at a time in order,
// and a checkout cannot be sent twice from the same page.
(function () {
  "use strict";

  var queue = Promise.resolve();
  var SEARCH_DELAY_MS = 250;

  function note(text) {
    var old = document.querySelector(".offline-note");
    if (old) { old.remove(); }
    if (!text) { return; }
    var p = document.createElement("p");
    p.className = "error offline-note";
    p.setAttribute("role", "alert");
    p.textContent = text;
    document.body.appendChild(p);
  }

  function swap(html, url, push) {
    var doc = new DOMParser().parseFromString(html, "text/html");
    var main = doc.querySelector("main");
    var bar = doc.querySelector("header.bar");
    if (!main || !bar) { window.location.assign(url); return; }
    document.querySelector("main").replaceWith(main);
    document.querySelector("header.bar").replaceWith(bar);
    document.title = doc.title;
    document.body.className = doc.body.className;
    if (url !== window.location.href) {
      history[push ? "pushState" : "replaceState"](null, "", url);
    }
    var first = main.querySelector("[autofocus]");
    if (first) { first.focus(); }
  }

  function send(form, submitter) {
    var data = new FormData(form, submitter);
    var body = new URLSearchParams(data);
    var checkout = form.hasAttribute("data-checkout");
    form.classList.add("busy");
    // getAttribute: a field named "action" shadows the form's action property.
    return fetch(form.getAttribute("action"), {
      method: "POST", body: body, credentials: "same-origin",
      headers: { "Content-Type": "application/x-www-form-urlencoded" }
    }).then(function (resp) {
      var type = resp.headers.get("Content-Type") || "";
      if (type.indexOf("text/html") !== 0) {
        throw new Error("The till answered " + resp.status + ". Please try again.");
      }
      return resp.text().then(function (html) {
        note("");
        swap(html, resp.url, checkout && resp.ok);
      });
    }).catch(function (err) {
      form.classList.remove("busy");
      if (checkout) { form.removeAttribute("data-sent"); }
      note(err instanceof TypeError
        ? "No connection to the till. Nothing was lost: tap again."
        : err.message);
    });
  }

  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    if (!form.hasAttribute("data-enhance") || !window.fetch) { return; }
    ev.preventDefault();
    if (form.hasAttribute("data-checkout")) {
      // One checkout per page; the server would return the same sale anyway.
      if (form.hasAttribute("data-sent")) { return; }
      form.setAttribute("data-sent", "1");
    }
    var submitter = ev.submitter || null;
    queue = queue.then(function () { return send(form, submitter); });
  });

  var searchTimer = 0;
  document.addEventListener("input", function (ev) {
    var input = ev.target;
    var form = input.form;
    if (!form || !form.hasAttribute("data-search")) { return; }
    clearTimeout(searchTimer);
    searchTimer = setTimeout(function () {
      var url = form.getAttribute("action") + "?" +
        new URLSearchParams(new FormData(form));
      fetch(url, { credentials: "same-origin" }).then(function (resp) {
        return resp.text().then(function (html) {
          var doc = new DOMParser().parseFromString(html, "text/html");
          var fresh = doc.getElementById("products");
          var here = document.getElementById("products");
          if (fresh && here && input.form === form) {
            here.replaceWith(fresh);
            history.replaceState(null, "", resp.url);
          }
        });
      }).catch(function () { /* the plain Search button still works */ });
    }, SEARCH_DELAY_MS);
  });

  window.addEventListener("popstate", function () {
    window.location.reload();
  });
})();
