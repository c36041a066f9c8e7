// API keys: list, create (the secret shown once, with ready-made curl
// lines), consumption per window (live), enable/disable, expiry, rotate
// with a grace period, and the raw JSON.

import { h, fill, field, heading, table, tabs, toast, copyButton, when, clearFieldErrors } from "../dom.js";
import { api, deleteButton, enableSwitch, showRefusal } from "../api.js";
import { gatewayUrl } from "./tryit.js";

export async function render(main, { args }) {
  if (args[0] === "new") return create(main);
  if (args[0]) return detail(main, args[0]);
  return list(main);
}

function quotaText(q) {
  if (!q) return "unlimited";
  const parts = [];
  if (q.perSecond != null) parts.push(`${q.perSecond}/s`);
  if (q.perDay != null) parts.push(`${q.perDay}/day`);
  if (q.perMonth != null) parts.push(`${q.perMonth}/month`);
  return parts.join(" · ") || "unlimited";
}

async function list(main) {
  const keys = await api("GET", "/apikeys");
  const search = h("input", { type: "search", placeholder: "client id, name, route or group", autocomplete: "off" });
  const body = h("div");
  const draw = () => {
    const q = search.value.trim().toLowerCase();
    const shown = keys.filter((k) => !q || [k.clientId, k.name, ...(k.routes || []), ...(k.groups || [])]
      .some((v) => String(v || "").toLowerCase().includes(q)));
    fill(body, table("API keys", [
      ["Key", (k) => h("a", { href: `#/keys/${encodeURIComponent(k.clientId)}` }, k.name ? `${k.name} (${k.clientId})` : k.clientId)],
      ["May call", (k) => [...(k.routes || []).map((r) => `route ${r}`), ...(k.groups || []).map((g) => `group ${g}`)].join(", ") || "nothing"],
      ["Quotas", (k) => quotaText(k.quotas)],
      ["Expires", (k) => (k.expiresAt ? when(k.expiresAt) : "never")],
      ["Enabled", (k) => keySwitch(k)],
    ], shown, { empty: keys.length ? "No key matches." : "No API key yet: create one." }));
  };
  search.addEventListener("input", draw);
  fill(main, heading("API keys", h("a.button", { href: "#/keys/new" }, "New API key")), h("div.filters", {}, field("Search", search)), body);
  draw();
}

function keySwitch(k) {
  return enableSwitch(`Key ${k.clientId}`, `/apikeys/${encodeURIComponent(k.clientId)}`, k);
}

function numberOrNull(input) {
  const v = input.value.trim();
  return v === "" ? undefined : Number(v);
}

function b64(bytes) {
  let text = "";
  for (const b of new Uint8Array(bytes)) text += String.fromCharCode(b);
  return btoa(text);
}

