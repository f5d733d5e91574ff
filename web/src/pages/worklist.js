// Worklist: GET /api/v1/worklist (most urgent first), filters as query parameters, a search over the
// loaded page, pagination; polled every POLL_MS so new results appear without a reload (announced in the
// live region and marked "new").
import { api, can, every } from "../lib/api.js";
import { $, el, fmtDate, pct } from "../lib/dom.js";
import { badge, statusChip } from "../lib/lungrads.js";

const POLL_MS = Number(document.getElementById("main")?.dataset.pollMs || 4000);
const state = { offset: 0, limit: 25, rows: [], total: 0, seen: null, fresh: new Set() };
const phi = can("phi.read");

function filters() {
  const f = new FormData($("#filters"));
  const q = new URLSearchParams();
  for (const name of ["min_lung_rads", "scan_status", "date_from", "date_to"]) {
    const v = f.get(name);
    if (v) q.set(name, v);
  }
  state.limit = Number(f.get("limit") || 25);
  q.set("limit", state.limit);
  q.set("offset", state.offset);
  return q;
}

function patientCell(r) {
  if (phi && (r.patient_name || r.patient_id)) {
    if (!r.patient_name) return el("span", {}, r.patient_id);
    return el("span", {}, r.patient_name, el("br"), el("span", { class: "muted" }, r.patient_id || ""));
  }
  return el("span", { class: "muted mono", title: "patient hash (your role sees no patient identifiers)" },
    r.patient_id_hash ? r.patient_id_hash.slice(0, 10) : "–");
}

function matches(r, text) {
  if (!text) return true;
  const hay = [r.patient_name, r.patient_id, r.study_uid, r.analysis_id, r.study_id, r.patient_id_hash]
    .filter(Boolean).join(" ").toLowerCase();
  return hay.includes(text.toLowerCase());
}

function render() {
  const text = $("#f-search").value.trim();
  const body = $("#worklist tbody");
  const shown = state.rows.filter((r) => matches(r, text));
  body.replaceChildren(
    ...shown.map((r, i) => {
      const rank = state.offset + state.rows.indexOf(r) + 1;
      const isNew = state.fresh.has(r.analysis_id);
      return el(
        "tr",
        { class: isNew ? "row-new" : null, dataset: { analysisId: r.analysis_id, lungRads: r.lung_rads || "" } },
        el("td", { class: "num" }, rank, isNew ? el("span", { class: "chip chip-new" }, "new") : null),
        el("td", {}, badge(r.lung_rads)),
        el("td", { class: "num" }, pct(r.triage_probability)),
        el("td", { class: "num" }, r.n_findings),
        el("td", {}, statusChip(r.scan_status)),
        el("td", {}, patientCell(r)),
        el("td", {}, r.study_date || "–"),
        el("td", {}, fmtDate(r.finished_at)),
        el("td", {}, el("a", { class: "btn btn-small", href: `/ui/study/${encodeURIComponent(r.analysis_id)}`,
          "aria-label": `Open study ranked ${rank}` }, "Open")),
      );
    }),
  );
  const first = state.total ? state.offset + 1 : 0;
  const last = state.offset + state.rows.length;
  const range = state.total <= state.rows.length ? `${state.total} stud${state.total === 1 ? "y" : "ies"}` : `Studies ${first}–${last} of ${state.total}`;
  $("#wl-summary").textContent = state.total
    ? `${range}${text ? `, ${shown.length} matching “${text}”` : ""}`
    : "No analysed studies match these filters.";
  $("#pg-info").textContent = `Page ${Math.floor(state.offset / state.limit) + 1} of ${Math.max(1, Math.ceil(state.total / state.limit))}`;
  $("#pg-prev").disabled = state.offset === 0;
  $("#pg-next").disabled = last >= state.total;
}

async function load({ announce = false } = {}) {
  const page = await api(`/worklist?${filters()}`);
  const ids = new Set(page.items.map((r) => r.analysis_id));
  if (announce && state.seen) {
    const added = [...ids].filter((id) => !state.seen.has(id));
    added.forEach((id) => state.fresh.add(id));
    if (added.length) $("#wl-live").textContent = `${added.length} new result${added.length > 1 ? "s" : ""} on the worklist.`;
  }
  state.seen = ids;
  state.rows = page.items;
  state.total = page.total;
  render();
}

function reload() {
  state.offset = 0;
  state.seen = null;
  state.fresh.clear();
  load().catch(showError);
}

function showError(e) {
  $("#wl-summary").textContent = `The worklist could not be loaded: ${e.message}`;
}

$("#filters").addEventListener("change", (e) => {
  if (e.target.id !== "f-search") reload();
});
$("#filters").addEventListener("submit", (e) => e.preventDefault());
$("#f-search").addEventListener("input", render);
$("#pg-prev").addEventListener("click", () => {
  state.offset = Math.max(0, state.offset - state.limit);
  state.seen = null;
  load().catch(showError);
});
$("#pg-next").addEventListener("click", () => {
  state.offset += state.limit;
  state.seen = null;
  load().catch(showError);
});

load().catch(showError);
every(POLL_MS, () => load({ announce: true }));
