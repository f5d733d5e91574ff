// GET /ui/data/... (lungcad.service.ui_data): the dashboard's own JSON routes, session cookie only.
import { ApiError } from "./api.js";

export async function data(path) {
  const r = await fetch(`/ui/data${path}`, { headers: { Accept: "application/json" }, credentials: "same-origin" });
  if (r.status === 401) location.assign(`/ui/login?next=${encodeURIComponent(location.pathname)}`);
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new ApiError(r.status, body);
  return body;
}

// an error's message and fix (the API's {"error", "message", "fix"} body) as one line
export function explain(e) {
  return [e?.body?.message || e?.message || String(e), e?.body?.fix].filter(Boolean).join(" — ");
}
