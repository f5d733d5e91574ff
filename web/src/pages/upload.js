// Upload: drop (or choose) DICOM files or a zip -> POST /api/v1/studies with upload progress (XHR), then
// POST /api/v1/analyses (with the report) and follow GET /api/v1/analyses/{id} until it is done.
import { ApiError, api, uploadForm } from "../lib/api.js";
import { $, el } from "../lib/dom.js";

const POLL_MS = 1000;
let files = [];

function setFiles(list) {
  files = [...list].filter((f) => f.size > 0);
  const bytes = files.reduce((n, f) => n + f.size, 0);
  $("#chosen").textContent = files.length
    ? `${files.length} file${files.length > 1 ? "s" : ""} chosen (${(bytes / 1048576).toFixed(1)} MB).`
    : "No files chosen.";
  $("#start").disabled = files.length === 0;
}

function fail(message) {
  const box = $("#upload-error");
  box.textContent = message;
  box.hidden = false;
  $("#start").disabled = files.length === 0;
}

function explain(e) {
  if (e instanceof ApiError) return [e.body.message || e.message, e.body.fix].filter(Boolean).join(" — ");
  return String(e.message || e);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function follow(analysisId) {
  for (;;) {
    const a = await api(`/analyses/${encodeURIComponent(analysisId)}`);
    const pct = Math.round((a.progress || 0) * 100);
    $("#analysis-progress").value = pct;
    $("#analysis-progress").textContent = `${pct} %`;
    const stage = a.stage && a.stage !== a.status ? ` · ${a.stage}` : "";
    $("#analysis-text").textContent = `${a.status}${stage} · ${pct} %`;
    if (a.status === "done") return a;
    if (a.status === "failed" || a.status === "cancelled") throw new Error(`The analysis ${a.status}: ${a.error || "no reason given"}`);
    await sleep(POLL_MS);
  }
}

async function start() {
  $("#start").disabled = true;
  $("#upload-error").hidden = true;
  $("#upload-done").hidden = true;
  const form = new FormData();
  for (const f of files) form.append("files", f, f.webkitRelativePath || f.name);
  $("#upload-status").textContent = "Uploading…";
  try {
    const stored = await uploadForm("/studies", form, (loaded, total) => {
      const pct = total ? Math.round((100 * loaded) / total) : 0;
      $("#upload-progress").value = pct;
      $("#upload-progress").textContent = `${pct} %`;
      $("#upload-text").textContent = `${(loaded / 1048576).toFixed(1)} of ${(total / 1048576).toFixed(1)} MB · ${pct} %`;
    });
    $("#upload-progress").value = 100;
    const skipped = stored.skipped?.length ? `, ${stored.skipped.length} file(s) skipped` : "";
    $("#upload-text").textContent = `Stored ${stored.stored_instances} new and ${stored.duplicate_instances} known instance(s)${skipped}.`;
    $("#upload-status").textContent = "Stored. Analysing…";
    const made = await api("/analyses", { method: "POST", json: { study_id: stored.id, report: true } });
    const done = await follow(made.id);
    $("#upload-status").textContent = `Analysis done: ${done.n_findings ?? 0} finding(s)${done.cached ? " (an earlier identical analysis was reused)" : ""}.`;
    const link = $("#open-study");
    link.href = `/ui/study/${encodeURIComponent(made.id)}`;
    $("#upload-done").hidden = false;
    link.focus();
  } catch (e) {
    $("#upload-status").textContent = "";
    fail(explain(e));
  }
}

const zone = $("#dropzone");
for (const type of ["dragenter", "dragover"]) {
  zone.addEventListener(type, (e) => {
    e.preventDefault();
    zone.classList.add("dropzone-over");
  });
}
for (const type of ["dragleave", "drop"]) zone.addEventListener(type, () => zone.classList.remove("dropzone-over"));
zone.addEventListener("drop", (e) => {
  e.preventDefault();
  setFiles(e.dataTransfer.files);
});
$("#files").addEventListener("change", (e) => setFiles(e.target.files));
$("#start").addEventListener("click", start);
void el;
