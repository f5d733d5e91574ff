// Study: the CT (GET /analyses/{id}/volume.nii.gz) in NiiVue with the nodule label map as an overlay
// (labels.nii.gz; label n = finding n), axial / coronal / sagittal / 3-D, lung and mediastinal windows; the
// findings the report shows (GET /analyses/{id}/shown-findings) -- choosing one moves every view to it; the
// QA checks and the report (HTML view; PDF / SEG / SR downloads for roles that may read them).
import { DRAG_MODE, Niivue, SLICE_TYPE, MULTIPLANAR_TYPE, SHOW_RENDER } from "@niivue/niivue";
import { api, can, every } from "../lib/api.js";
import { $, $$, el, pct } from "../lib/dom.js";
import { badge, statusChip } from "../lib/lungrads.js";

const root = $("#study");
const id = root.dataset.analysisId;
const enc = encodeURIComponent(id);
const WINDOWS = { lung: { w: 1500, l: -600 }, mediastinal: { w: 350, l: 40 } };
const VIEWS = {
  mpr: SLICE_TYPE.MULTIPLANAR,
  axial: SLICE_TYPE.AXIAL,
  coronal: SLICE_TYPE.CORONAL,
  sagittal: SLICE_TYPE.SAGITTAL,
  render: SLICE_TYPE.RENDER,
};
// finding colours: distinct, bright on a dark background (colour + the number, never colour alone)
const PALETTE = [
  [255, 196, 0], [0, 200, 255], [255, 80, 200], [120, 255, 80], [255, 120, 40], [170, 140, 255],
  [255, 255, 120], [60, 255, 210],
];

// the label map over the CT: see-through, so the nodule's attenuation and margins stay readable
const OVERLAY_OPACITY = 0.35;
let nv = null;
let findings = [];
let current = null; // number of the finding the views are on
let activeView = "mpr";

function status(text) {
  $("#viewer-status").textContent = text;
  $("#viewer-status").hidden = !text;
}

function pressed(selector, on) {
  $$(selector).forEach((b) => b.setAttribute("aria-pressed", String(b === on)));
}

function setWindow(name) {
  const { w, l } = WINDOWS[name];
  const vol = nv?.volumes[0];
  if (vol) {
    vol.cal_min = l - w / 2;
    vol.cal_max = l + w / 2;
    nv.updateGLVolume();
  }
  root.dataset.currentWindow = name;
  pressed("[data-window]", $(`[data-window="${name}"]`));
}

function setView(name) {
  activeView = name;
  nv?.setSliceType(VIEWS[name]);
  requestAnimationFrame(drawMarkers);
  root.dataset.currentView = name;
  pressed("[data-view]", $(`[data-view="${name}"]`));
}

// LPS (DICOM, result.json) -> RAS (NIfTI, NiiVue)
const ras = ([x, y, z]) => [-x, -y, z];

function showPosition() {
  if (!nv?.volumes.length) return;
  const vox = nv.frac2vox(nv.scene.crosshairPos).map((v) => Math.round(v));
  const [i, j, k] = vox;
  const dims = nv.volumes[0].dims; // [n, x, y, z]
  const p = $("#position");
  p.dataset.sliceSagittal = i;
  p.dataset.sliceCoronal = j;
  p.dataset.sliceAxial = k;
  p.dataset.finding = current ?? "";
  p.dataset.zoom = nv.scene.pan2Dxyzmm[3].toFixed(2);
  const f = findings.find((x) => x.number === current);
  const at = f ? ` · at ${f.label} (${f.diameter_mm.toFixed(1)} mm, Lung-RADS ${f.lung_rads || "–"})` : "";
  p.textContent = `Slice ${k + 1} / ${dims[3]} · voxel x ${i + 1}, y ${j + 1}${at}`;
  requestAnimationFrame(drawMarkers);
}

