// Routes: a searchable list with an enable switch, and an editor (a form
// for the common fields, the raw JSON for everything; what the form does
// not know is kept as it is).

import { h, fill, field, heading, table, tabs, lines, toast, showFieldErrors, clearFieldErrors } from "../dom.js";
import { api, ApiError, deleteButton, enableSwitch } from "../api.js";

export async function render(main, { args }) {
  if (args[0] === "new") return editor(main, null);
  if (args[0]) return editor(main, await api("GET", `/routes/${encodeURIComponent(args[0])}`));
  return list(main);
}

function describeTargets(route) {
  if (route.redirect) return `redirect → ${route.redirect.to}`;
  if (route.respond) return `answers ${route.respond.status || 200}`;
  return ((route.backend && route.backend.targets) || []).map((t) => t.url).join(", ");
}

async function list(main) {
  const routes = await api("GET", "/routes");
  const search = h("input", { type: "search", placeholder: "id, name, host or path", autocomplete: "off" });
  const only = h("select", {},
    h("option", { value: "" }, "All"),
    h("option", { value: "enabled" }, "Enabled"),
    h("option", { value: "disabled" }, "Disabled"),
    h("option", { value: "public" }, "Public"));
  const body = h("div");
  const draw = () => {
    const q = search.value.trim().toLowerCase();
    const shown = routes.filter((r) => {
      if (only.value === "enabled" && !r.enabled) return false;
      if (only.value === "disabled" && r.enabled) return false;
      if (only.value === "public" && !r.public) return false;
      if (!q) return true;
      return [r.id, r.name, ...(r.hosts || []), ...(r.paths || [])].some((v) => String(v || "").toLowerCase().includes(q));
    });
    fill(body, table("Routes", [
      ["Route", (r) => h("a", { href: `#/routes/${encodeURIComponent(r.id)}` }, r.name ? `${r.name} (${r.id})` : r.id)],
      ["Paths", (r) => (r.paths || []).join(" ")],
      ["Hosts", (r) => (r.hosts || []).join(" ") || "any"],
      ["Access", (r) => (r.public ? "public" : "API key")],
      ["Backend", (r) => describeTargets(r)],
      ["Enabled", (r) => enableSwitch(`Route ${r.id}`, `/routes/${encodeURIComponent(r.id)}`, r)],
    ], shown, { empty: routes.length ? "No route matches." : "No route yet: create one." }));
  };
  search.addEventListener("input", draw);
  only.addEventListener("change", draw);
  fill(main,
    heading("Routes", h("a.button", { href: "#/routes/new" }, "New route")),
    h("div.filters", {}, field("Search", search), field("Show", only)),
    body);
  draw();
}

/** "url weight" lines ⇄ targets. */
function targetsText(route) {
  return ((route.backend && route.backend.targets) || [])
    .map((t) => (t.weight && t.weight !== 1 ? `${t.url} ${t.weight}` : t.url)).join("\n");
}

function parseTargets(text, previous) {
  return lines(text.replace(/,/g, "\n")).map((line) => {
    const [url, weight] = line.split(/\s+/);
    const old = previous.find((t) => t.url === url) || {};
    const t = { ...old, url };
    if (weight !== undefined) t.weight = Number(weight);
    else delete t.weight;
    return t;
  });
}

