// Small SVG charts for the training, experiments and operations pages: line charts (loss and CPM curves)
// and stacked bars (analyses per hour).  Plain SVG (no chart library: a few curves of at most a few
// thousand points need no canvas, and SVG text stays sharp and scales with the page).  Each chart is one
// <svg role="img"> whose aria-label says what it shows; the numbers are in the pages' tables too.
const NS = "http://www.w3.org/2000/svg";
export const COLORS = ["#58a6ff", "#f0883e", "#3fb950", "#d2a8ff", "#ff7b72", "#e3b341", "#39c5cf", "#f778ba"];
const MIN_W = 320;
const PAD = { left: 56, right: 16, top: 14, bottom: 40 };

function svgEl(tag, attrs = {}, text) {
  const n = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) n.setAttribute(k, String(v));
  if (text !== undefined) n.textContent = String(text);
  return n;
}

// "nice" tick values covering [lo, hi]: 1, 2 or 5 times a power of ten apart
export function ticks(lo, hi, n = 5) {
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) return [];
  if (hi === lo) return [lo];
  const raw = (hi - lo) / n;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => raw <= s) || 10 * mag;
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

function fmt(v) {
  const a = Math.abs(v);
  if (a === 0) return "0";
  if (a >= 1000) return `${(v / 1000).toFixed(a >= 10000 ? 0 : 1)}k`;
  if (a >= 10) return v.toFixed(0);
  if (a >= 1) return v.toFixed(1).replace(/\.0$/, "");
  return v.toPrecision(2).replace(/0+$/, "").replace(/\.$/, "");
}

// log-scale ticks: 1, 2, 5 times the powers of ten in [lo, hi] (exponents), thinned to the powers if many
function logTicks(lo, hi) {
  const out = [];
  for (let e = Math.floor(lo); e <= Math.ceil(hi); e++) for (const m of [1, 2, 5]) out.push(m * 10 ** e);
  const inside = out.filter((v) => Math.log10(v) >= lo - 1e-9 && Math.log10(v) <= hi + 1e-9);
  return inside.length > 6 ? inside.filter((v) => Number.isInteger(Math.log10(v))) : inside;
}

// charts are drawn at the host's width (1 unit = 1 CSS pixel: text stays 12 px) and redrawn on resize
const drawn = new Map();
let resizeTimer;
window.addEventListener("resize", () => {
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(() => {
    for (const [host, [fn, opts]] of drawn) if (host.isConnected) fn(host, opts);
  }, 150);
});

function frame(host, { height, label, xLabel, yLabel }) {
  const W = Math.max(MIN_W, Math.round(host.clientWidth || 640));
  const svg = svgEl("svg", { viewBox: `0 0 ${W} ${height}`, role: "img", "aria-label": label, class: "chart" });
  svg.append(svgEl("title", {}, label));
  const plot = { x0: PAD.left, x1: W - PAD.right, y0: height - PAD.bottom, y1: PAD.top };
  if (xLabel) svg.append(svgEl("text", { x: (plot.x0 + plot.x1) / 2, y: height - 4, class: "axis-label", "text-anchor": "middle" }, xLabel));
  if (yLabel) {
    svg.append(svgEl("text", { x: 12, y: (plot.y0 + plot.y1) / 2, class: "axis-label", "text-anchor": "middle",
      transform: `rotate(-90 12 ${(plot.y0 + plot.y1) / 2})` }, yLabel));
  }
  host.replaceChildren(svg);
  return { svg, plot, W };
}

function axes(svg, plot, xs, ys, sx, sy, xFmt = fmt) {
  for (const v of ys) {
    const y = sy(v);
    svg.append(svgEl("line", { x1: plot.x0, x2: plot.x1, y1: y, y2: y, class: "grid" }));
    svg.append(svgEl("text", { x: plot.x0 - 6, y: y + 4, class: "tick", "text-anchor": "end" }, fmt(v)));
  }
  for (const v of xs) {
    const x = sx(v);
    svg.append(svgEl("line", { x1: x, x2: x, y1: plot.y0, y2: plot.y0 + 4, class: "axis" }));
    svg.append(svgEl("text", { x, y: plot.y0 + 17, class: "tick", "text-anchor": "middle" }, xFmt(v)));
  }
  svg.append(svgEl("line", { x1: plot.x0, x2: plot.x1, y1: plot.y0, y2: plot.y0, class: "axis" }));
  svg.append(svgEl("line", { x1: plot.x0, x2: plot.x0, y1: plot.y0, y2: plot.y1, class: "axis" }));
}

