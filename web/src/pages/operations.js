// Operations: GET /ui/data/operations (lungcad.service.ui_ops.operations) polled: key figures, analyses
// per hour over the last day, latency percentiles (analyses, pipeline stages, API requests) and the newest
// failures.
import { every } from "../lib/api.js";
import { barChart, legend } from "../lib/chart.js";
import { $, el, fmtDate } from "../lib/dom.js";
import { data, explain } from "../lib/uidata.js";

const POLL_MS = 5000;
const KEYS = [{ key: "done", name: "done", color: "#3fb950" }, { key: "failed", name: "failed", color: "#ff7b72" }];
const secs = (v) => (v === null || v === undefined ? "–" : v >= 100 ? v.toFixed(0) : v >= 1 ? v.toFixed(2) : v.toFixed(3));

function stat(term, value, unit, id) {
  return el("div", { class: "stat", dataset: { stat: id } }, el("dt", {}, term), el("dd", {}, String(value), unit ? el("span", { class: "unit" }, unit) : null));
}

function latencyRow(name, s) {
  return el("tr", { dataset: { latency: name } }, el("th", { scope: "row" }, name), el("td", { class: "num" }, s.count),
    el("td", { class: "num" }, secs(s.p50_s)), el("td", { class: "num" }, secs(s.p90_s)), el("td", { class: "num" }, secs(s.p99_s)),
    el("td", { class: "num" }, secs(s.mean_s)));
}

function render(d) {
  const q = d.queue;
  $("#ops-stats").replaceChildren(
    stat("Analyses last hour", d.throughput.done_last_hour, "", "last-hour"),
    stat("Analyses last 24 h", d.throughput.done_last_day, "", "last-day"),
    stat("Queued", q.queued, "", "queued"),
    stat("Running", q.running, "", "running"),
    stat("Oldest queued", q.oldest_queued_s === null ? "–" : Math.round(q.oldest_queued_s), q.oldest_queued_s === null ? "" : "s", "oldest"),
    stat("p90 analysis time", secs(d.latency.analysis.p90_s), d.latency.analysis.p90_s === null ? "" : "s", "p90"),
    stat("Failures last 24 h", d.failures.last_day, "", "failures"),
  );
  const bars = d.throughput.per_hour.map((h) => ({ label: `${new Date(h.hour).getHours()}h`, values: h }));
  barChart($("#tp-chart"), { bars, keys: KEYS, every: 3, yLabel: "analyses",
    label: `Analyses finished per hour over the last ${d.window_hours} hours: ${d.throughput.done_last_day} done, ${d.failures.last_day} failed` });
  $("#tp-legend").replaceChildren(legend(KEYS));
  const rows = [latencyRow("Analysis (started → done)", d.latency.analysis)];
  for (const [stage, s] of Object.entries(d.latency.stages)) rows.push(latencyRow(`stage: ${stage}`, s));
  rows.push(latencyRow("API requests", d.latency.api));
  $("#latency tbody").replaceChildren(...rows);
  $("#failures tbody").replaceChildren(...d.failures.recent.map((f) => el("tr", {},
    el("td", {}, fmtDate(f.finished_at)), el("td", { class: "mono" }, f.analysis_id.slice(0, 12)),
    el("td", {}, f.stage || "–"), el("td", { class: "wrap" }, f.error || "–"))));
  $("#failures-summary").textContent = d.failures.total
    ? `${d.failures.total} failed analys${d.failures.total > 1 ? "es" : "is"} in all; the newest ${d.failures.recent.length}:`
    : "No analysis has failed.";
  $("#ops-updated").textContent = `Updated ${fmtDate(d.at)}.`;
  $("#main").dataset.opsLoaded = "true";
}

async function load() {
  render(await data("/operations"));
}

load().catch((e) => { $("#failures-summary").textContent = `The operations figures could not be loaded: ${explain(e)}`; });
every(POLL_MS, load);
