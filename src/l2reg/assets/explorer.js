/* The λ explorer of an l2reg report.
 *
 * A slider over the trained λ grid redraws six small SVG charts and a row of
 * numbers from the JSON block #l2reg-explorer-data (written by l2reg/explorer.py;
 * one entry per λ in data.models). Plain JavaScript, no library, no network:
 * the report stays one self-contained file.
 */
(function () {
  "use strict";
  var root = document.getElementById("l2reg-explorer");
  var source = document.getElementById("l2reg-explorer-data");
  if (!root || !source) { return; }
  var data = JSON.parse(source.textContent);
  var models = data.models;
  var slider = root.querySelector("input[type=range]");
  // The SVG namespace, read from a chart already in the page (so no address is spelled out here).
  var NS = root.querySelector("svg").namespaceURI;
  var W = 620, H = 320, M = { left: 66, right: 14, top: 56, bottom: 50 };
  var C = { selected: "#6a3d9a", reference: "#777777", chosen: "#d62728", faint: "#cfcfcf",
            decay: "#c51b7d", data: "#2c7fb8" };

  // ------------------------------------------------------------ helpers

  function el(name, attrs, parent, text) {
    var node = document.createElementNS(NS, name);
    Object.keys(attrs || {}).forEach(function (k) {
      if (attrs[k] !== null && attrs[k] !== undefined) { node.setAttribute(k, attrs[k]); }
    });
    if (text !== undefined) { node.textContent = text; }
    if (parent) { parent.appendChild(node); }
    return node;
  }

  function finite(v) { return typeof v === "number" && isFinite(v); }

  function extent(arrays, positive) {
    var lo = Infinity, hi = -Infinity;
    arrays.forEach(function (a) {
      (a || []).forEach(function (v) {
        if (finite(v) && (!positive || v > 0)) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
      });
    });
    if (lo > hi) { return positive ? [0.1, 1] : [0, 1]; }
    if (lo === hi) { return positive ? [lo / 2, hi * 2] : [lo - 1, hi + 1]; }
    return [lo, hi];
  }

  function padded(e, log) {
    if (log) { return [e[0] / 1.25, e[1] * 1.25]; }
    var pad = 0.08 * (e[1] - e[0]);
    return [e[0] - pad, e[1] + pad];
  }

  function isPower(v) { var l = Math.log10(v); return Math.abs(l - Math.round(l)) < 1e-9; }

  function ticks(lo, hi, log) {
    var out = [], v;
    if (log) {
      for (var k = Math.floor(Math.log10(lo)); k <= Math.ceil(Math.log10(hi)); k++) {
        [1, 2, 5].forEach(function (m) { v = m * Math.pow(10, k); if (v >= lo && v <= hi) { out.push(v); } });
      }
      var powers = out.filter(isPower);
      if (powers.length < 2) { return out; }
      var skip = Math.ceil(powers.length / 6);  // at most about six labels
      return powers.filter(function (v) { return Math.round(Math.log10(v)) % skip === 0; });
    }
    var raw = (hi - lo) / 5, mag = Math.pow(10, Math.floor(Math.log10(raw))), r = raw / mag;
    var step = (r < 1.5 ? 1 : r < 3.5 ? 2 : r < 7.5 ? 5 : 10) * mag;
    for (v = Math.ceil(lo / step) * step; v <= hi + 1e-9 * step; v += step) { out.push(+v.toPrecision(12)); }
    return out;
  }

  // v to 4 significant digits: 0.001559, 437.1, 4.8e-4 (trailing zeros dropped).
  function num(v) {
    var a = Math.abs(v);
    if (v === 0) { return "0"; }
    if (a >= 1e5 || a < 1e-3) {
      var parts = v.toExponential(3).split("e");
      return String(+parts[0]) + "e" + parts[1].replace("+", "");
    }
    return String(+v.toPrecision(4));
  }

  function format(v, kind) {
    if (!finite(v)) { return "–"; }
    if (kind === "pct") { return (100 * v).toFixed(2); }
    if (kind === "pct1") { return (100 * v).toFixed(1) + "%"; }
    if (kind === "lmbda") { return String(+v.toPrecision(3)); }
    return num(v);
  }

  function scale(dom, range, log) {
    var f = log ? Math.log10 : function (v) { return v; };
    var a = f(dom[0]), b = f(dom[1]);
    return function (v) {
      var t = (f(v) - a) / (b - a || 1);
      return range[0] + t * (range[1] - range[0]);
    };
  }

  // A chart frame: clears the SVG, draws the title, axes, grid and tick labels; returns its scales.
  function frame(svg, o) {
    while (svg.firstChild) { svg.removeChild(svg.firstChild); }
    var fr = { svg: svg, xlog: !!o.xlog, ylog: !!o.ylog };
    fr.x = scale(o.x, [M.left, W - M.right], o.xlog);
    fr.y = scale(o.y, [H - M.bottom, M.top], o.ylog);
    el("text", { x: 4, y: 20, "class": "title" }, svg, o.title);
    (o.yticks === false ? [] : ticks(o.y[0], o.y[1], o.ylog)).forEach(function (v) {
      el("line", { x1: M.left, x2: W - M.right, y1: fr.y(v), y2: fr.y(v), "class": "grid" }, svg);
      el("text", { x: M.left - 6, y: fr.y(v) + 4, "text-anchor": "end" }, svg, num(v));
    });
    var xt = o.xticks || ticks(o.x[0], o.x[1], o.xlog).map(function (v) { return { v: v, text: num(v) }; });
    var tilt = xt.length > 8;  // long lists of λ: labels at an angle so that they do not collide
    xt.forEach(function (t) {
      var x = fr.x(t.v), y = H - M.bottom + (tilt ? 14 : 19);
      el("line", { x1: x, x2: x, y1: H - M.bottom, y2: H - M.bottom + 5, "class": "axis" }, svg);
      el("text", { x: x, y: y, "text-anchor": tilt ? "end" : "middle",
                   transform: tilt ? "rotate(-35 " + x + " " + y + ")" : null }, svg, t.text);
    });
    el("line", { x1: M.left, x2: W - M.right, y1: H - M.bottom, y2: H - M.bottom, "class": "axis" }, svg);
    el("line", { x1: M.left, x2: M.left, y1: M.top, y2: H - M.bottom, "class": "axis" }, svg);
    el("text", { x: tilt ? W - M.right : (M.left + W - M.right) / 2, y: H - 6,
                 "text-anchor": tilt ? "end" : "middle" }, svg, o.xlabel || "");
    el("text", { x: 14, y: (M.top + H - M.bottom) / 2, "text-anchor": "middle",
                 transform: "rotate(-90 14 " + (M.top + H - M.bottom) / 2 + ")" }, svg, o.ylabel || "");
    // The plot area: a nested SVG in the same coordinates, which clips what falls outside the axes.
    var w = W - M.left - M.right, h = H - M.top - M.bottom;
    fr.area = el("svg", { x: M.left, y: M.top, width: w, height: h, viewBox: [M.left, M.top, w, h].join(" "),
                          overflow: "hidden" }, svg);
    return fr;
  }

  function line(fr, ys, style) {
    var pts = [];
    (ys || []).forEach(function (v, i) {
      if (finite(v) && (!fr.ylog || v > 0)) { pts.push(fr.x(i + 1).toFixed(1) + "," + fr.y(v).toFixed(1)); }
    });
    if (pts.length === 1) {
      var xy = pts[0].split(",");
      return el("circle", { cx: xy[0], cy: xy[1], r: 4, fill: style.color, "data-series": style.name }, fr.area);
    }
    return el("polyline", { points: pts.join(" "), fill: "none", stroke: style.color, "stroke-width": style.width || 2,
                            "stroke-dasharray": style.dash ? "7 4" : null, "data-series": style.name }, fr.area);
  }

  // The legend: one row under the title, wrapping when it is full; never over the data.
  function legend(fr, items) {
    var x = M.left, y = 40;
    items.forEach(function (it) {
      var g = el("g", {}, fr.svg);
      el("line", { x1: 0, x2: 24, y1: 0, y2: 0, stroke: it.color, "stroke-width": 2.5,
                   "stroke-dasharray": it.dash ? "6 3" : null }, g);
      var t = el("text", { x: 29, y: 4, "class": "legend" }, g, it.label);
      var width = 29 + t.getComputedTextLength() + 16;
      if (x > M.left && x + width > W - M.right) { x = M.left; y += 16; }
      g.setAttribute("transform", "translate(" + x + " " + y + ")");
      x += width;
    });
  }

  function message(svg, title, text) {
    while (svg.firstChild) { svg.removeChild(svg.firstChild); }
    el("text", { x: 4, y: 20, "class": "title" }, svg, title);
    el("text", { x: W / 2, y: H / 2, "text-anchor": "middle", "class": "missing" }, svg, text);
  }

  function epochAxis(arrays) {
    var n = 1;
    arrays.forEach(function (a) { if (a) { n = Math.max(n, a.length); } });
    return n > 1 ? [1, n] : [0.5, 1.5];
  }

  function chart(name) { return root.querySelector("svg[data-chart=" + name + "]"); }

  function pair(i) {  // the selected model and, when different, the reference (λ = 0)
    var out = [{ m: models[i], color: C.selected, width: 2.6, tag: "", name: "selected" }];
    if (data.reference !== null && data.reference !== i) {
      out.push({ m: models[data.reference], color: C.reference, width: 1.6,
                 tag: " (" + models[data.reference].label + ")", name: "reference" });
    }
    return out;
  }

  // ------------------------------------------------------------ the six charts

  function drawPath(i) {
    var p = data.path, n = models.length, lo = [], hi = [];
    p.y.forEach(function (v, j) {
      var e = p.err && finite(p.err[j]) ? p.err[j] : 0;
      lo.push(finite(v) ? v - e : NaN);
      hi.push(finite(v) ? v + e : NaN);
    });
    var every = Math.ceil(n / 20), ys = extent([lo, hi]), mid = (ys[0] + ys[1]) / 2;
    if (p.min_span && ys[1] - ys[0] < p.min_span) { ys = [mid - p.min_span / 2, mid + p.min_span / 2]; }
    var fr = frame(chart("path"), {
      x: [-0.5, n - 0.5], y: padded(ys), title: p.title, ylabel: p.ylabel, xlabel: p.xlabel || "λ",
      xticks: models.map(function (m, j) { return { v: j, text: j % every ? "" : m.short }; })
    });
    (p.marks || []).forEach(function (mk) {
      el("line", { x1: fr.x(mk.index), x2: fr.x(mk.index), y1: M.top, y2: H - M.bottom, stroke: C.chosen,
                   "stroke-width": 1.5, "stroke-dasharray": mk.dash ? "2 3" : "6 3" }, fr.svg);
      el("text", { x: fr.x(mk.index) + (mk.row ? -4 : 4), y: M.top - 4, "class": "mark",
                   "text-anchor": mk.row ? "end" : "start" }, fr.svg, mk.label);
    });
    el("line", { x1: fr.x(i), x2: fr.x(i), y1: M.top, y2: H - M.bottom, stroke: C.selected, "stroke-width": 3,
                 opacity: 0.35, "data-series": "cursor" }, fr.svg);
    p.y.forEach(function (v, j) {
      if (finite(v) && p.err && finite(p.err[j])) {
        el("line", { x1: fr.x(j), x2: fr.x(j), y1: fr.y(v - p.err[j]), y2: fr.y(v + p.err[j]), stroke: "#333",
                     "stroke-width": 1.5 }, fr.svg);
      }
    });
    var pts = [];
    p.y.forEach(function (v, j) { if (finite(v)) { pts.push(fr.x(j).toFixed(1) + "," + fr.y(v).toFixed(1)); } });
    el("polyline", { points: pts.join(" "), fill: "none", stroke: "#333", "stroke-width": 2 }, fr.svg);
    p.y.forEach(function (v, j) {
      if (!finite(v)) { return; }
      var dot = el("circle", { cx: fr.x(j), cy: fr.y(v), r: j === i ? 8 : 5, fill: j === i ? C.selected : "#333",
                               "class": "pick", "data-index": j }, fr.svg);
      dot.addEventListener("click", function () { select(j); });
    });
  }

  function drawCurves(i) {
    var items = pair(i), arrays = [];
    items.forEach(function (s) { arrays.push(s.m.train, s.m.eval); });
    if (data.regression || !arrays.some(function (a) { return a; })) {
      return message(chart("curves"), "Accuracy per epoch", "no accuracy for real-valued targets");
    }
    var pct = function (a) { return a ? a.map(function (v) { return 100 * v; }) : null; };
    var fr = frame(chart("curves"), {
      x: epochAxis(arrays), y: accuracyLimits(arrays.map(pct)), xlabel: "epoch", ylabel: "accuracy (%)",
      title: "Accuracy: training dashed, " + data.eval + " solid"
    });
    var leg = [];
    items.slice().reverse().forEach(function (s) {
      line(fr, pct(s.m.train), { color: s.color, width: s.width, dash: true, name: s.name + "-train" });
      line(fr, pct(s.m.eval), { color: s.color, width: s.width, name: s.name + "-eval" });
    });
    items.forEach(function (s) {
      if (s.m.train) { leg.push({ label: s.m.train_label + s.tag, color: s.color, dash: true }); }
      if (s.m.eval) { leg.push({ label: s.m.eval_label + s.tag, color: s.color }); }
    });
    legend(fr, leg);
  }

  // From the lowest value after the first tenth of the epochs to the highest: the gap stays visible.
  function accuracyLimits(arrays) {
    var tails = arrays.filter(function (a) { return a; }).map(function (a) {
      return a.length > 3 ? a.slice(Math.floor(0.1 * a.length)) : a;
    });
    var e = extent(tails), pad = Math.max(0.12 * (e[1] - e[0]), 0.5);
    return [Math.max(e[0] - pad, 0), Math.min(e[1] + pad, 100.5)];
  }

  function drawCost(i) {
    var items = pair(i), arrays = [];
    items.forEach(function (s) { arrays.push(s.m.train_cost, s.m.eval_cost); });
    var fr = frame(chart("cost"), {
      x: epochAxis(arrays), y: padded(extent(arrays, true), true), ylog: true, xlabel: "epoch",
      ylabel: data.cost_label, title: "Cost: training dashed, " + data.eval + " solid (log scale)"
    });
    items.slice().reverse().forEach(function (s) {
      line(fr, s.m.train_cost, { color: s.color, width: s.width, dash: true, name: s.name + "-train-cost" });
      line(fr, s.m.eval_cost, { color: s.color, width: s.width, name: s.name + "-eval-cost" });
    });
    legend(fr, items.map(function (s) { return { label: s.m.label, color: s.color }; }));
  }

  // The models that set a shared scale: all but the diverged ones, and the selected one.
  function scaled(i) { return models.filter(function (m, j) { return j === i || !m.diverged; }); }

  function drawNorm(i) {
    var all = models.map(function (m) { return m.sq; });
    var fr = frame(chart("norm"), {
      x: epochAxis(all), y: padded(extent(scaled(i).map(function (m) { return m.sq; }), true), true), ylog: true,
      xlabel: "epoch", ylabel: "Σw²",
      title: "Σw² per epoch" + (data.sq_note ? " (" + data.sq_note + ")" : "") + ", every λ in grey"
    });
    all.forEach(function (a, j) {
      if (j !== i && j !== data.reference && !models[j].diverged) { line(fr, a, { color: C.faint, width: 1.2 }); }
    });
    pair(i).slice().reverse().forEach(function (s) {
      line(fr, s.m.sq, { color: s.color, width: s.width, dash: s.name === "reference", name: s.name + "-sq" });
    });
    legend(fr, pair(i).map(function (s) { return { label: s.m.label, color: s.color, dash: s.name === "reference" }; }));
  }

  function drawHist(i) {
    var h = data.hist, m = models[i], ref = data.reference !== null ? models[data.reference] : null;
    if (!h || !m.hist) {
      return message(chart("hist"), "Final weights", m.hist_note || "no weights for this λ");
    }
    var top = 1;
    models.forEach(function (x) { (x.hist || []).forEach(function (c) { top = Math.max(top, c); }); });
    var e = h.edges, fr = frame(chart("hist"), {
      x: [e[0], e[e.length - 1]], y: [0.7, top * 1.6], ylog: true, xlabel: "final weight" + (h.note ? " (" + h.note + ")" : ""),
      ylabel: "count (log scale)", title: "Final weights: " + m.hist_label
    });
    m.hist.forEach(function (c, b) {
      var y = c > 0 ? fr.y(c) : fr.y(0.7);
      el("rect", { x: fr.x(e[b]), y: y, width: Math.max(fr.x(e[b + 1]) - fr.x(e[b]) - 0.5, 0.5),
                   height: fr.y(0.7) - y, fill: C.selected, opacity: 0.75, "class": "bar", "data-count": c }, fr.svg);
    });
    if (ref && ref !== m && ref.hist) {
      var pts = [];
      ref.hist.forEach(function (c, b) {
        var y = fr.y(c > 0 ? c : 0.7);
        pts.push(fr.x(e[b]) + "," + y, fr.x(e[b + 1]) + "," + y);
      });
      el("polyline", { points: pts.join(" "), fill: "none", stroke: C.reference, "stroke-width": 2,
                       "data-series": "reference-hist" }, fr.svg);
    }
    legend(fr, [{ label: m.label, color: C.selected }].concat(
      ref && ref !== m && ref.hist ? [{ label: ref.label + " (outline)", color: C.reference }] : []));
  }

  function drawTerms(i) {
    var m = models[i], t = m.terms, svg = chart("terms");
    if (!t) { return message(svg, "The two terms of one step", m.terms_note || "not measured for this λ"); }
    var all = [];
    scaled(i).forEach(function (x) { if (x.terms) { all.push([x.terms.decay, x.terms.data]); } });
    var fr = frame(svg, {
      x: padded(extent(all, true), true), xlog: true, y: [0, 3], xlabel: "mean size of the term (log scale)",
      ylabel: "", yticks: false, title: "The two terms " + data.terms_when
    });
    [["decay", "mean |d|, decay", C.decay, 2], ["data", "mean |g|, data", C.data, 1]].forEach(function (r) {
      var v = t[r[0]], y = fr.y(r[3]) - 16;
      if (finite(v) && v > 0) {
        el("rect", { x: M.left, y: y, width: fr.x(v) - M.left, height: 32, fill: r[2], "data-term": r[0],
                     "data-value": v }, fr.svg);
      }
      el("text", { x: M.left + 6, y: y - 6, "class": "legend" }, fr.svg,
         r[1] + " = " + format(v) + (r[0] === "decay" && !(v > 0) ? " (no decay)" : ""));
    });
    el("text", { x: M.left + 6, y: fr.y(0.25), "class": "legend" }, fr.svg,
       "data term pointing away from 0 (g·w > 0): " + format(t.away, "pct1") +
       (finite(t.decay) && finite(t.data) && t.data > 0 ? ";  |d| / |g| = " + num(t.decay / t.data) : ""));
  }

  // ------------------------------------------------------------ the readout and the slider

  function readout(i) {
    var m = models[i];
    root.querySelectorAll("[data-field]").forEach(function (node) {
      var key = node.getAttribute("data-field");
      if (key === "label") { node.textContent = m.label + "  (" + (i + 1) + " of " + models.length + ")"; return; }
      if (key === "note") { node.textContent = m.note || ""; return; }
      var v = m.values[key];
      node.textContent = format(v, node.getAttribute("data-format"));
    });
  }

  var DRAW = { path: drawPath, curves: drawCurves, cost: drawCost, norm: drawNorm, hist: drawHist, terms: drawTerms };

  // Draws the charts the page holds (the report leaves out those it has no data for).
  function select(i) {
    i = Math.max(0, Math.min(models.length - 1, +i));
    slider.value = String(i);
    root.setAttribute("data-index", String(i));
    readout(i);
    root.querySelectorAll("svg[data-chart]").forEach(function (svg) { DRAW[svg.getAttribute("data-chart")](i); });
  }

  slider.addEventListener("input", function () { select(slider.value); });
  select(data.start);
}());