// series: [{ name, points: [[x, y], ...], color? }]; x/y Min/Max widen the axes; an empty chart says so
export function lineChart(host, opts) {
  drawn.set(host, [lineChart, opts]);
  const { series, label, xLabel = "step", yLabel = "", height = 240, yMin, yMax, xMin, xMax, log = false } = opts;
  const { svg, plot, W } = frame(host, { height, label, xLabel, yLabel });
  const pts = series.flatMap((s) => s.points).filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y) && (!log || y > 0));
  if (!pts.length) {
    svg.append(svgEl("text", { x: W / 2, y: height / 2, class: "empty", "text-anchor": "middle" }, "No values yet"));
    return svg;
  }
  const tf = log ? Math.log10 : (v) => v;
  let [xl, xh] = [Math.min(...pts.map((p) => p[0])), Math.max(...pts.map((p) => p[0]))];
  let [yl, yh] = [Math.min(...pts.map((p) => tf(p[1]))), Math.max(...pts.map((p) => tf(p[1])))];
  if (yMin !== undefined) yl = Math.min(yl, tf(yMin));
  if (yMax !== undefined) yh = Math.max(yh, tf(yMax));
  if (xMin !== undefined) xl = Math.min(xl, xMin);
  if (xMax !== undefined) xh = Math.max(xh, xMax);
  if (xh === xl) xh = xl + 1;
  if (yh === yl) [yl, yh] = [yl - 0.5, yh + 0.5];
  if (log && yh - yl > 1) [yl, yh] = [Math.floor(yl), Math.ceil(yh)]; // whole decades: the ends are labelled
  const sx = (v) => plot.x0 + ((v - xl) / (xh - xl)) * (plot.x1 - plot.x0);
  const sy = (v) => plot.y0 - ((tf(v) - yl) / (yh - yl)) * (plot.y0 - plot.y1);
  const yt = log ? logTicks(yl, yh) : ticks(yl, yh, 4);
  const xt = ticks(xl, xh, Math.max(2, Math.floor((plot.x1 - plot.x0) / 90))).filter(Number.isInteger);
  axes(svg, plot, xt.length ? xt : [xl, xh], yt, sx, sy);
  series.forEach((s, i) => {
    const color = s.color || COLORS[i % COLORS.length];
    const good = s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y) && (!log || y > 0));
    if (!good.length) return;
    const d = good.map(([x, y], j) => `${j ? "L" : "M"}${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join("");
    svg.append(svgEl("path", { d, fill: "none", stroke: color, "stroke-width": 2, class: "line", "data-series": s.name }));
    if (good.length <= 40) {
      for (const [x, y] of good) svg.append(svgEl("circle", { cx: sx(x), cy: sy(y), r: 2.6, fill: color }));
    }
  });
  return svg;
}

// bars: [{ label, values: { key: n } }], keys: [{ key, name, color }] stacked bottom-up
export function barChart(host, opts) {
  drawn.set(host, [barChart, opts]);
  const { bars, keys, label, xLabel = "", yLabel = "", height = 220, every = 1 } = opts;
  const { svg, plot } = frame(host, { height, label, xLabel, yLabel });
  const totals = bars.map((b) => keys.reduce((n, k) => n + (b.values[k.key] || 0), 0));
  const yh = Math.max(1, ...totals);
  const yt = ticks(0, yh, 4).filter(Number.isInteger);
  const bw = (plot.x1 - plot.x0) / Math.max(1, bars.length);
  const sy = (v) => plot.y0 - (v / (yt.length ? Math.max(yh, yt[yt.length - 1]) : yh)) * (plot.y0 - plot.y1);
  for (const v of yt) {
    svg.append(svgEl("line", { x1: plot.x0, x2: plot.x1, y1: sy(v), y2: sy(v), class: "grid" }));
    svg.append(svgEl("text", { x: plot.x0 - 6, y: sy(v) + 4, class: "tick", "text-anchor": "end" }, fmt(v)));
  }
  bars.forEach((b, i) => {
    let base = 0;
    const x = plot.x0 + i * bw + bw * 0.15;
    for (const k of keys) {
      const v = b.values[k.key] || 0;
      if (v > 0) {
        svg.append(svgEl("rect", { x, width: bw * 0.7, y: sy(base + v), height: sy(base) - sy(base + v), fill: k.color,
          "data-key": k.key }, undefined));
      }
      base += v;
    }
    if (i % every === 0) {
      svg.append(svgEl("text", { x: x + bw * 0.35, y: plot.y0 + 17, class: "tick", "text-anchor": "middle" }, b.label));
    }
  });
  svg.append(svgEl("line", { x1: plot.x0, x2: plot.x1, y1: plot.y0, y2: plot.y0, class: "axis" }));
  return svg;
}

// a legend as HTML (readable text, colour swatches) for a chart's series
export function legend(items) {
  const ul = document.createElement("ul");
  ul.className = "legend";
  items.forEach((it, i) => {
    const li = document.createElement("li");
    const sw = document.createElement("span");
    sw.className = "swatch";
    sw.style.background = it.color || COLORS[i % COLORS.length];
    sw.setAttribute("aria-hidden", "true");
    li.append(sw, document.createTextNode(it.name));
    ul.append(li);
  });
  return ul;
}