function b64url(bytes) {
  return b64(bytes).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/**
 * A Bearer JWT for the key (HS256 signed with its secret, `iss` the client
 * id, valid one hour), made in the browser; null where the browser offers
 * no Web Crypto (a page not on https or localhost).
 */
export async function bearerToken(clientId, secret, now = Date.now()) {
  if (!(globalThis.crypto && crypto.subtle)) return null;
  const enc = new TextEncoder();
  const iat = Math.floor(now / 1000);
  const head = b64url(enc.encode(JSON.stringify({ alg: "HS256", typ: "JWT" })));
  const body = b64url(enc.encode(JSON.stringify({ iss: clientId, iat, exp: iat + 3600 })));
  const key = await crypto.subtle.importKey("raw", enc.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const signature = await crypto.subtle.sign("HMAC", key, enc.encode(`${head}.${body}`));
  return `${head}.${body}.${b64url(signature)}`;
}

/** The secret, shown once, with ready-made calls. */
export function secretPanel(clientId, secret, base, path = "/") {
  const url = `${base}${path}`;
  const basic = b64(new TextEncoder().encode(`${clientId}:${secret}`));
  const line = (text) => h("div.row", {}, h("code.line", {}, text), copyButton("Copy", () => text));
  const curl = [
    `curl -H 'Komainu-Client-Id: ${clientId}' -H 'Komainu-Client-Secret: ${secret}' ${url}`,
    `curl -u '${clientId}:${secret}' ${url}`,
    `curl -H 'Authorization: Basic ${basic}' ${url}`,
  ];
  const jwt = h("div", { "aria-live": "polite" });
  bearerToken(clientId, secret).then((token) => {
    fill(jwt, token
      ? [line(`curl -H 'Authorization: Bearer ${token}' ${url}`),
        h("p.hint", {}, "The Bearer JWT is HS256, signed with the secret, iss the client id, valid one hour; make your own the same way.")]
      : h("p.hint", {}, "A Bearer JWT is HS256, signed with the secret, with iss (or sub) the client id and an exp (this page cannot make one: it is not on https)."));
  }).catch(() => {});
  const secretEl = h("code.secret", { id: "new-secret" }, secret);
  return h("section.card.secret-box", { "aria-labelledby": "secret-title" },
    h("h2", { id: "secret-title" }, "The secret, shown this once"),
    h("p", {}, "Copy it now: Komainu keeps only a one-way verifier and cannot show it again."),
    h("div.row", {}, secretEl, copyButton("Copy the secret", () => secret)),
    h("h3", {}, "Calls"),
    curl.map(line),
    jwt);
}

async function create(main) {
  const [routes, groups] = await Promise.all([api("GET", "/routes"), api("GET", "/groups")]);
  const f = {
    clientId: h("input", { required: true, spellcheck: "false", autocomplete: "off" }),
    name: h("input", { autocomplete: "off" }),
    routes: h("select", { multiple: true, size: Math.min(6, Math.max(2, routes.length)) },
      routes.map((r) => h("option", { value: r.id }, r.name ? `${r.name} (${r.id})` : r.id))),
    groups: h("select", { multiple: true, size: Math.min(6, Math.max(2, groups.length)) },
      groups.map((g) => h("option", { value: g.id }, g.name ? `${g.name} (${g.id})` : g.id))),
    perSecond: h("input", { type: "number", min: 0, inputmode: "numeric" }),
    perDay: h("input", { type: "number", min: 0, inputmode: "numeric" }),
    perMonth: h("input", { type: "number", min: 0, inputmode: "numeric" }),
    expiresAt: h("input", { type: "datetime-local" }),
  };
  const result = h("div");
  const formError = h("div.form-error", { role: "alert", hidden: true });
  const form = h("form.editor", {
    novalidate: true,
    onsubmit: async (e) => {
      e.preventDefault();
      formError.hidden = true;
      clearFieldErrors(form);
      const key = {
        clientId: f.clientId.value.trim(),
        name: f.name.value.trim(),
        routes: [...f.routes.selectedOptions].map((o) => o.value),
        groups: [...f.groups.selectedOptions].map((o) => o.value),
        quotas: { perSecond: numberOrNull(f.perSecond), perDay: numberOrNull(f.perDay), perMonth: numberOrNull(f.perMonth) },
      };
      if (f.expiresAt.value) key.expiresAt = new Date(f.expiresAt.value).toISOString().replace(/\.\d+Z$/, "Z");
      try {
        const saved = await api("POST", "/apikeys", key);
        toast(`Key ${saved.clientId} created.`);
        const path = routes.find((r) => r.id === key.routes[0]);
        fill(main, heading(`API key ${saved.clientId}`),
          secretPanel(saved.clientId, saved.clientSecret, await gatewayUrl(), path ? samplePath(path) : "/"),
          h("p", {}, h("a.button", { href: `#/keys/${encodeURIComponent(saved.clientId)}` }, "Open the key"), " ",
            h("a.button.secondary", { href: `#/try?key=${encodeURIComponent(saved.clientId)}` }, "Try it with this key")));
        tryItSecret.set(saved.clientId, saved.clientSecret);
      } catch (err) {
        showRefusal(form, formError, err, /^apikeys\[\d+\]/, "Not created");
      }
    },
  },
  field("Client id", f.clientId, { name: "clientId", hint: "What callers send as their id." }),
  field("Name", f.name, { name: "name" }),
  field("Routes it may call", f.routes, { name: "routes", hint: "Hold Ctrl (or ⌘) to pick several." }),
  field("Groups it may call", f.groups, { name: "groups" }),
  h("fieldset", {}, h("legend", {}, "Quotas (empty: unlimited)"),
    h("div.row3", {},
      field("Per second", f.perSecond, { name: "quotas.perSecond" }),
      field("Per day", f.perDay, { name: "quotas.perDay" }),
      field("Per month", f.perMonth, { name: "quotas.perMonth" }))),
  field("Expires", f.expiresAt, { name: "expiresAt", hint: "Optional; in your local time." }),
  formError,
  h("div.actions", {}, h("button", { type: "submit" }, "Create key"), h("a.button.secondary", { href: "#/keys" }, "Back to API keys")));
  fill(main, heading("New API key"), form, result);
}

/** The key's expiry: shown, changed, or removed (a merge patch). */
function expiryEditor(key) {
  const local = (iso) => {
    if (!iso) return "";
    const d = new Date(iso);
    const pad = (n) => String(n).padStart(2, "0");
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
  };
  const shown = h("span", {}, key.expiresAt ? when(key.expiresAt) : "never");
  const input = h("input", { type: "datetime-local", value: local(key.expiresAt), "aria-label": "Expiry, in your local time" });
  const save = async (value) => {
    try {
      const saved = await api("PATCH", `/apikeys/${encodeURIComponent(key.clientId)}`, { expiresAt: value });
      key.expiresAt = saved.expiresAt;
      shown.textContent = key.expiresAt ? when(key.expiresAt) : "never";
      input.value = local(key.expiresAt);
      toast(key.expiresAt ? `Key ${key.clientId} expires ${when(key.expiresAt)}.` : `Key ${key.clientId} never expires.`);
    } catch (err) {
      toast(`Not changed: ${err.message}`, "error");
    }
  };
  return h("div.row", {}, shown, input,
    h("button.secondary.small", {
      type: "button",
      onclick: () => {
        if (!input.value) return save(null);
        return save(new Date(input.value).toISOString().replace(/\.\d+Z$/, "Z"));
      },
    }, "Set expiry"),
    h("button.secondary.small", { type: "button", onclick: () => save(null) }, "Never expire"));
}

/** The secrets created or rotated in this page's life, for Try it (memory only). */
export const tryItSecret = new Map();

export function samplePath(route) {
  const p = (route.paths || ["/"])[0] || "/";
  return p.replace(/\{\*[^}]*\}/g, "").replace(/\{[^}]*\}/g, "x").replace(/\/+$/, "") || "/";
}

