// Batches: the list (GET /ui/data/batches, newest first) with each batch's progress and analyses per
// status, polled; a new batch from stored studies (GET /api/v1/studies, POST /api/v1/batches),
// for roles that may create analyses.
import { api, can, every } from "../lib/api.js";
import { data, explain } from "../lib/uidata.js";
import { $, el, fmtDate } from "../lib/dom.js";

const POLL_MS = 3000;
const LIMIT = 10;
const MAX_LINKS = 5; // study links per batch row (the rest: the worklist)
const state = { offset: 0, total: 0, chosen: new Set(), studies: [] };

function counts(c) {
  const order = ["queued", "running", "done", "failed", "cancelled"];
  const cls = { done: "chip-ok", failed: "chip-fail", cancelled: "chip-warn", queued: "", running: "" };
  return el("span", { class: "counts" }, order.filter((k) => c[k]).map((k) => el("span", { class: `chip ${cls[k]}` }, `${c[k]} ${k}`)));
}

async function loadBatches() {
  const page = await data(`/batches?limit=${LIMIT}&offset=${state.offset}`);
  state.total = page.total;
  $("#batches tbody").replaceChildren(
    ...page.items.map((b) => {
      const pct = Math.round(b.progress * 100);
      return el("tr", { dataset: { batchId: b.id, finished: String(b.finished) } },
        el("td", { class: "nowrap" }, fmtDate(b.created_at)),
        el("td", { class: "mono" }, b.id.slice(0, 12)),
        el("td", { class: "num" }, b.n_analyses),
        el("td", { class: "nowrap" }, el("progress", { max: 100, value: pct, "aria-label": `Batch ${b.id.slice(0, 8)} progress` }, `${pct} %`),
          el("span", { class: "num" }, b.finished ? "finished" : `${pct} %`)),
        el("td", {}, counts(b.counts)),
        el("td", { class: "nowrap" }, b.counts.done
          ? [el("a", { href: `/api/v1/batches/${encodeURIComponent(b.id)}/findings.csv`, download: "",
            "aria-label": `Findings CSV of batch ${b.id.slice(0, 8)}` }, "Findings CSV"),
          ...b.analysis_ids.slice(0, MAX_LINKS).flatMap((id, k) => [" · ", el("a", { href: `/ui/study/${encodeURIComponent(id)}`,
            "aria-label": `Study ${k + 1} of batch ${b.id.slice(0, 8)}` }, `Study ${k + 1}`)]),
          b.analysis_ids.length > MAX_LINKS ? el("span", { class: "muted" }, ` (+${b.analysis_ids.length - MAX_LINKS} on the worklist)`) : null]
          : el("span", { class: "muted" }, "–")),
      );
    }),
  );
  $("#batches-summary").textContent = state.total
    ? `Batches ${state.offset + 1}–${state.offset + page.items.length} of ${state.total}`
    : "No batches yet.";
  $("#b-info").textContent = `Page ${Math.floor(state.offset / LIMIT) + 1} of ${Math.max(1, Math.ceil(state.total / LIMIT))}`;
  $("#b-prev").disabled = state.offset === 0;
  $("#b-next").disabled = state.offset + page.items.length >= state.total;
}

function renderChoice() {
  $("#create-batch").disabled = state.chosen.size === 0;
  $("#create-batch").textContent = state.chosen.size
    ? `Analyse the ${state.chosen.size} chosen stud${state.chosen.size > 1 ? "ies" : "y"}`
    : "Analyse the chosen studies";
  const all = $("#all-studies");
  all.checked = state.studies.length > 0 && state.chosen.size === state.studies.length;
  all.indeterminate = state.chosen.size > 0 && !all.checked;
}

async function loadStudies() {
  const page = await api("/studies?limit=100");
  state.studies = page.items;
  $("#studies tbody").replaceChildren(
    ...page.items.map((s, i) => el("tr", { dataset: { studyId: s.id } },
      el("td", {}, el("input", { type: "checkbox", id: `st-${i}`, value: s.id, class: "pick",
        "aria-label": `Choose the study of ${s.study_date || "unknown date"}${s.description ? `, ${s.description}` : ""}`,
        onchange: (e) => { e.target.checked ? state.chosen.add(s.id) : state.chosen.delete(s.id); renderChoice(); } })),
      el("td", {}, s.study_date || "–"),
      el("td", { class: "wrap" }, s.description || "–"),
      el("td", { class: "num" }, s.n_instances),
      el("td", {}, fmtDate(s.created_at)),
      el("td", { class: "mono" }, s.id.slice(0, 12)),
    )),
  );
  $("#studies-summary").textContent = page.total
    ? `${page.items.length} of ${page.total} stored studies`
    : "No stored studies: upload one first.";
  renderChoice();
}

async function createBatch() {
  $("#create-error").hidden = true;
  $("#create-batch").disabled = true;
  try {
    const b = await api("/batches", { method: "POST", json: { study_ids: [...state.chosen], report: $("#with-report").checked } });
    $("#create-status").textContent = `Batch ${b.id.slice(0, 12)} created: ${b.n_analyses} analys${b.n_analyses > 1 ? "es" : "is"} queued.`;
    state.chosen.clear();
    document.querySelectorAll("#studies .pick").forEach((c) => { c.checked = false; });
    state.offset = 0;
    await loadBatches();
  } catch (e) {
    const box = $("#create-error");
    box.textContent = explain(e);
    box.hidden = false;
  }
  renderChoice();
}

function fail(e) {
  $("#batches-summary").textContent = `The batches could not be loaded: ${e.message}`;
}

$("#b-prev").addEventListener("click", () => { state.offset = Math.max(0, state.offset - LIMIT); loadBatches().catch(fail); });
$("#b-next").addEventListener("click", () => { state.offset += LIMIT; loadBatches().catch(fail); });
if (can("analysis.create") && $("#studies")) {
  $("#create-batch").addEventListener("click", createBatch);
  $("#all-studies").addEventListener("change", (e) => {
    state.chosen = new Set(e.target.checked ? state.studies.map((s) => s.id) : []);
    document.querySelectorAll("#studies .pick").forEach((c) => { c.checked = e.target.checked; });
    renderChoice();
  });
  loadStudies().catch((e) => { $("#studies-summary").textContent = `The studies could not be loaded: ${e.message}`; });
}
loadBatches().catch(fail);
every(POLL_MS, loadBatches);
