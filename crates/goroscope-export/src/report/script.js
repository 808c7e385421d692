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

  var CHAR = 6.6;
  function fit(name, width) {
    var room = Math.floor((width - 6) / CHAR);
    if (room < 3) return "";
    return name.length <= room ? name : name.slice(0, room - 2) + "..";
  }

  each(document.querySelectorAll("div.flamegraph"), function (div) {
    var svg = div.querySelector("svg.fg");
    if (!svg) return;
    var W = (svg.viewBox && svg.viewBox.baseVal && svg.viewBox.baseVal.width) || 1200;
    var total = parseFloat(svg.getAttribute("data-total")) || 1;
    var frames = [];
    each(svg.querySelectorAll("g[data-w]"), function (g) {
      var title = g.querySelector("title"), rect = g.querySelector("rect"), text = g.querySelector("text");
      if (!rect || !text) return;
      frames.push({
        g: g, rect: rect, text: text,
        x: parseFloat(g.getAttribute("data-x")) || 0,
        w: parseFloat(g.getAttribute("data-w")) || 0,
        d: parseInt(g.getAttribute("data-d"), 10) || 0,
        name: title ? (title.textContent || "").split("\n")[0] : ""
      });
    });

    function layout(x0, w0, d0) {
      each(frames, function (f) {
        var inside = f.d >= d0 && f.x >= x0 && f.x + f.w <= x0 + w0;
        var parent = f.d < d0 && f.x <= x0 && f.x + f.w >= x0 + w0;
        if (!inside && !parent) { f.g.style.display = "none"; return; }
        var x = parent ? 0 : (f.x - x0) / w0 * W;
        var w = parent ? W : f.w / w0 * W;
        f.g.style.display = "";
        f.g.classList.toggle("fg-parent", parent && f.d < d0);
        f.rect.setAttribute("x", x.toFixed(1));
        f.rect.setAttribute("width", w.toFixed(1));
        f.text.setAttribute("x", (x + 3).toFixed(1));
        f.text.textContent = fit(f.name, w);
      });
    }

    svg.addEventListener("click", function (e) {
      var g = e.target && e.target.closest ? e.target.closest("g[data-w]") : null;
      if (!g) return;
      var w = parseFloat(g.getAttribute("data-w")) || total;
      layout(parseFloat(g.getAttribute("data-x")) || 0, w, parseInt(g.getAttribute("data-d"), 10) || 0);
    });
    var reset = div.querySelector(".fg-reset");
    if (reset) reset.addEventListener("click", function () { layout(0, total, 0); });

    var search = div.querySelector(".fg-search"), match = div.querySelector(".fg-match");
    if (search) search.addEventListener("input", function () {
      var term = (search.value || "").toLowerCase(), spans = [];
      each(frames, function (f) {
        var hit = term !== "" && f.d > 0 && f.name.toLowerCase().indexOf(term) >= 0;
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
