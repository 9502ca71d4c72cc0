// Inline SVG charts with hover tooltips. The same kinds of chart appear, as static SVG, in the HTML report.
const NS = "http://www.w3.org/2000/svg";
export const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
  "#bcbd22", "#7f7f7f", "#393b79", "#637939"];

function s(tag, attrs = {}, ...kids) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) el.setAttribute(k, String(v));
  for (const k of kids.flat()) if (k !== null && k !== undefined) el.append(k instanceof Node ? k : document.createTextNode(String(k)));
  return el;
}

function tip(el, text) { el.append(s("title", {}, text)); el.setAttribute("tabindex", "0"); el.classList.add("hover"); return el; }

function frame(width, height, label) {
  return s("svg", { viewBox: `0 0 ${width} ${height}`, width: "100%", role: "img", "aria-label": label, class: "chart" });
}

const nice = (v) => (Math.abs(v) >= 1000 ? v.toLocaleString("en-US", { maximumFractionDigits: 0 }) : +v.toFixed(Math.abs(v) < 1 ? 3 : 1));

/** series: [{name, values:[...]}] over `periods`; marks: {seriesName: "emerging"|"declining"}. */
export function lineChart(periods, series, { width = 900, height = 300, title = "line chart", yLabel = "", marks = {} } = {}) {
  const m = { l: 56, r: 170, t: 14, b: 36 };
  const svg = frame(width, height, title);
  const W = width - m.l - m.r, H = height - m.t - m.b;
  const max = Math.max(1e-9, ...series.flatMap((x) => x.values));
  const x = (i) => m.l + (periods.length < 2 ? W / 2 : (i * W) / (periods.length - 1));
  const y = (v) => m.t + H - (v / max) * H;
  for (let k = 0; k <= 4; k++) {
    const v = (max * k) / 4;
    svg.append(s("line", { x1: m.l, x2: m.l + W, y1: y(v), y2: y(v), class: "grid" }), s("text", { x: m.l - 6, y: y(v) + 4, "text-anchor": "end", class: "axis" }, nice(v)));
  }
  const step = Math.max(1, Math.ceil(periods.length / 8));
  // every step-th label only: forcing the last one in put it on top of its neighbour
  periods.forEach((p, i) => { if (i % step === 0) svg.append(s("text", { x: x(i), y: height - 12, "text-anchor": "middle", class: "axis" }, String(p).slice(0, 10))); });
  if (yLabel) svg.append(s("text", { x: 12, y: m.t + H / 2, transform: `rotate(-90 12 ${m.t + H / 2})`, "text-anchor": "middle", class: "axis" }, yLabel));
  series.forEach((ser, k) => {
    const color = PALETTE[k % PALETTE.length];
    const d = ser.values.map((v, i) => `${i ? "L" : "M"}${x(i).toFixed(1)},${y(v).toFixed(1)}`).join("");
    const mark = marks[ser.name];
    svg.append(s("path", { d, fill: "none", stroke: color, "stroke-width": mark ? 3 : 1.6, "stroke-dasharray": mark === "declining" ? "6 4" : null }));
    ser.values.forEach((v, i) => svg.append(tip(s("circle", { cx: x(i), cy: y(v), r: 3.2, fill: color }), `${ser.name} · ${periods[i]}: ${nice(v)}`)));
    const ly = m.t + 12 + k * 18;
    if (ly < height - 10) svg.append(s("rect", { x: m.l + W + 12, y: ly - 9, width: 10, height: 10, fill: color }),
      s("text", { x: m.l + W + 26, y: ly, class: "legend" }, `${ser.name.slice(0, 20)}${mark ? (mark === "emerging" ? " ▲" : " ▼") : ""}`));
  });
  return svg;
}

