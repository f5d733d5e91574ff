// Training: the jobs (GET /api/v1/training-jobs, polled) and, for the one chosen, its loss and CPM curves
// drawn live from its Server-Sent Events (GET /api/v1/training-jobs/{id}/events: every `step` event carries
// the trainer's status.json snapshot), its figures and log, and pause / resume / stop (POST .../pause,
// .../resume, .../stop) for roles with training.write.
import { api, can, every } from "../lib/api.js";
import { COLORS, legend, lineChart } from "../lib/chart.js";
import { $, el, fmtDate } from "../lib/dom.js";
import { explain } from "../lib/uidata.js";

const POLL_MS = 2000;
const ENDED = new Set(["finished", "failed", "stopped"]);
const CAN_PAUSE = new Set(["starting", "running"]);
const CAN_RESUME = new Set(["paused", "stopped", "failed"]);
const CAN_STOP = new Set(["queued", "starting", "running"]);
const writer = can("training.write");
const state = { jobs: [], id: null, job: null, es: null, losses: {}, cpm: [], lastCpm: null, lastStep: -1, drawn: 0 };

const stateChip = (s) => el("span", { class: `job-state state-${s}`, dataset: { state: s } }, s);
const num = (v, d = 3) => (v === null || v === undefined || !Number.isFinite(v) ? "–" : Number(v).toFixed(d));

function mainLoss(p) {
  if (!p || !p.losses) return null;
  return p.losses.total ?? p.losses.loss ?? Object.values(p.losses)[0] ?? null;
}

function renderJobs() {
  $("#jobs tbody").replaceChildren(
    ...state.jobs.map((j) => {
      const p = j.progress;
      const pct = p && p.total_steps ? Math.round((100 * p.step) / p.total_steps) : 0;
      const current = j.id === state.id;
      return el("tr", { dataset: { jobId: j.id, state: j.state }, "aria-selected": current ? "true" : null },
        el("td", { class: "nowrap" }, fmtDate(j.started_at || j.created_at)),
        el("td", { class: "mono" }, j.id.slice(0, 12)),
        el("td", {}, stateChip(j.state)),
        el("td", { class: "nowrap" }, el("progress", { max: 100, value: pct, "aria-label": `Job ${j.id.slice(0, 8)} progress` }),
          el("span", { class: "num" }, p ? `${p.step} / ${p.total_steps}` : "–")),
        el("td", { class: "num" }, num(mainLoss(p))),
        el("td", { class: "num" }, num(p?.best_cpm)),
        el("td", {}, el("button", { type: "button", class: "btn btn-small", "aria-pressed": current ? "true" : "false",
          "aria-label": `${current ? "Following" : "Follow"} job ${j.id.slice(0, 8)}`, onclick: () => choose(j.id) }, current ? "Following" : "Follow")),
      );
    }),
  );
  $("#jobs-summary").textContent = state.jobs.length ? `${state.jobs.length} training job${state.jobs.length > 1 ? "s" : ""}, newest first` : "No training jobs yet.";
}

function onStep(snap) {
  if (snap.step < state.lastStep) {  // a resumed run reports from its checkpoint's step: keep the curve monotone
    for (const k of Object.keys(state.losses)) state.losses[k] = state.losses[k].filter(([s]) => s <= snap.step);
  }
  state.lastStep = snap.step;
  for (const [k, v] of Object.entries(snap.losses || {})) {
    if (k === "loss" && "total" in snap.losses) continue; // the same number under two names
    const pts = (state.losses[k] ||= []);
    if (pts.length && pts[pts.length - 1][0] === snap.step) pts[pts.length - 1] = [snap.step, v];
    else pts.push([snap.step, v]);
  }
  if (snap.last_cpm !== null && snap.last_cpm !== undefined && snap.last_cpm !== state.lastCpm) {
    state.cpm.push([snap.step, snap.last_cpm]);
    state.lastCpm = snap.last_cpm;
  }
  schedule();
}

let pending = false;
function schedule() {
  if (pending) return;
  pending = true;
  requestAnimationFrame(() => {
    pending = false;
    drawCharts();
  });
}

function drawCharts() {
  const keys = Object.keys(state.losses).sort((a, b) => (a === "total" ? -1 : b === "total" ? 1 : a.localeCompare(b)));
  const series = keys.map((k, i) => ({ name: k, points: state.losses[k], color: COLORS[i % COLORS.length] }));
  const n = series.reduce((m, s) => Math.max(m, s.points.length), 0);
  const xMax = state.job?.progress?.total_steps || undefined; // both charts over the whole run: aligned
  lineChart($("#loss-chart"), { series, label: `Training losses by step, log scale (${n} steps so far)`, yLabel: "loss (log scale)", log: true, xMin: 0, xMax });
  $("#loss-legend").replaceChildren(legend(series));
  const cpm = [{ name: "validation CPM", points: state.cpm, color: COLORS[2] }];
  lineChart($("#cpm-chart"), { series: cpm, label: `Validation CPM by step (${state.cpm.length} evaluations)`, yLabel: "CPM", yMin: 0, yMax: 1, xMin: 0, xMax });
  $("#cpm-legend").replaceChildren(legend(cpm));
  $("#job").dataset.points = String(n);
  $("#job").dataset.cpmPoints = String(state.cpm.length);
  $("#job").dataset.lastStep = String(state.lastStep);
}