function editor(main, original) {
  const isNew = !original;
  let current = structuredClone(original || {
    id: "", name: "", enabled: true, hosts: [], paths: ["/"], methods: [], public: false, groups: [],
    backend: { targets: [{ url: "http://127.0.0.1:8000" }] },
  });
  const f = {
    id: h("input", { value: current.id, required: true, readonly: !isNew, spellcheck: "false" }),
    name: h("input", { value: current.name || "" }),
    paths: h("textarea", { rows: 3, spellcheck: "false" }, (current.paths || []).join("\n")),
    hosts: h("textarea", { rows: 2, spellcheck: "false" }, (current.hosts || []).join("\n")),
    methods: h("input", { value: (current.methods || []).join(", "), spellcheck: "false" }),
    targets: h("textarea", { rows: 3, spellcheck: "false" }, targetsText(current)),
    groups: h("input", { value: (current.groups || []).join(", "), spellcheck: "false" }),
    public: h("input", { type: "checkbox", checked: current.public }),
    enabled: h("input", { type: "checkbox", checked: current.enabled !== false }),
    maintenance: h("input", { type: "checkbox", checked: current.maintenance }),
  };
  const fromForm = () => {
    const next = structuredClone(current);
    next.id = f.id.value.trim();
    next.name = f.name.value.trim();
    next.paths = lines(f.paths.value);
    next.hosts = lines(f.hosts.value);
    next.methods = lines(f.methods.value).map((m) => m.toUpperCase());
    next.groups = lines(f.groups.value);
    next.public = f.public.checked;
    next.enabled = f.enabled.checked;
    if (f.maintenance.checked) next.maintenance = true;
    else delete next.maintenance;
    if (!next.redirect && !next.respond) {
      next.backend = { ...(next.backend || {}), targets: parseTargets(f.targets.value, (current.backend && current.backend.targets) || []) };
    }
    return next;
  };
  const toForm = (route) => {
    f.id.value = route.id || "";
    f.name.value = route.name || "";
    f.paths.value = (route.paths || []).join("\n");
    f.hosts.value = (route.hosts || []).join("\n");
    f.methods.value = (route.methods || []).join(", ");
    f.targets.value = targetsText(route);
    f.groups.value = (route.groups || []).join(", ");
    f.public.checked = Boolean(route.public);
    f.enabled.checked = route.enabled !== false;
    f.maintenance.checked = Boolean(route.maintenance);
  };
  const json = h("textarea.code", { rows: 22, spellcheck: "false", "aria-label": "The route as JSON" });
  const jsonErrors = h("div.form-error", { role: "alert", hidden: true });
  const formPanel = h("div", {},
    field("Id", f.id, { name: "id", hint: isNew ? "Letters, digits, - and _; used in URLs and by keys." : "An id does not change." }),
    field("Name", f.name, { name: "name" }),
    field("Paths", f.paths, { name: "paths", hint: "One per line: /orders, /orders/{*rest}" }),
    field("Hosts", f.hosts, { name: "hosts", hint: "One per line; none: any host. *.example.com matches subdomains." }),
    field("Methods", f.methods, { name: "methods", hint: "Comma separated; none: every method." }),
    (current.redirect || current.respond)
      ? h("p.muted", {}, "This route answers by itself (redirect or static response): edit it in the JSON tab.")
      : field("Backend targets", f.targets, { name: "backend", hint: "One URL per line, optionally followed by a weight." }),
    field("Groups", f.groups, { name: "groups", hint: "Comma separated group ids." }),
    h("div.checks", {},
      field("Public (no API key needed)", f.public, { name: "public" }),
      field("Enabled", f.enabled, { name: "enabled" }),
      field("Maintenance (answers 503)", f.maintenance, { name: "maintenance" })));
  const jsonPanel = h("div", {}, h("p.hint", {}, "Every field of the route, including those the form does not show."), jsonErrors, field("JSON", json, { name: "" }));
  const t = tabs("Route editor", [["Form", formPanel], ["JSON", jsonPanel]]);
  let onJson = false;
  t.list.addEventListener("tabchange", (e) => {
    if (e.detail === 1) {
      current = fromForm();
      json.value = JSON.stringify(current, null, 2);
      onJson = true;
    } else if (onJson) {
      try {
        current = JSON.parse(json.value);
        toForm(current);
        onJson = false;
        jsonErrors.hidden = true;
      } catch (err) {
        jsonErrors.hidden = false;
        jsonErrors.textContent = `The JSON is not valid (${err.message}): fix it before going back to the form.`;
        t.select(1);
      }
    }
  });
  const formError = h("div.form-error", { role: "alert", hidden: true });
  const form = h("form.editor", {
    novalidate: true,
    onsubmit: async (e) => {
      e.preventDefault();
      formError.hidden = true;
      jsonErrors.hidden = true;
      clearFieldErrors(form);
      let route;
      try {
        route = onJson ? JSON.parse(json.value) : fromForm();
      } catch (err) {
        jsonErrors.hidden = false;
        jsonErrors.textContent = `The JSON is not valid: ${err.message}`;
        return;
      }
      try {
        const saved = isNew
          ? await api("POST", "/routes", route)
          : await api("PUT", `/routes/${encodeURIComponent(original.id)}`, route);
        toast(`Route ${saved.id} saved: live now.`);
        location.hash = `#/routes/${encodeURIComponent(saved.id)}`;
        if (!isNew) { current = saved; toForm(saved); json.value = JSON.stringify(saved, null, 2); }
      } catch (err) {
        if (!(err instanceof ApiError)) throw err;
        const rest = showFieldErrors(form, err.errors, /^routes\[\d+\]/);
        const messages = rest.length ? rest : (err.errors.length ? [] : [err.message]);
        if (onJson && err.errors.length) {
          jsonErrors.hidden = false;
          jsonErrors.textContent = err.errors.map((x) => `${x.field}: ${x.message}`).join("\n");
        }
        if (messages.length) {
          formError.hidden = false;
          formError.textContent = `Not saved: ${messages.join(" ")}`;
        }
      }
    },
  },
  t.list, formPanel, jsonPanel, formError,
  h("div.actions", {},
    h("button", { type: "submit" }, isNew ? "Create route" : "Save"),
    isNew ? null : deleteButton("Delete", `Route ${original.id}`, `Delete route ${original.id}? Calls to it will find no route.`,
      `/routes/${encodeURIComponent(original.id)}`, "#/routes"),
    h("a.button.secondary", { href: "#/routes" }, "Back to routes")));
  fill(main, heading(isNew ? "New route" : `Route ${original.id}`), form,
    isNew ? null : healthSection(original.id));
}

/** The health of a route's targets, as the answering instance sees it. */
function healthSection(id) {
  const box = h("div", { "aria-live": "polite" }, h("p.muted", {}, "Loading…"));
  api("GET", `/routes/${encodeURIComponent(id)}/health`).then((health) => {
    const state = (t) => t.status === "up" ? "up" : `down${t.breaker !== "closed" ? ` (circuit ${t.breaker === "halfOpen" ? "half-open" : "open"})` : ""}`;
    const why = (t) => t.openedBecause || (t.check && t.check.lastError) || "";
    box.replaceChildren(
      h("p", {}, `Route: ${health.status}`,
        health.circuitBreaker ? " · circuit breaker on" : "",
        health.healthCheck ? " · health checks on" : ""),
      table(`Targets of route ${id}`, [
        ["Target", (t) => t.url + (t.backup ? " (backup)" : "")],
        ["State", state],
        ["Failures in a row", (t) => String(t.consecutiveFailures)],
        ["Last check", (t) => t.check ? `${t.check.lastStatus || "no answer"} at ${new Date(t.check.lastAt).toLocaleTimeString()}` : "—"],
        ["Why", why],
      ], health.targets, { empty: "This route has no targets." }));
  }, (err) => {
    box.replaceChildren(h("p.muted", {}, err instanceof ApiError ? err.message : String(err)));
  });
  return h("section.card", { "aria-labelledby": "health-title" },
    h("h2", { id: "health-title" }, "Target health"), box);
}
