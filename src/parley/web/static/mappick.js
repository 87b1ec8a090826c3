// Click the notice composer's map to enter positions (no library, no network).
//   <svg class="pick-map" data-west data-north data-kx data-ky data-pad>   the projection
//   <select id="pick-target">                                             which input clicks go to
// An area input gets a corner added ("; 37.5012N 127.0034E"), a point input is replaced.
// Positions are rounded to 4 decimals (about 11 m): the text box stays what is sent, and the
// person can edit it; the server parses and checks it like anything typed.
"use strict";
(function () {
  var svg = document.querySelector("svg.pick-map");
  var target = document.getElementById("pick-target");
  if (!svg || !target) return;
  function num(name) { return parseFloat(svg.getAttribute("data-" + name)); }
  function fmt(v, pos, neg) {
    return Math.abs(v).toFixed(4) + (v < 0 ? neg : pos);
  }
  svg.style.cursor = "crosshair";
  svg.addEventListener("click", function (ev) {
    var input = target.value && document.getElementById(target.value);
    if (!input) return;
    var pt = svg.createSVGPoint();
    pt.x = ev.clientX;
    pt.y = ev.clientY;
    var p = pt.matrixTransform(svg.getScreenCTM().inverse());
    var pad = num("pad");
    if (p.x < pad || p.y < pad || p.x > pad + num("w") || p.y > pad + num("h")) return;
    var lon = num("west") + (p.x - pad) / num("kx");
    var lat = num("north") - (p.y - pad) / num("ky");
    var text = fmt(lat, "N", "S") + " " + fmt(lon, "E", "W");
    if (input.getAttribute("data-pick") === "area" && input.value.trim() &&
        !/^\s*(circle|원형)/i.test(input.value)) {
      input.value = input.value.replace(/[;\s]+$/, "") + "; " + text;
    } else {
      input.value = text;
    }
    input.dispatchEvent(new Event("change", { bubbles: true }));
  });
})();
