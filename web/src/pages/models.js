// Models: the active model (GET /api/v1/models/active) with its full model card (GET /ui/data/models/{sha}/card),
// every registered model, the activation history.  Roles with model.write (admins) get "Make active" buttons
// (PUT /api/v1/models/active); for the others the buttons are not drawn and the API refuses the call anyway.
import { api, can } from "../lib/api.js";
import { $, el, fmtDate } from "../lib/dom.js";
import { data, explain } from "../lib/uidata.js";

const writer = can("model.write");
const LABELS = {
  training_data: "Training data", training_steps: "Training steps", training_epochs: "Epochs",
  training_wall_time_s: "Training time (s)", validation_cpm_best: "Best validation CPM", test_cohort: "Test cohort",
  test_froc: "Test FROC", calibration: "Calibration", config_hash: "Configuration hash", checkpoint: "Checkpoint",
  initialised_from: "Initialised from", lineage: "Lineage", other_test_cohorts: "Other test cohorts",
};
const HEADLINE = ["training_data", "training_steps", "training_epochs", "training_wall_time_s", "validation_cpm_best",
  "test_cohort", "calibration"];

const label = (k) => LABELS[k] || k.replace(/_/g, " ").replace(/^./, (c) => c.toUpperCase());
const cpm = (v) => (v === null || v === undefined ? "–" : Number(v).toFixed(3));

function value(v, depth) {
  if (v === null || v === undefined) return el("span", { class: "muted" }, "–");
  if (Array.isArray(v)) {
    if (v.every((x) => typeof x !== "object" || x === null)) return v.map((x) => (typeof x === "number" ? fmtNum(x) : x)).join(", ");
    return el("div", {}, v.map((x) => facts(x, depth + 1)));
  }
  if (typeof v === "object") return depth >= 3 ? el("code", {}, JSON.stringify(v)) : facts(v, depth + 1);
  if (typeof v === "number") return fmtNum(v);
  return String(v);
}

function fmtNum(x) {
  return Number.isInteger(x) ? x.toLocaleString("en") : Math.abs(x) < 1 ? x.toFixed(3) : x.toFixed(2);
}

function facts(obj, depth = 0, keys = Object.keys(obj || {})) {
  return el("dl", { class: "card-facts" }, keys.flatMap((k) => [el("dt", {}, label(k)), el("dd", {}, value(obj[k], depth))]));
}

function showActive(m) {
  $("#active").replaceChildren(
    el("dl", { class: "card-facts", id: "active-facts", dataset: { sha256: m.sha256 } },
      el("dt", {}, "Model"), el("dd", {}, el("strong", {}, m.model_id), ` ${m.model_version}`),
      el("dt", {}, "File"), el("dd", {}, `${m.filename} (${(m.size / 1048576).toFixed(1)} MB)`),
      el("dt", {}, "SHA-256"), el("dd", { class: "mono" }, m.sha256),
      el("dt", {}, "Registered"), el("dd", {}, fmtDate(m.created_at)),
      el("dt", {}, "Validation CPM"), el("dd", {}, cpm(m.card.validation_cpm)),
      el("dt", {}, "Test CPM"), el("dd", {}, `${cpm(m.card.test_cpm)}${m.card.test_cohort ? ` (${m.card.test_cohort})` : ""}`),
      el("dt", {}, "Configuration"), el("dd", { class: "mono" }, m.config_hash.slice(0, 16)),
    ),
  );
}

async function showCard(sha) {
  const { card } = await data(`/models/${encodeURIComponent(sha)}/card`);
  const keys = Object.keys(card);
  if (!keys.length) {
    $("#model-card").replaceChildren(el("p", { class: "muted" }, "This model file carries no model card."));
    return;
  }
  const head = HEADLINE.filter((k) => k in card);
  const rest = keys.filter((k) => !head.includes(k));
  $("#model-card").replaceChildren(
    facts(card, 0, head),
    rest.length ? el("details", { class: "card-more" }, el("summary", {}, `The whole card (${rest.length} more sections)`), facts(card, 0, rest)) : null,
  );
}

async function activate(m, button) {
  $("#switch-error").hidden = true;
  button.disabled = true;
  $("#switch-status").textContent = `Switching to ${m.model_id} ${m.model_version}…`;
  try {
    const now = await api("/models/active", { method: "PUT", json: { sha256: m.sha256 } });
    $("#switch-status").textContent = `${now.model_id} ${now.model_version} is now the active model.`;
    await load();
  } catch (e) {
    $("#switch-status").textContent = "";
    $("#switch-error").textContent = explain(e);
    $("#switch-error").hidden = false;
    button.disabled = false;
  }
}

function modelRow(m) {
  const stateCell = m.active
    ? el("span", { class: "active-mark" }, "Active")
    : writer
      ? el("button", { type: "button", class: "btn btn-small", dataset: { activate: m.sha256 },
        "aria-label": `Make active: ${m.model_id} ${m.model_version} (${m.sha256.slice(0, 8)})`,
        onclick: (e) => activate(m, e.currentTarget) }, "Make active")
      : el("span", { class: "muted" }, "registered");
  return el("tr", { dataset: { sha256: m.sha256 }, "aria-current": m.active ? "true" : null },
    el("td", {}, m.model_id), el("td", {}, m.model_version),
    el("td", { class: "num" }, cpm(m.card.validation_cpm)), el("td", { class: "num" }, cpm(m.card.test_cpm)),
    el("td", {}, fmtDate(m.created_at)), el("td", { class: "mono" }, m.sha256.slice(0, 12)), el("td", {}, stateCell));
}

async function load() {
  const [active, models, history] = await Promise.all([
    api("/models/active").catch(() => null),
    api("/models?limit=100"),
    api("/models/activations?limit=20"),
  ]);
  if (active) {
    showActive(active);
    await showCard(active.sha256);
  } else {
    $("#active").textContent = "No model is active.";
    $("#model-card").textContent = "–";
  }
  $("#models tbody").replaceChildren(...models.items.map(modelRow));
  $("#models-summary").textContent = `${models.total} registered model${models.total === 1 ? "" : "s"}`;
  const names = Object.fromEntries(models.items.map((m) => [m.sha256, `${m.model_id} ${m.model_version}`]));
  $("#activations tbody").replaceChildren(...history.items.map((h) => el("tr", {},
    el("td", {}, fmtDate(h.at)), el("td", {}, h.kind), el("td", {}, names[h.sha256] || el("span", { class: "mono" }, h.sha256.slice(0, 12))),
    el("td", { class: "mono" }, h.by_key || "service"))));
}

load().catch((e) => { $("#active").textContent = `The models could not be loaded: ${explain(e)}`; });