// Numbered markers over the 2-D tiles: a ring of the finding's diameter and its number, on every tile whose
// slice passes through the finding (NiiVue's own tile geometry: frac2canvasPosWithTile, device pixels).
function drawMarkers() {
  const layer = $("#markers");
  if (!nv?.volumes.length || !layer) return;
  const dpr = nv.uiData?.dpr || window.devicePixelRatio || 1;
  const cross = nv.frac2mm(nv.scene.crosshairPos);
  const tiles = nv.screenSlices || [];
  const marks = [];
  for (const f of findings) {
    const c = ras(f.center_xyz_mm);
    const r = f.diameter_mm / 2;
    for (const type of [SLICE_TYPE.AXIAL, SLICE_TYPE.CORONAL, SLICE_TYPE.SAGITTAL]) {
      if (!tiles.some((t) => t.axCorSag === type)) continue;
      const axis = { [SLICE_TYPE.AXIAL]: 2, [SLICE_TYPE.CORONAL]: 1, [SLICE_TYPE.SAGITTAL]: 0 }[type];
      const off = Math.abs(c[axis] - cross[axis]);
      if (off > r) continue; // this tile's slice misses the finding
      const at = nv.frac2canvasPosWithTile(nv.mm2frac(c), type);
      if (!at) continue;
      const edge = [...c];
      edge[axis === 0 ? 1 : 0] += r;
      const e = nv.frac2canvasPosWithTile(nv.mm2frac(edge), type);
      const px = e ? Math.hypot(e.pos[0] - at.pos[0], e.pos[1] - at.pos[1]) / dpr : 8;
      const inSlice = Math.sqrt(Math.max(r * r - off * off, 0)) / r; // the ring shrinks off-centre
      const size = Math.max(14, 2 * px * inSlice + 8);
      const [cr, cg, cb] = PALETTE[(f.number - 1) % PALETTE.length];
      marks.push(
        el("div", { class: at.pos[1] / dpr - size / 2 < 26 ? "marker marker-below" : "marker", style: `left:${at.pos[0] / dpr}px;top:${at.pos[1] / dpr}px;--c:rgb(${cr} ${cg} ${cb});--d:${size}px`,
          dataset: { number: f.number, tile: type }, "aria-hidden": "true" },
          el("span", { class: "marker-no" }, f.number)),
      );
    }
  }
  layer.replaceChildren(...marks);
}

function zoomBy(factor) {
  if (!nv) return;
  const z = nv.scene.pan2Dxyzmm[3] * factor;
  nv.scene.pan2Dxyzmm[3] = Math.min(8, Math.max(0.5, z));
  nv.drawScene();
  showPosition();
}

function jumpTo(number) {
  const f = findings.find((x) => x.number === number);
  if (!f || !nv) return;
  current = number;
  nv.scene.crosshairPos = nv.mm2frac(ras(f.center_xyz_mm));
  nv.drawScene();
  nv.createOnLocationChange?.();
  $$("#findings tbody tr").forEach((tr) => tr.classList.toggle("row-current", Number(tr.dataset.number) === number));
  $$("#findings tbody button").forEach((b) => b.setAttribute("aria-pressed", String(Number(b.dataset.number) === number)));
  showPosition();
}

function labelColormap(n) {
  const cm = { R: [0], G: [0], B: [0], A: [0], I: [0], labels: [""] };
  for (let k = 1; k <= Math.max(n, 1); k++) {
    const [r, g, b] = PALETTE[(k - 1) % PALETTE.length];
    cm.R.push(r); cm.G.push(g); cm.B.push(b); cm.A.push(255); cm.I.push(k);
    cm.labels.push(String(k));
  }
  return cm;
}

