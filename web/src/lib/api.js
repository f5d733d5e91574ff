// Calls of the dashboard to /api/v1: the session cookie goes along (same origin); state-changing calls
// carry the page's CSRF token (X-CSRF-Token, from <meta name="csrf-token">).  A 401 sends the reader back to
// the login, returning to this page afterwards.
export const API = "/api/v1";

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.message || `HTTP ${status}`);
    this.status = status;
    this.body = body || {};
  }
}

export function csrfToken() {
  return document.querySelector('meta[name="csrf-token"]')?.content ?? "";
}

function toLogin() {
  const next = location.pathname + location.search;
  location.assign(`/ui/login?next=${encodeURIComponent(next)}`);
}

export async function api(path, { method = "GET", json, headers = {}, raw = false } = {}) {
  const h = { Accept: "application/json", ...headers };
  if (!["GET", "HEAD"].includes(method)) h["X-CSRF-Token"] = csrfToken();
  let body;
  if (json !== undefined) {
    body = JSON.stringify(json);
    h["Content-Type"] = "application/json";
  }
  const r = await fetch(API + path, { method, headers: h, body, credentials: "same-origin" });
  if (r.status === 401) {
    toLogin();
    throw new ApiError(401, { message: "the session ended; log in again" });
  }
  if (!r.ok) {
    let b = {};
    try {
      b = await r.json();
    } catch {
      /* not JSON */
    }
    throw new ApiError(r.status, b);
  }
  if (raw) return r;
  return r.status === 204 ? null : r.json();
}

// POST a multipart form with upload progress (fetch cannot report it): onProgress(loaded, total).
export function uploadForm(path, form, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", API + path);
    xhr.setRequestHeader("X-CSRF-Token", csrfToken());
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.onprogress = (e) => onProgress(e.loaded, e.lengthComputable ? e.total : 0);
    xhr.onerror = () => reject(new ApiError(0, { message: "the upload failed (network error)" }));
    xhr.onload = () => {
      let b = {};
      try {
        b = JSON.parse(xhr.responseText);
      } catch {
        /* not JSON */
      }
      if (xhr.status === 401) toLogin();
      if (xhr.status >= 200 && xhr.status < 300) resolve(b);
      else reject(new ApiError(xhr.status, b));
    };
    xhr.send(form);
  });
}

// What the reader's role may do (the server put its permissions on <main data-can>).
export function can(action) {
  try {
    return JSON.parse(document.getElementById("main")?.dataset.can || "{}")[action] === true;
  } catch {
    return false;
  }
}

// Run fn every ms milliseconds (not while the tab is hidden); returns a stop function.
export function every(ms, fn) {
  let stopped = false;
  let timer;
  const tick = async () => {
    if (stopped) return;
    if (!document.hidden) {
      try {
        await fn();
      } catch (e) {
        console.warn(e);
      }
    }
    timer = setTimeout(tick, ms);
  };
  timer = setTimeout(tick, ms);
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
