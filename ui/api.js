// The admin API client: the UI's only way to change anything. The session
// is an HttpOnly cookie the page never sees; writes carry the session's
// CSRF value, which only this origin can read (GET /api/session).

import { h, toast, showFieldErrors } from "./dom.js";

let csrf = null;
let onLoggedOut = () => {};

/** An admin API error: status, the JSON error code and message, field errors. */
export class ApiError extends Error {
  constructor(status, body, text) {
    super((body && body.message) || text || `HTTP ${status}`);
    this.status = status;
    this.code = body && body.error;
    this.field = body && body.field;
    this.errors = (body && body.errors) || (body && body.field ? [{ field: body.field, message: body.message }] : []);
  }
}

/** Called when a call answers 401: the session has ended. */
export function whenLoggedOut(fn) {
  onLoggedOut = fn;
}

/** Calls the admin API (`path` from `/api` on, without it). */
export async function api(method, path, body, { headers = {}, raw = false } = {}) {
  const h = { Accept: "application/json", ...headers };
  if (body !== undefined) h["Content-Type"] = "application/json";
  if (csrf && method !== "GET" && method !== "HEAD") h["Komainu-CSRF"] = csrf;
  const response = await fetch(`api${path}`, {
    method,
    headers: h,
    body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
    credentials: "same-origin",
    cache: "no-store",
  });
  if (raw) return response;
  const text = await response.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  if (response.status === 401 && path !== "/session" && !path.startsWith("/login")) {
    csrf = null;
    onLoggedOut();
  }
  if (!response.ok) throw new ApiError(response.status, json, text);
  return json;
}

/** Who is logged in (null when nobody is). */
export async function currentSession() {
  try {
    const s = await api("GET", "/session");
    csrf = s.csrfToken || null;
    return s;
  } catch (e) {
    if (e.status === 401) return null;
    throw e;
  }
}

function basic(id, secret) {
  const bytes = new TextEncoder().encode(`${id}:${secret}`);
  let text = "";
  for (const b of bytes) text += String.fromCharCode(b);
  return `Basic ${btoa(text)}`;
}

/** Logs in with an admin key; the key is sent once and kept nowhere. */
export async function login(id, secret) {
  const s = await api("POST", "/session", undefined, { headers: { Authorization: basic(id, secret) } });
  csrf = s.csrfToken;
  return s;
}

/** The auth modules the login page offers ({modules: [{id, name, kind}]}). */
export async function loginOptions() {
  return api("GET", "/login");
}

/** Logs a local user in; the password is sent once and kept nowhere. */
export async function loginUser(module, username, password) {
  const s = await api("POST", `/login/${encodeURIComponent(module)}`, { username, password });
  csrf = s.csrfToken;
  return s;
}

/** Logs out (the cookie is cleared by the answer). */
export async function logout() {
  try {
    await api("DELETE", "/session");
  } finally {
    csrf = null;
  }
}

/** The metrics, parsed from the Prometheus text format (null where not offered). */
export async function metrics() {
  const response = await fetch("metrics", { credentials: "same-origin", cache: "no-store" });
  if (response.status === 404 || response.status === 501) return null;
  if (!response.ok) throw new ApiError(response.status, null, await response.text());
  return parseMetrics(await response.text());
}

/** Prometheus text → [{name, labels, value}]. */
export function parseMetrics(text) {
  const samples = [];
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const m = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/);
    if (!m) continue;
    const labels = {};
    if (m[3]) {
      for (const l of m[3].matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    }
    samples.push({ name: m[1], labels, value: Number(m[4]) });
  }
  return samples;
}

/** The path of the UI's own origin, where the gateway's API lives. */
export function apiBase() {
  return new URL("api", document.baseURI).href;
}

/**
 * Shows why a save was refused: each field error next to its field (paths
 * relative to the entity: `prefix` takes `routes[3]` off), the rest in
 * `slot`. Throws what is not an admin API error.
 */
export function showRefusal(form, slot, err, prefix, verb = "Not saved") {
  if (!(err instanceof ApiError)) throw err;
  const rest = showFieldErrors(form, err.errors, prefix);
  if (rest.length || !err.errors.length) {
    slot.hidden = false;
    slot.textContent = `${verb}: ${(rest.length ? rest : [err.message]).join(" ")}`;
  }
}

/** A button deleting `path` after a confirmation, then going to `back`. */
export function deleteButton(label, what, question, path, back) {
  return h("button.danger", {
    type: "button",
    onclick: async () => {
      if (!confirm(question)) return;
      try {
        await api("DELETE", path);
        toast(`${what} deleted.`);
        location.hash = back;
      } catch (err) {
        toast(`Not deleted: ${err.message}`, "error");
      }
    },
  }, label);
}

/** An enable switch for `entity` (`what`: "Route orders"), saved at once (a merge patch on `path`). */
export function enableSwitch(what, path, entity) {
  const box = h("input", {
    type: "checkbox", role: "switch", checked: entity.enabled !== false, "aria-label": `${what} enabled`,
    onchange: async () => {
      box.disabled = true;
      try {
        const saved = await api("PATCH", path, { enabled: box.checked });
        entity.enabled = saved.enabled;
        toast(`${what} ${entity.enabled ? "enabled" : "disabled"}.`);
      } catch (err) {
        box.checked = entity.enabled !== false;
        toast(`Not changed: ${err.message}`, "error");
      } finally {
        box.disabled = false;
      }
    },
  });
  return box;
}