async function startViewer() {
  const canvas = $("#viewer");
  nv = new Niivue({
    backColor: [0, 0, 0, 1],
    crosshairColor: [0.2, 0.9, 0.3, 0.9],
    crosshairWidth: 1,
    show3Dcrosshair: true,
    isRadiologicalConvention: true, // the patient's right on the screen's left, as radiologists read
    multiplanarLayout: MULTIPLANAR_TYPE.GRID,
    multiplanarShowRender: SHOW_RENDER.ALWAYS,
    isOrientCube: false,
    dragAndDropEnabled: false,
    fontMinPx: 15, // orientation letters legible at a reading distance
    fontColor: [0.9, 0.9, 0.9, 1],
    loadingText: "Loading the CT...",
    showLegend: false,
  });
  await nv.attachToCanvas(canvas);
  // left: crosshair (shift: pan), middle: pan, right-drag: window / level, as reading stations do
  nv.setMouseEventConfig({
    leftButton: { primary: DRAG_MODE.crosshair, withShift: DRAG_MODE.pan, withCtrl: DRAG_MODE.crosshair },
    rightButton: DRAG_MODE.windowing,
    centerButton: DRAG_MODE.pan,
  });
  // Ctrl + wheel zooms the 2-D views (the wheel alone steps through slices)
  canvas.addEventListener("wheel", (e) => {
    if (!e.ctrlKey) return;
    e.preventDefault();
    e.stopImmediatePropagation();
    zoomBy(e.deltaY < 0 ? 1.15 : 1 / 1.15);
  }, { capture: true, passive: false });
  nv.onLocationChange = () => showPosition();
  new ResizeObserver(() => requestAnimationFrame(drawMarkers)).observe(canvas);
  for (const type of ["wheel", "mouseup", "pointerup"]) canvas.addEventListener(type, () => requestAnimationFrame(drawMarkers));
  await nv.loadVolumes([
    { url: `/api/v1/analyses/${enc}/volume.nii.gz`, name: "ct.nii.gz", colormap: "gray" },
    { url: `/api/v1/analyses/${enc}/labels.nii.gz`, name: "labels.nii.gz", opacity: OVERLAY_OPACITY },
  ]);
  const labels = nv.volumes[1];
  if (labels) {
    labels.setColormapLabel(labelColormap(findings.length));
    nv.updateGLVolume();
  }
  setWindow("lung");
  setView("mpr");
  root.dataset.viewerReady = "true";
  status("");
  if (findings.length) jumpTo(findings[0].number);
  else showPosition();
}

function findingsTable(doc) {
  findings = doc.findings;
  const body = $("#findings tbody");
  body.replaceChildren(
    ...findings.map((f) => {
      const [r, g, b] = PALETTE[(f.number - 1) % PALETTE.length];
      return el(
        "tr",
        { dataset: { number: f.number } },
        el("td", {}, el("button", {
          type: "button", class: "finding-no", style: `--c: rgb(${r} ${g} ${b})`, "aria-pressed": "false",
          dataset: { number: f.number }, "aria-label": `Show ${f.label} in every view`, title: "Show in every view",
          onclick: () => jumpTo(f.number),
        }, f.number)),
        el("td", { class: "num" }, `${f.diameter_mm.toFixed(1)} mm`),
        el("td", {}, f.lesion_kind === "mass" ? "mass" : f.texture || "–"),
        el("td", {}, badge(f.lung_rads)),
        el("td", { class: "num" }, pct(f.probability)),
      );
    }),
  );
  const hidden = doc.n_candidates - findings.length;
  $("#findings-summary").textContent = findings.length
    ? `${findings.length} finding${findings.length > 1 ? "s" : ""} at probability ≥ ${Math.round(doc.min_probability * 100)} %` +
      (hidden > 0 ? ` (${hidden} lower-probability candidate${hidden > 1 ? "s" : ""} not shown).` : ".")
    : "No finding reaches the report's threshold.";
}

function qa(result) {
  const q = result.qa || {};
  if (result.status !== "ok") { // read the findings with care: say so where it is seen first
    const banner = $("#qa-banner");
    const what = result.status === "qa_failed" ? "QA failed: the scan could not be analysed" : "QA warning";
    banner.textContent = `${what}${result.reason ? `: ${result.reason}` : "."}`;
    banner.hidden = false;
  }
  $("#qa-verdict").replaceChildren(statusChip(result.status), " ", result.reason || (q.verdict ? `verdict: ${q.verdict}` : ""));
  $("#qa-checks").replaceChildren(
    ...(q.checks || []).map((c) =>
      el("li", { class: `qa-${c.status}` }, el("span", { class: `chip chip-${c.status}` }, c.status), " ",
        el("strong", {}, c.name), el("br"), el("span", { class: "muted" }, c.message)),
    ),
  );
}