/** items: [{label, value, note?}] as horizontal bars. */
export function barChart(items, { width = 640, title = "bar chart", format = nice, max = null } = {}) {
  const rowH = 24, m = { l: 180, r: 70, t: 6 };
  const height = m.t * 2 + items.length * rowH;
  const svg = frame(width, height, title);
  const top = max ?? Math.max(1e-9, ...items.map((i) => Math.abs(i.value)));
  items.forEach((it, k) => {
    const y = m.t + k * rowH;
    const w = (Math.abs(it.value) / top) * (width - m.l - m.r);
    svg.append(s("text", { x: m.l - 8, y: y + 16, "text-anchor": "end", class: "label" }, String(it.label).slice(0, 26)),
      tip(s("rect", { x: m.l, y: y + 4, width: Math.max(1, w), height: rowH - 8, rx: 3, fill: it.color || PALETTE[0] }), `${it.label}: ${format(it.value)}${it.note ? " · " + it.note : ""}`),
      s("text", { x: m.l + w + 6, y: y + 16, class: "value" }, format(it.value)));
  });
  return svg;
}

/** Bars left (negative) and right (positive) of zero: per-class deltas, weight changes. */
export function divergingChart(items, { width = 640, title = "change", format = nice } = {}) {
  const rowH = 24, m = { l: 180, r: 20, t: 6 };
  const height = m.t * 2 + items.length * rowH;
  const svg = frame(width, height, title);
  const W = width - m.l - m.r, zero = m.l + W / 2;
  const top = Math.max(1e-9, ...items.map((i) => Math.abs(i.value)));
  svg.append(s("line", { x1: zero, x2: zero, y1: 0, y2: height, class: "zero" }));
  items.forEach((it, k) => {
    const y = m.t + k * rowH, w = (Math.abs(it.value) / top) * (W / 2 - 40);
    const x = it.value >= 0 ? zero : zero - w;
    svg.append(s("text", { x: m.l - 8, y: y + 16, "text-anchor": "end", class: "label" }, String(it.label).slice(0, 26)),
      tip(s("rect", { x, y: y + 4, width: Math.max(1, w), height: rowH - 8, rx: 3, fill: it.value >= 0 ? "#2ca02c" : "#d62728" }), `${it.label}: ${format(it.value)}`),
      s("text", { x: it.value >= 0 ? zero + w + 4 : zero - w - 4, y: y + 16, "text-anchor": it.value >= 0 ? "start" : "end", class: "value" }, format(it.value)));
  });
  return svg;
}

/** A confusion matrix: rows true, columns predicted; cells shaded by row share. */
export function heatmap(labels, matrix, { title = "confusion matrix", cell = 34, rowTitle = "true", colTitle = "predicted" } = {}) {
  const m = { l: 170, t: 120 };
  const n = labels.length;
  const svg = frame(m.l + n * cell + 10, m.t + n * cell + 10, title);
  svg.append(s("text", { x: m.l + (n * cell) / 2, y: 12, "text-anchor": "middle", class: "axis" }, colTitle + " →"));
  labels.forEach((lab, j) => svg.append(s("text", { x: m.l + j * cell + cell / 2, y: m.t - 6, transform: `rotate(-55 ${m.l + j * cell + cell / 2} ${m.t - 6})`, class: "label" }, String(lab).slice(0, 18))));
  matrix.forEach((row, i) => {
    const total = row.reduce((a, b) => a + b, 0) || 1;
    svg.append(s("text", { x: m.l - 6, y: m.t + i * cell + cell / 2 + 4, "text-anchor": "end", class: "label" }, String(labels[i]).slice(0, 22)));
    row.forEach((v, j) => {
      const share = v / total;
      const fill = i === j ? `rgba(44,160,44,${0.12 + 0.88 * share})` : `rgba(214,39,40,${v ? 0.12 + 0.88 * share : 0.03})`;
      svg.append(tip(s("rect", { x: m.l + j * cell, y: m.t + i * cell, width: cell - 2, height: cell - 2, fill, rx: 3 }), `${rowTitle} ${labels[i]} → ${colTitle} ${labels[j]}: ${v} (${(share * 100).toFixed(0)}% of row)`),
        v ? s("text", { x: m.l + j * cell + cell / 2 - 1, y: m.t + i * cell + cell / 2 + 4, "text-anchor": "middle", class: "cell" }, v) : null);
    });
  });
  return svg;
}
