// The clock page: send this tablet's time when no time was typed. Kept out of
// the page because the Content-Security-Policy allows no inline script.
(function () {
  "use strict";
  var form = document.getElementById("clock-form");
  if (!form) { return; }
  form.addEventListener("submit", function () {
    if (!form.elements.local.value) {
      document.getElementById("epoch_ms").value = String(Date.now());
    }
  });
}());
