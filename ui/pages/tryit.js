// Try it: a call through the gateway, as a client would make it, with the
// answer, the headers the gateway added and the timings. Natively the
// admin API makes the call to its own proxy listener (the page and the
// proxy are on different ports); on the Worker the page is on the
// gateway's own origin and calls it directly.

import { h, fill, field, heading, lines, toast } from "../dom.js";
import { api, ApiError } from "../api.js";
import { tryItSecret, samplePath } from "./keys.js";

let health = null;

/** The gateway's public URL, as this browser reaches it. */
export async function gatewayUrl() {
  health = health || (await api("GET", "/health"));
  if (health.proxyPort) return `${location.protocol}//${location.hostname}:${health.proxyPort}`;
  return location.origin;
}

/** Response headers a gateway sets (the rest come from the backend). */
function addedByGateway(name) {
  return /^(komainu-|x-ratelimit|retry-after|traceparent)/i.test(name);
}

export async function render(main) {
  const params = new URLSearchParams(location.hash.split("?")[1] || "");
  const [routes, keys, base] = await Promise.all([api("GET", "/routes"), api("GET", "/apikeys"), gatewayUrl()]);
  const f = {
    route: h("select", {}, routes.map((r) => h("option", { value: r.id }, r.name ? `${r.name} (${r.id})` : r.id))),
    key: h("select", {}, h("option", { value: "" }, "No key (public route)"), keys.map((k) => h("option", { value: k.clientId }, k.name ? `${k.name} (${k.clientId})` : k.clientId))),
    secret: h("input", { type: "password", autocomplete: "off", spellcheck: "false" }),
    method: h("select", {}, ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"].map((m) => h("option", { value: m }, m))),
    path: h("input", { value: "/", spellcheck: "false" }),
    headers: h("textarea", { rows: 3, spellcheck: "false", placeholder: "Accept: application/json" }),
    body: h("textarea", { rows: 4, spellcheck: "false" }),
  };
  const pickRoute = () => {
    const r = routes.find((x) => x.id === f.route.value);
    if (r) f.path.value = samplePath(r);
  };
  const pickKey = () => { f.secret.value = tryItSecret.get(f.key.value) || ""; };
  f.route.addEventListener("change", pickRoute);
  f.key.addEventListener("change", pickKey);
  if (params.get("key")) {
    f.key.value = params.get("key");
    const k = keys.find((x) => x.clientId === params.get("key"));
    const r = k && routes.find((x) => (k.routes || []).includes(x.id));
    if (r) f.route.value = r.id;
  }
  pickRoute();
  pickKey();
  const result = h("section", { "aria-live": "polite", "aria-label": "The answer" });
  const formError = h("p.form-error", { role: "alert", hidden: true });
  const form = h("form.editor", {
    onsubmit: async (e) => {
      e.preventDefault();
      formError.hidden = true;
      const headers = [];
      for (const line of lines(f.headers.value.replace(/,/g, "\u0000")).map((l) => l.replace(/\u0000/g, ","))) {
        const i = line.indexOf(":");
        if (i <= 0) {
          formError.hidden = false;
          formError.textContent = `"${line}" is not a header: write Name: value.`;
          f.headers.focus();
          return;
        }
        headers.push([line.slice(0, i).trim(), line.slice(i + 1).trim()]);
      }
      if (f.key.value) {
        if (!f.secret.value) {
          formError.hidden = false;
          formError.textContent = "Give the key's secret (Komainu keeps only its verifier): it is sent with this call only.";
          f.secret.focus();
          return;
        }
        headers.push(["Komainu-Client-Id", f.key.value], ["Komainu-Client-Secret", f.secret.value]);
      }
      const call = { method: f.method.value, path: f.path.value || "/", headers, body: f.body.value };
      fill(result, h("p.muted", {}, "Calling…"));
      try {
        const answer = await send(call, base);
        show(result, call, answer);
      } catch (err) {
        fill(result, h("p.form-error", { role: "alert" }, err instanceof ApiError && err.errors.length
          ? err.errors.map((x) => `${x.field}: ${x.message}`).join(" ") : `The call could not be made: ${err.message}`));
      }
    },
  },
  h("div.row2", {}, field("Route", f.route), field("Method", f.method)),
  field("Path", f.path, { hint: `Sent to ${base}` }),
  h("div.row2", {}, field("API key", f.key), field("Its secret", f.secret, { hint: "Filled in when the key was created or rotated in this page; kept only in memory." })),
  field("Headers", f.headers, { hint: "One per line: Name: value" }),
  field("Body", f.body),
  formError,
  h("div.actions", {}, h("button", { type: "submit" }, "Send")));
  fill(main, heading("Try it"), form, result);
}

async function send(call, base) {
  if (health && health.deployment === "worker") {
    // Same origin: the browser calls the gateway itself.
    const started = performance.now();
    const response = await fetch(base + call.path, {
      method: call.method,
      headers: call.headers,
      body: ["GET", "HEAD"].includes(call.method) || !call.body ? undefined : call.body,
      credentials: "omit",
      cache: "no-store",
    });
    const body = call.method === "HEAD" ? "" : await response.text();
    return {
      status: response.status,
      headers: [...response.headers.entries()],
      body,
      timings: { totalMs: performance.now() - started },
    };
  }
  return api("POST", "/try", call);
}

function show(result, call, answer) {
  const added = answer.headers.filter(([n]) => addedByGateway(n));
  const other = answer.headers.filter(([n]) => !addedByGateway(n));
  const list = (pairs) => h("dl.headers", {}, pairs.map(([n, v]) => [h("dt", {}, n), h("dd", {}, v)]));
  const t = answer.timings || {};
  fill(result,
    h("h2", {}, `${answer.status} `, h("span.muted", {}, `${call.method} ${call.path}`)),
    h("p", {}, `Total ${Number(t.totalMs || 0).toFixed(1)} ms`,
      t.upstreamMs != null ? ` · backend ${Number(t.upstreamMs).toFixed(1)} ms` : "",
      t.proxyMs != null ? ` · gateway ${Number(t.proxyMs).toFixed(2)} ms` : ""),
    h("h3", {}, "Headers the gateway added"), added.length ? list(added) : h("p.muted", {}, "None."),
    h("h3", {}, "Other headers"), list(other),
    h("h3", {}, "Body"), h("pre.code", { tabindex: "0" }, answer.body || "(empty)"),
    answer.truncated ? h("p.hint", {}, "The body is cut at 64 KiB.") : null);
  toast(`Answered ${answer.status}.`);
}