function reportLinks(files) {
  const have = new Set(files.files.map((f) => f.name));
  const base = `/api/v1/analyses/${enc}/files/`;
  const items = [
    ["report/report.html", "View the report (HTML)", false],
    ["report/report.pdf", "Download the report (PDF)", true],
    ["dicom/seg.dcm", "Download DICOM SEG", true],
    ["dicom/sr.dcm", "Download DICOM SR", true],
    ["result.json", "Download result.json", true],
  ];
  const links = items
    .filter(([name]) => have.has(name))
    .map(([name, text, download]) =>
      el("li", {}, el("a", { href: base + name, class: "btn", download: download ? name.split("/").pop() : null,
        target: download ? null : "_blank", rel: "noopener", dataset: { file: name } }, text)));
  if (!can("phi.read")) links.push(el("li", { class: "muted" }, "The report and the DICOM objects name the patient: your role may not open them."));
  $("#report-links").replaceChildren(...links);
}

function studyInfo(analysis, study) {
  const facts = [
    ["Patient", study.patient ? [study.patient.patient_name, study.patient.patient_id].filter(Boolean).join(" · ") || "–" : "not shown to your role"],
    ["Study date", study.study_date || "–"],
    ["Description", study.description || "–"],
    ["Priority", null],
    ["Triage p", pct(analysis.triage_probability)],
    ["Model", `${analysis.model_id || "–"} ${analysis.model_version || ""}`],
  ];
  $("#study-info").replaceChildren(
    ...facts.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v === null ? badge(analysis.lung_rads) : v)]),
  );
}

async function main() {
  let analysis = await api(`/analyses/${enc}`);
  if (analysis.status !== "done") {
    status(`The analysis is ${analysis.status} (${Math.round((analysis.progress || 0) * 100)} %)…`);
    await new Promise((resolve) => {
      const stop = every(1500, async () => {
        analysis = await api(`/analyses/${enc}`);
        status(`The analysis is ${analysis.status} (${Math.round((analysis.progress || 0) * 100)} %)…`);
        if (["done", "failed", "cancelled"].includes(analysis.status)) {
          stop();
          resolve();
        }
      });
    });
    if (analysis.status !== "done") {
      status(`The analysis ${analysis.status}: ${analysis.error || ""}`);
      return;
    }
  }
  const [shown, result, files, study] = await Promise.all([
    api(`/analyses/${enc}/shown-findings`),
    api(`/analyses/${enc}/result`),
    api(`/analyses/${enc}/files`),
    api(`/studies/${encodeURIComponent(analysis.study_id)}`),
  ]);
  studyInfo(analysis, study);
  findingsTable(shown);
  qa(result);
  reportLinks(files);
  await startViewer();
}

$$("[data-window]").forEach((b) => b.addEventListener("click", () => setWindow(b.dataset.window)));
$$("[data-view]").forEach((b) => b.addEventListener("click", () => setView(b.dataset.view)));
$("#overlay-toggle").addEventListener("click", (e) => {
  const on = e.currentTarget.getAttribute("aria-pressed") !== "true";
  e.currentTarget.setAttribute("aria-pressed", String(on));
  if (nv?.volumes[1]) nv.setOpacity(1, on ? OVERLAY_OPACITY : 0);
});
$("#crosshair-toggle").addEventListener("click", (e) => {
  const on = e.currentTarget.getAttribute("aria-pressed") !== "true";
  e.currentTarget.setAttribute("aria-pressed", String(on));
  nv?.setCrosshairWidth(on ? 1 : 0); // off: the lines no longer cross the nodule's margins
  requestAnimationFrame(drawMarkers);
});
$("#reset-view").addEventListener("click", () => {
  if (!nv) return;
  nv.scene.pan2Dxyzmm = [0, 0, 0, 1];
  nv.drawScene();
  showPosition();
});
// keyboard: slices with the arrow keys / Page Up / Page Down (the axis of the view, axial in MPR)
$("#viewer").addEventListener("keydown", (e) => {
  if (!nv) return;
  if (e.key === "+" || e.key === "=" || e.key === "-") {
    e.preventDefault();
    zoomBy(e.key === "-" ? 1 / 1.15 : 1.15);
    return;
  }
  const step = { ArrowUp: 1, PageUp: 1, ArrowRight: 1, ArrowDown: -1, PageDown: -1, ArrowLeft: -1 }[e.key];
  if (!step) return;
  e.preventDefault();
  const axis = { sagittal: [step, 0, 0], coronal: [0, step, 0] }[activeView] || [0, 0, step];
  current = null;
  nv.moveCrosshairInVox(...axis);
  showPosition();
});

main().catch((e) => status(`The study could not be loaded: ${e.message}`));