function stat(term, value, unit) {
  return el("div", { class: "stat" }, el("dt", {}, term), el("dd", {}, value, unit ? el("span", { class: "unit" }, unit) : null));
}

function renderJob() {
  const j = state.job;
  if (!j) return;
  const p = j.progress || {};
  $("#job-title").textContent = `Job ${j.id.slice(0, 12)}`;
  $("#job-state").replaceChildren(el("span", {}, "State: ", stateChip(j.state), j.message ? el("span", { class: "muted" }, ` — ${j.message}`) : null));
  $("#job").dataset.state = j.state;
  $("#job-stats").replaceChildren(
    stat("Step", p.step !== undefined ? `${p.step} / ${p.total_steps}` : "–"),
    stat("Epoch", p.epoch !== undefined ? `${p.epoch} / ${p.total_epochs}` : "–"),
    stat("Loss", num(mainLoss(p))),
    stat("Best CPM", num(p.best_cpm)),
    stat("Throughput", num(p.samples_per_s, 1), "samples/s"),
    stat("Waiting for data", p.data_wait_fraction !== undefined ? Math.round(p.data_wait_fraction * 100) : "–", "%"),
    stat("Time left", p.eta_s ? Math.round(p.eta_s) : "–", p.eta_s ? "s" : ""),
  );
  if (p.total_steps && $("#job").dataset.xMax !== String(p.total_steps)) {
    $("#job").dataset.xMax = String(p.total_steps);
    schedule();
  }
  if (writer) {
    $("#pause").disabled = !CAN_PAUSE.has(j.state);
    $("#resume").disabled = !CAN_RESUME.has(j.state);
    $("#stop").disabled = !CAN_STOP.has(j.state);
  }
}

function follow(id) {
  if (state.es) state.es.close();
  Object.assign(state, { losses: {}, cpm: [], lastCpm: null, lastStep: -1 });
  drawCharts();
  const es = new EventSource(`/api/v1/training-jobs/${encodeURIComponent(id)}/events`);
  state.es = es;
  es.addEventListener("step", (e) => onStep(JSON.parse(e.data)));
  es.addEventListener("state", (e) => {
    const d = JSON.parse(e.data);
    if (ENDED.has(d.state)) {  // the server ends the stream there: no reconnection loop
      es.close();
      if (state.es === es) state.es = null;
    }
  });
}

async function refreshJob() {
  if (!state.id) return;
  state.job = await api(`/training-jobs/${encodeURIComponent(state.id)}`);
  renderJob();
  // a job resumed after it stopped or failed writes new events: follow them again
  if (!state.es && !ENDED.has(state.job.state)) follow(state.id);
  const r = await api(`/training-jobs/${encodeURIComponent(state.id)}/logs?tail=30`, { raw: true, headers: { Accept: "text/plain" } });
  $("#job-log").textContent = await r.text();
}

async function choose(id) {
  state.id = id;
  $("#job").hidden = false;
  $("#job").dataset.jobId = id;
  history.replaceState(null, "", `?job=${encodeURIComponent(id)}`);
  renderJobs();
  follow(id);
  await refreshJob();
}

async function loadJobs() {
  const page = await api("/training-jobs?limit=20");
  state.jobs = page.items;
  renderJobs();
}

async function control(action) {
  $("#job-error").hidden = true;
  try {
    state.job = await api(`/training-jobs/${encodeURIComponent(state.id)}/${action}`, { method: "POST" });
    renderJob();
    await loadJobs();
  } catch (e) {
    $("#job-error").textContent = explain(e);
    $("#job-error").hidden = false;
  }
}

if (writer) for (const a of ["pause", "resume", "stop"]) $(`#${a}`).addEventListener("click", () => control(a));

async function start() {
  await loadJobs();
  const wanted = new URLSearchParams(location.search).get("job");
  const pick = state.jobs.find((j) => j.id === wanted) || state.jobs.find((j) => !ENDED.has(j.state)) || state.jobs[0];
  if (pick) await choose(pick.id);
}

start().catch((e) => { $("#jobs-summary").textContent = `The training jobs could not be loaded: ${explain(e)}`; });
every(POLL_MS, async () => {
  await loadJobs();
  await refreshJob();
});