async function detail(main, id) {
  const key = await api("GET", `/apikeys/${encodeURIComponent(id)}`);
  const usage = h("div", { "aria-live": "polite" });
  const rotateGrace = h("input", { type: "number", min: 0, max: 2592000, value: (key.rotation && key.rotation.graceSeconds) || 3600 });
  const rotated = h("div");
  const json = h("textarea.code", { rows: 18, spellcheck: "false" }, JSON.stringify(key, null, 2));
  const jsonError = h("div.form-error", { role: "alert", hidden: true });
  const overview = h("div", {},
    h("dl.facts", {},
      h("dt", {}, "Client id"), h("dd", {}, key.clientId),
      h("dt", {}, "Name"), h("dd", {}, key.name || "–"),
      h("dt", {}, "Enabled"), h("dd", {}, keySwitch(key)),
      h("dt", {}, "May call"), h("dd", {}, [...(key.routes || []).map((r) => `route ${r}`), ...(key.groups || []).map((g) => `group ${g}`)].join(", ") || "nothing"),
      h("dt", {}, "Quotas"), h("dd", {}, quotaText(key.quotas)),
      h("dt", {}, "Expires"), h("dd", {}, expiryEditor(key)),
      key.rotation && key.rotation.previousExpiresAt
        ? [h("dt", {}, "Previous secret valid until"), h("dd", {}, when(key.rotation.previousExpiresAt))] : null),
    h("section", {}, h("h2", {}, "Consumption"), usage,
      h("button.secondary", {
        type: "button",
        onclick: async () => {
          if (!confirm(`Start ${key.clientId}'s consumption over in every window?`)) return;
          try {
            await api("DELETE", `/apikeys/${encodeURIComponent(key.clientId)}/quotas`);
            toast("Consumption reset.");
            tick();
          } catch (err) {
            toast(`Not reset: ${err.message}`, "error");
          }
        },
      }, "Reset consumption")),
    h("section", {},
      h("h2", {}, "Rotate the secret"),
      h("form.inline", {
        onsubmit: async (e) => {
          e.preventDefault();
          if (!confirm(`Give ${key.clientId} a new secret? The current one keeps working for the grace period.`)) return;
          try {
            const r = await api("POST", `/apikeys/${encodeURIComponent(key.clientId)}/rotate`, { graceSeconds: Number(rotateGrace.value || 0) });
            tryItSecret.set(key.clientId, r.clientSecret);
            fill(rotated, secretPanel(key.clientId, r.clientSecret, await gatewayUrl(), "/"),
              h("p", {}, r.previousSecretExpiresAt ? `The previous secret works until ${when(r.previousSecretExpiresAt)}.` : "The previous secret no longer works."));
            toast("New secret made.");
          } catch (err) {
            toast(`Not rotated: ${err.message}`, "error");
          }
        },
      }, field("Grace period (seconds)", rotateGrace, { hint: "How long the current secret keeps working." }), h("button", { type: "submit" }, "Rotate")),
      rotated));
  const jsonPanel = h("form", {
    onsubmit: async (e) => {
      e.preventDefault();
      jsonError.hidden = true;
      let body;
      try {
        body = JSON.parse(json.value);
      } catch (err) {
        jsonError.hidden = false;
        jsonError.textContent = `The JSON is not valid: ${err.message}`;
        return;
      }
      try {
        const saved = await api("PUT", `/apikeys/${encodeURIComponent(key.clientId)}`, body);
        json.value = JSON.stringify(saved, null, 2);
        toast(`Key ${key.clientId} saved: live now.`);
      } catch (err) {
        jsonError.hidden = false;
        jsonError.textContent = err.errors && err.errors.length
          ? err.errors.map((x) => `${x.field}: ${x.message}`).join("\n") : err.message;
      }
    },
  }, h("p.hint", {}, "Every field of the key but its secret, which is never shown (a replacement without one keeps it)."),
  field("The key as JSON", json), jsonError, h("div.actions", {}, h("button", { type: "submit" }, "Save JSON")));
  const t = tabs("API key", [["Key", overview], ["JSON", jsonPanel]]);
  fill(main,
    heading(`API key ${key.name ? `${key.name} (${key.clientId})` : key.clientId}`,
      h("a.button.secondary", { href: `#/try?key=${encodeURIComponent(key.clientId)}` }, "Try it with this key")),
    t.list, overview, jsonPanel,
    h("div.actions", {},
      deleteButton("Delete key", `Key ${key.clientId}`, `Delete key ${key.clientId}? Its calls are refused at once.`,
        `/apikeys/${encodeURIComponent(key.clientId)}`, "#/keys"),
      h("a.button.secondary", { href: "#/keys" }, "Back to API keys")));
  let stopped = false;
  const tick = async () => {
    if (stopped) return;
    try {
      const q = await api("GET", `/apikeys/${encodeURIComponent(key.clientId)}/quotas`);
      fill(usage, table("Consumption per window", [
        ["Window", (w) => w.window],
        ["Used", (w) => h("span.usage", { dataset: { window: w.window } }, String(w.used))],
        ["Remaining", (w) => String(w.remaining)],
        ["Limit", (w) => String(w.limit)],
        ["Resets", (w) => when(w.resetsAt)],
        ["", (w) => h("meter", { min: 0, max: w.limit, value: w.used, "aria-label": `${w.window} window used` })],
      ], q.windows, { empty: "This key has no quota: its calls are not counted." }));
    } catch (err) {
      fill(usage, h("p.form-error", {}, `Consumption could not be read: ${err.message}`));
    }
  };
  await tick();
  const timer = setInterval(tick, 2000);
  return () => { stopped = true; clearInterval(timer); };
}
