// Small SVG charts for the raymtl dashboard: a line chart with optional min-max whiskers and a
// confusion heatmap. Hand-written so the page needs nothing from the network; every label is set
// with textContent, so names from the data stay text.
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";
const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
                 "#7f7f7f", "#bcbd22", "#17becf"];

function svgEl(name, attrs, parent) {
  const el = document.createElementNS(SVG_NS, name);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  if (parent) parent.appendChild(el);
  return el;
}

function svgText(parent, x, y, text, attrs) {
  const t = svgEl("text", Object.assign({ x, y }, attrs || {}), parent);
  t.textContent = text;
  return t;
}

// "Nice" ticks between lo and hi (about n of them).
function ticks(lo, hi, n) {
  if (!(hi > lo)) { hi = lo + 1; }
  const raw = (hi - lo) / Math.max(1, n);
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) || raw;
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(+v.toFixed(10));
  return out;
}

// series: [{label, points: [[x, y], ...], band: [[x, lo, hi], ...] (optional), markersOnly}]
// options: {title, xLabel, yLabel, yMin, yMax, xInteger, percent, width, height}
function lineChart(container, series, options) {
  const o = Object.assign({ width: 560, height: 300, percent: false }, options || {});
  const m = { top: 28, right: 16, bottom: 42, left: 54 };
  const w = o.width - m.left - m.right;
  const h = o.height - m.top - m.bottom;
  const svg = svgEl("svg", { class: "chart line-chart", viewBox: `0 0 ${o.width} ${o.height}`,
                             width: o.width, height: o.height, role: "img" });
  svgText(svg, o.width / 2, 16, o.title || "", { class: "chart-title", "text-anchor": "middle" });
  const xs = [], ys = [];
  for (const s of series) {
    for (const [x, y] of s.points) { if (y !== null && y !== undefined) { xs.push(x); ys.push(y); } }
    for (const [x, lo, hi] of s.band || []) { xs.push(x); if (lo !== null) ys.push(lo); if (hi !== null) ys.push(hi); }
  }
  if (!xs.length) {
    svgText(svg, o.width / 2, o.height / 2, "no data yet", { class: "chart-empty", "text-anchor": "middle" });
    container.appendChild(svg);
    return svg;
  }
  let x0 = o.xMin !== undefined ? Math.min(o.xMin, ...xs) : Math.min(...xs), x1 = Math.max(...xs);
  if (x0 === x1) { x0 -= 1; x1 += 1; }
  let y0 = o.yMin !== undefined ? o.yMin : Math.min(...ys);
  let y1 = o.yMax !== undefined ? o.yMax : Math.max(...ys);
  if (y0 === y1) { y0 -= 0.5; y1 += 0.5; }
  const pad = 0.06 * (y1 - y0);  // keep markers at the extremes inside the frame
  if (o.yMin === undefined) y0 -= pad;
  if (o.yMax === undefined) y1 += pad;
  if (o.percent) { y0 = Math.max(0, y0); y1 = Math.min(1, y1); }
  const sx = (x) => m.left + ((x - x0) / (x1 - x0)) * w;
  const sy = (y) => m.top + h - ((y - y0) / (y1 - y0)) * h;
  const grid = svgEl("g", { class: "axis" }, svg);
  for (const t of ticks(y0, y1, 5)) {
    svgEl("line", { x1: m.left, x2: m.left + w, y1: sy(t), y2: sy(t), class: "grid" }, grid);
    svgText(grid, m.left - 6, sy(t) + 4, o.percent ? `${+(100 * t).toFixed(2)}%` : String(+t.toPrecision(4)),
            { "text-anchor": "end" });
  }
  const xt = ticks(x0, x1, 8).filter((t) => !o.xInteger || Number.isInteger(t));
  for (const t of xt) {
    svgEl("line", { x1: sx(t), x2: sx(t), y1: m.top + h, y2: m.top + h + 4, class: "tick" }, grid);
    svgText(grid, sx(t), m.top + h + 16, String(t), { "text-anchor": "middle" });
  }
  svgEl("line", { x1: m.left, x2: m.left + w, y1: m.top + h, y2: m.top + h, class: "frame" }, grid);
  svgEl("line", { x1: m.left, x2: m.left, y1: m.top, y2: m.top + h, class: "frame" }, grid);
  svgText(grid, m.left + w / 2, o.height - 6, o.xLabel || "", { "text-anchor": "middle", class: "axis-label" });
  svgText(grid, 14, m.top + h / 2, o.yLabel || "",
          { "text-anchor": "middle", class: "axis-label", transform: `rotate(-90 14 ${m.top + h / 2})` });
  series.forEach((s, i) => {
    const color = s.color || PALETTE[i % PALETTE.length];
    const g = svgEl("g", { class: "series-group" }, svg);
    const title = svgEl("title", {}, g);
    title.textContent = s.label;
    for (const [x, lo, hi] of s.band || []) {
      if (lo === null || hi === null) continue;
      svgEl("line", { x1: sx(x), x2: sx(x), y1: sy(lo), y2: sy(hi), stroke: color, class: "whisker" }, g);
    }
    const pts = s.points.filter(([, y]) => y !== null && y !== undefined);
    if (!s.markersOnly && pts.length) {
      const d = pts.map(([x, y], j) => `${j ? "L" : "M"}${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(" ");
      svgEl("path", { d, stroke: color, class: "series" + (s.dashed ? " dashed" : "") }, g);
    }
    for (const [x, y] of pts) {
      svgEl(s.markersOnly ? "rect" : "circle", s.markersOnly
        ? { x: sx(x) - 5, y: sy(y) - 5, width: 10, height: 10, fill: color, class: "marker square" }
        : { cx: sx(x), cy: sy(y), r: pts.length > 40 ? 1.5 : 3, fill: color, class: "marker" }, g);
    }
  });
  container.appendChild(svg);
  const legend = document.createElement("div");
  legend.className = "legend";
  series.forEach((s, i) => {
    const item = document.createElement("span");
    item.className = "legend-item";
    const sw = svgEl("svg", { width: 12, height: 12, class: "swatch" }, item);
    svgEl("rect", { width: 12, height: 12, fill: s.color || PALETTE[i % PALETTE.length] }, sw);
    item.appendChild(document.createTextNode(" " + s.label));
    legend.appendChild(item);
  });
  container.appendChild(legend);
  return svg;
}

// A confusion matrix: rows true class, columns predicted; colour = share of the row.
function heatmap(container, labels, matrix, options) {
  const o = Object.assign({ cell: labels.length > 20 ? 11 : 24, title: "" }, options || {});
  const n = labels.length;
  const lab = Math.min(150, 8 + 6.5 * Math.max(...labels.map((l) => l.length), 1));
  const size = n * o.cell;
  const width = lab + size + 10, height = 24 + lab + size + 10;
  const svg = svgEl("svg", { class: "chart heatmap", viewBox: `0 0 ${width} ${height}`, width, height, role: "img" });
  svgText(svg, width / 2, 16, o.title, { class: "chart-title", "text-anchor": "middle" });
  const top = 24 + lab;
  const font = Math.min(12, o.cell - 1);
  labels.forEach((l, i) => {
    svgText(svg, lab - 4, top + i * o.cell + o.cell / 2 + font / 3, l,
            { "text-anchor": "end", class: "heat-label", "font-size": font });
    const x = lab + i * o.cell + o.cell / 2 + font / 3;
    svgText(svg, x, top - 4, l,
            { "text-anchor": "start", class: "heat-label", "font-size": font, transform: `rotate(-90 ${x} ${top - 4})` });
  });
  matrix.forEach((row, i) => {
    const total = row.reduce((a, b) => a + b, 0) || 1;
    row.forEach((v, j) => {
      const share = v / total;
      const rect = svgEl("rect", {
        x: lab + j * o.cell, y: top + i * o.cell, width: o.cell - 1, height: o.cell - 1,
        class: "cell" + (i === j ? " diag" : ""),
        fill: v ? (i === j ? `rgba(31,119,180,${0.15 + 0.85 * share})` : `rgba(214,39,40,${0.15 + 0.85 * share})`)
                : "#f4f4f4",
      }, svg);
      const t = svgEl("title", {}, rect);
      t.textContent = `true ${labels[i]}, predicted ${labels[j]}: ${v}`;
      if (v && o.cell >= 18) {
        svgText(svg, lab + j * o.cell + (o.cell - 1) / 2, top + i * o.cell + o.cell / 2 + 4, String(v),
                { "text-anchor": "middle", class: "cell-count" });
      }
    });
  });
  container.appendChild(svg);
  return svg;
}

// A horizontal bar for a share in [0, 1], for table cells.
function shareBar(share) {
  const svg = svgEl("svg", { width: 100, height: 10, class: "share-bar" });
  svgEl("rect", { width: 100, height: 10, class: "share-bg" }, svg);
  if (share !== null && share !== undefined) svgEl("rect", { width: 100 * share, height: 10, class: "share-fg" }, svg);
  return svg;
}

window.charts = { lineChart, heatmap, shareBar, PALETTE };
