// Customer display: follow the till's cart and the slot over server-sent events.
// Without JavaScript the page refreshes itself (meta refresh in <noscript>).
(function () {
  "use strict";
  var body = document.body;
  var url = body && body.getAttribute("data-events");
  if (!url || !window.EventSource) { return; }
  var cart = document.getElementById("cart");
  var slot = document.getElementById("slot");
  var source = new EventSource(url);
  function state(kind) {
    return function (event) {
      body.className = body.className.replace(/state-\w+/, "state-" + kind);
      cart.innerHTML = event.data;
    };
  }
  source.addEventListener("idle", state("idle"));
  source.addEventListener("cart", state("cart"));
  source.addEventListener("card", state("card"));
  source.addEventListener("thanks", state("thanks"));
  source.addEventListener("slot", function (event) { slot.innerHTML = event.data; });
})();
