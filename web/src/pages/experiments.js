// Experiments: MLflow runs (GET /api/v1/experiments/runs, an optional MLflow filter) and the comparison of
// 2-10 chosen runs (GET /api/v1/experiments/compare): one metric's curves of every run in one chart, the
// best value of each metric per run, and each run's configuration difference from the first.
import { api } from "../lib/api.js";
import { COLORS, legend, lineChart } from "../lib/chart.js";
import { $, el, fmtDate } from "../lib/dom.js";
import { explain } from "../lib/uidata.js";

const MAX = 10;
const state = { runs: [], chosen: [], cmp: null };
const num = (v) => (v === null || v === undefined ? "–" : Math.abs(v) >= 100 ? v.toFixed(0) : v.toFixed(4));
// a run by its name (a job's id for the service's runs: each attempt of a resumed job is a run of that
// name) and the start of its own id, so that two attempts stay apart
const short = (r) => {
  const name = r.name || "run";
  return `${name.length > 16 ? `${name.slice(0, 12)}…` : name} · ${r.id.slice(0, 6)}`;
};
const duration = (r) => {
  if (!r.start_time || !r.end_time) return "–";
  const s = (new Date(r.end_time) - new Date(r.start_time)) / 1000;
  return s >= 120 ? `${(s / 60).toFixed(1)} min` : `${Math.round(s)} s`;
};
const pick = (m, ...keys) => keys.map((k) => m[k]).find((v) => v !== undefined);

function renderRuns() {
  $("#runs tbody").replaceChildren(...state.runs.map((r, i) => {
    const chosen = state.chosen.includes(r.id);
    return el("tr", { dataset: { runId: r.id }, "aria-selected": chosen ? "true" : null },
      el("td", {}, el("input", { type: "checkbox", id: `run-${i}`, checked: chosen, value: r.id,
        "aria-label": `Compare run ${short(r)}`, disabled: !chosen && state.chosen.length >= MAX,
        onchange: (e) => toggle(r.id, e.target.checked) })),
      el("td", {}, el("label", { for: `run-${i}` }, r.name || "run"), el("br"), el("span", { class: "muted mono" }, `run ${r.id.slice(0, 12)}`)),
      el("td", {}, r.status),
      el("td", { class: "nowrap" }, fmtDate(r.start_time)),
      el("td", { class: "num" }, duration(r)),
      el("td", { class: "num" }, num(pick(r.metrics, "train/loss", "train/total", "train/loss_epoch"))),
      el("td", { class: "num" }, num(r.metrics["val/cpm"])),
    );
  }));
  $("#compare").disabled = state.chosen.length < 2;
  $("#compare").textContent = state.chosen.length >= 2 ? `Compare the ${state.chosen.length} chosen runs` : "Compare the chosen runs (choose 2 to 10)";
}

function toggle(id, on) {
  state.chosen = on ? [...state.chosen, id] : state.chosen.filter((x) => x !== id);
  renderRuns();
}

async function loadRuns() {
  $("#runs-error").hidden = true;
  const q = new URLSearchParams({ limit: "100" });
  const f = $("#r-filter").value.trim();
  if (f) q.set("filter", f);
  try {
    const page = await api(`/experiments/runs?${q}`);
    state.runs = page.items;
    state.chosen = state.chosen.filter((id) => state.runs.some((r) => r.id === id));
    $("#runs-summary").textContent = page.total ? `${page.total} run${page.total > 1 ? "s" : ""}, newest first` : "No runs match.";
    renderRuns();
  } catch (e) {
    $("#runs-summary").textContent = "No runs shown.";
    $("#runs-error").textContent = explain(e);
    $("#runs-error").hidden = false;
  }
}

function drawCurve() {
  const key = $("#metric").value;
  const series = state.cmp.runs.map((r, i) => ({
    name: short(r.run), color: COLORS[i % COLORS.length], points: (r.curves[key] || []).map((p) => [p.step, p.value]),
  }));
  lineChart($("#cmp-chart"), { series, label: `${key} by step for ${series.length} runs`, yLabel: key, height: 260 });
  $("#cmp-legend").replaceChildren(legend(series));
}

