/* goroscope report script: inlined by report/mod.rs. Sortable tables and flame-graph zoom and
   search. It holds no data: everything it reads is in the DOM, and it does nothing when an
   element it looks for is missing. */
(function () {
  "use strict";
  function each(list, f) { Array.prototype.forEach.call(list || [], f); }

  function cellValue(row, i) {
    var cell = row.cells[i];
    if (!cell) return "";
    var v = cell.getAttribute("data-v");
    return v === null ? (cell.textContent || "").toLowerCase() : parseFloat(v);
  }

  each(document.querySelectorAll("table.sortable"), function (table) {
    var body = table.tBodies && table.tBodies[0];
    if (!body || !table.tHead) return;
    each(table.tHead.querySelectorAll("th"), function (th, i) {
      function sort() {
        var desc = !th.classList.contains("sorted-desc");
        if (th.classList.contains("num") && !th.classList.contains("sorted-desc") && !th.classList.contains("sorted-asc")) desc = true;
        each(table.tHead.querySelectorAll("th"), function (h) { h.classList.remove("sorted-asc", "sorted-desc"); });
        th.classList.add(desc ? "sorted-desc" : "sorted-asc");
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = cellValue(a, i), y = cellValue(b, i);
          var c = x < y ? -1 : x > y ? 1 : 0;
          return desc ? -c : c;
        });
        each(rows, function (r) { body.appendChild(r); });
      }
      th.addEventListener("click", sort);
      th.addEventListener("keydown", function (e) { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sort(); } });
    });
  });

  /* Flame graphs drawn by inferno (report/flame.rs): in each div.flamegraph an svg.fg whose
     inner svg (id ending in "-frames", data-total) holds one <g> per frame: <title>name (value,
     share)</title>, <rect> with x and width in % of the graph and the frame's extent in
     data-x and data-w (value units), <text> label. The root is at the bottom (largest y). */
  var FONT = 12, FONT_WIDTH = 0.59;
  function fit(name, widthPct, image) {
    /* inferno's rule: as many characters as fit, cut with "..", none under 3. */
    var room = Math.floor(widthPct / (100 * FONT * FONT_WIDTH / image));
    if (room < 3) return "";
    return name.length < room ? name : name.slice(0, room - 2) + "..";
  }
  function pct(v) { return v.toFixed(4) + "%"; }

  each(document.querySelectorAll("div.flamegraph"), function (div) {
    var svg = div.querySelector("svg.fg");
    var inner = svg && svg.querySelector("svg[data-total]");
    if (!inner) return;
    var total = parseFloat(inner.getAttribute("data-total")) || 1;
    var image = (svg.viewBox && svg.viewBox.baseVal && svg.viewBox.baseVal.width) || 1200;
    var details = svg.querySelector("text[id$='-details']");
    var frames = [], rootY = -Infinity;
    each(inner.querySelectorAll("g"), function (g) {
      var title = g.querySelector("title"), rect = g.querySelector("rect"), text = g.querySelector("text");
      if (!title || !rect || !text || rect.getAttribute("data-w") === null) return;
      var info = title.textContent || "", cut = info.lastIndexOf(" (");
      var f = {
        g: g, rect: rect, text: text, info: info,
        name: cut >= 0 ? info.slice(0, cut) : info,
        x: parseFloat(rect.getAttribute("data-x")) || 0,
        w: parseFloat(rect.getAttribute("data-w")) || 0,
        y: parseFloat(rect.getAttribute("y")) || 0,
        label: text.textContent
      };
      rootY = Math.max(rootY, f.y);
      frames.push(f);
    });

    function zoom(z) {
      each(frames, function (f) {
        var inside = f.y <= z.y && f.x >= z.x && f.x + f.w <= z.x + z.w;
        var parent = f.y > z.y && f.x <= z.x && f.x + f.w >= z.x + z.w;
        if (!inside && !parent) { f.g.style.display = "none"; return; }
        var x = parent ? 0 : (f.x - z.x) / z.w * 100;
        var w = parent ? 100 : f.w / z.w * 100;
        f.g.style.display = "";
        f.g.classList.toggle("fg-parent", parent);
        f.rect.setAttribute("x", pct(x));
        f.rect.setAttribute("width", pct(w));
        f.text.setAttribute("x", pct(x + 100 * 3 / image));
        f.text.textContent = f.y === rootY ? f.label : fit(f.name, w, image);
      });
    }
    function reset() {
      zoom({ x: 0, w: total, y: rootY });
      each(frames, function (f) { f.text.textContent = f.label; });
    }

    inner.addEventListener("click", function (e) {
      var g = e.target && e.target.closest ? e.target.closest("g") : null;
      for (var i = 0; g && i < frames.length; i++) if (frames[i].g === g) { zoom(frames[i]); return; }
    });
    inner.addEventListener("mouseover", function (e) {
      var g = e.target && e.target.closest ? e.target.closest("g") : null;
      var title = g && g.querySelector("title");
      if (details && title) details.textContent = title.textContent;
    });
    inner.addEventListener("mouseleave", function () { if (details) details.textContent = " "; });
    var button = div.querySelector(".fg-reset");
    if (button) button.addEventListener("click", reset);

    var search = div.querySelector(".fg-search"), match = div.querySelector(".fg-match");
    if (search) search.addEventListener("input", function () {
      var term = (search.value || "").toLowerCase(), spans = [];
      each(frames, function (f) {
        var hit = term !== "" && f.y < rootY && f.name.toLowerCase().indexOf(term) >= 0;
        f.rect.classList.toggle("fg-hit", hit);
        if (hit) spans.push([f.x, f.x + f.w]);
      });
      spans.sort(function (a, b) { return a[0] - b[0]; });
      var covered = 0, end = -Infinity;
      each(spans, function (s) {
        if (s[0] >= end) { covered += s[1] - s[0]; end = s[1]; }
        else if (s[1] > end) { covered += s[1] - end; end = s[1]; }
      });
      if (match) match.textContent = term === "" ? "" : "matched " + (covered * 100 / total).toFixed(1) + " % of the total";
    });
  });

  window.addEventListener("beforeprint", function () {
    each(document.querySelectorAll("details"), function (d) { d.open = true; });
  });
})();
