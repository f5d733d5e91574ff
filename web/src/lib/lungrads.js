// Lung-RADS v2022 badges: colour AND text (never colour alone), with the category's meaning as a title.
import { el } from "./dom.js";

const MEANING = {
  1: "negative",
  2: "benign appearance",
  3: "probably benign",
  "4A": "suspicious",
  "4B": "very suspicious",
  "4X": "very suspicious, additional features",
};

export function badge(category) {
  if (!category) return el("span", { class: "lr lr-none", title: "no reported finding" }, "none");
  const c = String(category).toUpperCase();
  return el(
    "span",
    { class: `lr lr-${c.toLowerCase()}`, title: `Lung-RADS ${c}: ${MEANING[c] || ""}` },
    el("span", { class: "sr-only" }, "Lung-RADS "),
    c,
  );
}

export const STATUS_TEXT = { ok: "OK", qa_warning: "QA warning", qa_failed: "QA failed" };

export function statusChip(status) {
  if (!status) return el("span", { class: "chip" }, "–");
  return el("span", { class: `chip chip-${status}` }, STATUS_TEXT[status] || status);
}
