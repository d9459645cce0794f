// Card payment page: follow the payment's server-sent events and reload when
// it is final. Without this file the page reloads itself (noscript refresh).
(function () {
  "use strict";
  var card = document.querySelector("[data-payment]");
  if (!card || card.getAttribute("data-outcome") !== "pending" || !window.EventSource) {
    return;
  }
  var id = card.getAttribute("data-payment");
  var source = new EventSource("/api/v1/payments/" + encodeURIComponent(id) + "/events");
  source.addEventListener("payment", function (event) {
    var payment = JSON.parse(event.data);
    var prompt = document.getElementById("prompt");
    if (prompt && payment.prompt) { prompt.textContent = payment.prompt; }
    if (payment.outcome !== "pending") {
      source.close();
      window.location.reload();
    }
  });
  source.onerror = function () {
    source.close();
    window.setTimeout(function () { window.location.reload(); }, 1000);
  };
}());
