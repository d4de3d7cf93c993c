// The resident's QR code page (/me/code): draw a fresh dynamic code before the one on screen expires,
// and again as soon as the tab is looked at. The staff print page: a print button.
// No inline script (the pages' CSP forbids it); the image arrives as a data: URL, which the CSP allows.
(function () {
  "use strict";

  var printButton = document.querySelector("[data-print]");
  if (printButton) {
    printButton.hidden = false;
    printButton.addEventListener("click", function () { window.print(); });
  }

  var box = document.getElementById("qr-code");
  if (!box) return;
  var image = document.getElementById("qr-image");
  var countdown = document.getElementById("qr-countdown");
  var status = document.getElementById("qr-status");
  var toggle = document.getElementById("qr-payment");
  var refreshMs = Math.max(1, parseInt(box.dataset.refresh, 10) || 60) * 1000;
  var nextTimer = null;
  var tickTimer = null;
  var expiresAt = 0;
  var nextAt = 0;
  var latest = 0; // the number of the newest request: an older answer arriving late is dropped
  var stopped = false; // the session ended or the card stopped working: no more draws

  function codeUrl() {
    var params = new URLSearchParams();
    if (box.dataset.member) params.set("member", box.dataset.member);
    if (toggle && toggle.checked) params.set("payment", toggle.value);
    var query = params.toString();
    return box.dataset.endpoint + (query ? "?" + query : "");
  }

  function say(message, link) {
    status.textContent = message || "";
    if (link) {
      var a = document.createElement("a");
      a.href = box.dataset.signIn;
      a.textContent = box.dataset.signInLabel;
      status.appendChild(document.createTextNode(" "));
      status.appendChild(a);
    }
  }

  function tick() {
    var now = Date.now();
    if (expiresAt && now >= expiresAt) {
      image.hidden = true; // never leave an expired code on screen
      box.dataset.state = "expired";
    }
    var left = Math.max(0, Math.ceil((nextAt - now) / 1000));
    countdown.textContent = box.dataset.countdown.replace("{seconds}", String(left));
  }

  function schedule(ms) {
    clearTimeout(nextTimer);
    nextAt = Date.now() + ms;
    nextTimer = setTimeout(draw, ms);
    clearInterval(tickTimer);
    tickTimer = setInterval(tick, 1000);
    tick();
  }

  function stop(message, withSignIn) {
    stopped = true;
    clearTimeout(nextTimer);
    clearInterval(tickTimer);
    image.hidden = true;
    image.removeAttribute("src");
    countdown.textContent = "";
    if (toggle) toggle.disabled = true;
    box.dataset.state = "stopped";
    say(message, withSignIn);
  }

  function failed(answer, problem) {
    var code = problem && problem.code;
    if (answer.status === 401) return stop(box.dataset.msgSession, true);
    if (code === "card_not_active" || code === "qr_revoked") return stop(box.dataset.msgInactive, false);
    if (answer.status === 404) return stop(box.dataset.msgNotFound, false);
    say((problem && problem.detail) || box.dataset.msgError);
    schedule(5000);
  }

  function show(dataUrl, answer) {
    expiresAt = Date.parse(answer.headers.get("X-EHC-Expires-At")) || 0;
    image.src = dataUrl;
    image.hidden = false;
    box.dataset.state = "ready";
    box.dataset.draws = String((parseInt(box.dataset.draws, 10) || 0) + 1);
    box.dataset.twoInOne = toggle && toggle.checked ? "1" : "0";
    say("");
    schedule(refreshMs);
  }

  function draw() {
    if (stopped || document.visibilityState === "hidden") return;
    var mine = ++latest;
    clearTimeout(nextTimer);
    countdown.textContent = box.dataset.redrawing;
    fetch(codeUrl(), { credentials: "same-origin", cache: "no-store",
                       headers: { "Accept": "image/png, application/problem+json" } })
      .then(function (answer) {
        if (mine !== latest) return null;
        if (!answer.ok) {
          return answer.json().catch(function () { return null; })
            .then(function (problem) { if (mine === latest) failed(answer, problem); });
        }
        return answer.blob().then(function (blob) {
          var reader = new FileReader();
          reader.onload = function () { if (mine === latest) show(reader.result, answer); };
          reader.readAsDataURL(blob);
        });
      })
      .catch(function () {
        if (mine !== latest) return;
        say(box.dataset.msgOffline);
        schedule(5000);
      });
  }

  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible") {
      draw();
    } else {
      clearTimeout(nextTimer); // no codes drawn for a tab nobody looks at
    }
  });
  if (toggle) toggle.addEventListener("change", draw);
  draw();
})();