function renderComparison(c) {
  state.cmp = c;
  $("#comparison").hidden = false; // first: the chart is drawn at its box's width
  const keys = [...new Set(c.runs.flatMap((r) => Object.keys(r.curves)))].sort();
  const preferred = ["train/loss", "train/total", "val/cpm"].find((k) => keys.includes(k)) || keys[0];
  $("#metric").replaceChildren(...keys.map((k) => el("option", { value: k, selected: k === preferred }, k)));
  if (keys.length) drawCurve();
  else $("#cmp-chart").replaceChildren(el("p", { class: "muted" }, "These runs logged no metric curves."));
  const head = el("tr", {}, el("th", { scope: "col" }, "Metric"), c.runs.map((r, i) => el("th", { scope: "col" },
    el("span", { class: "swatch-inline", style: `color:${COLORS[i % COLORS.length]}` }, "■ "), short(r.run))));
  $("#best thead").replaceChildren(head);
  const bestKeys = [...new Set(c.runs.flatMap((r) => Object.keys(r.best)))].sort();
  $("#best tbody").replaceChildren(...bestKeys.map((k) => el("tr", {}, el("th", { scope: "row" }, k),
    c.runs.map((r) => el("td", { class: "num" }, r.best[k] ? `${num(r.best[k].value)} (step ${r.best[k].step})` : "–")))));
  const others = c.runs.filter((r) => r.run.id !== c.baseline);
  const base = c.runs.find((r) => r.run.id === c.baseline);
  const paths = [...new Set(others.flatMap((r) => (c.config_diffs[r.run.id] || []).map((d) => d.path)))].sort();
  $("#diff thead").replaceChildren(el("tr", {}, el("th", { scope: "col" }, "Setting"),
    el("th", { scope: "col" }, `${short(base.run)} (first)`), others.map((r) => el("th", { scope: "col" }, short(r.run)))));
  const val = (v) => (v === null || v === undefined ? "–" : typeof v === "object" ? JSON.stringify(v) : String(v));
  $("#diff tbody").replaceChildren(...paths.map((p) => {
    const first = others.map((r) => (c.config_diffs[r.run.id] || []).find((d) => d.path === p)).find(Boolean);
    return el("tr", {}, el("th", { scope: "row", class: "mono" }, p), el("td", { class: "val" }, val(first?.a)),
      others.map((r) => {
        const d = (c.config_diffs[r.run.id] || []).find((x) => x.path === p);
        return el("td", { class: "val" }, d ? val(d.b) : el("span", { class: "muted" }, "same"));
      }));
  }));
  const missing = others.filter((r) => !(r.run.id in c.config_diffs)).map((r) => short(r.run));
  $("#diff-summary").textContent = (paths.length ? `${paths.length} setting${paths.length > 1 ? "s" : ""} differ.` : "The configurations are the same.")
    + (missing.length ? ` No configuration found for ${missing.join(", ")}.` : "");
  $("#comparison").dataset.runs = String(c.runs.length);
}

async function compare() {
  $("#compare-status").textContent = "Comparing…";
  $("#runs-error").hidden = true;
  try {
    const c = await api(`/experiments/compare?runs=${state.chosen.map(encodeURIComponent).join(",")}`);
    renderComparison(c);
    $("#compare-status").textContent = "";
    $("#cmp-title").focus?.();
  } catch (e) {
    $("#compare-status").textContent = "";
    $("#runs-error").textContent = explain(e);
    $("#runs-error").hidden = false;
  }
}

$("#run-filter").addEventListener("submit", (e) => {
  e.preventDefault();
  loadRuns();
});
$("#compare").addEventListener("click", compare);
$("#metric").addEventListener("change", drawCurve);
loadRuns();
