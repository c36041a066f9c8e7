// Events: the live tail (Server-Sent Events natively; the recent events,
// read again every 2 s, where the stream is not offered), with filters;
// the audit log with what each change did; the alerts.

import { h, fill, field, heading, table, tabs, when } from "../dom.js";
import { api } from "../api.js";

const KEEP = 200;

function short(type) {
  return type.replace(/^io\.komainu\./, "").replace(/\.v1$/, "");
}

function summary(e) {
  const d = e.data || {};
  if (e.type === "io.komainu.request.v1") {
    const who = d.identity ? (d.identity.clientId || d.identity.email || d.identity.subject || d.identity.type) : "";
    return `${d.method || ""} ${d.host || ""}${d.path || ""} → ${d.status}${d.error ? ` ${d.error}` : ""} · ${who} · ${d.durations ? d.durations.totalMs : "?"} ms`;
  }
  if (e.type.startsWith("io.komainu.audit.")) return `${d.actor} ${d.action}${d.target ? ` ${d.target}` : ""} → revision ${d.revision}`;
  if (e.type.startsWith("io.komainu.alert.")) return `${d.severity || ""}: ${d.message || ""}`;
  return JSON.stringify(d);
}

/** The fields a change touched: [path, before, after]. */
export function changes(before, after, path = "") {
  const out = [];
  const isObj = (v) => v && typeof v === "object" && !Array.isArray(v);
  // A creation or a deletion: every field, against nothing.
  if (isObj(after) && (before === null || before === undefined)) before = {};
  if (isObj(before) && (after === null || after === undefined)) after = {};
  if (isObj(before) && isObj(after)) {
    for (const k of new Set([...Object.keys(before), ...Object.keys(after)])) {
      out.push(...changes(before[k], after[k], path ? `${path}.${k}` : k));
    }
    return out;
  }
  if (JSON.stringify(before) !== JSON.stringify(after)) out.push([path || "(whole)", before, after]);
  return out;
}

function diffView(d) {
  const rows = changes(d.before ?? null, d.after ?? null);
  if (!rows.length) return h("span.muted", {}, "no field changed");
  const show = (v) => (v === undefined || v === null ? "–" : typeof v === "string" ? v : JSON.stringify(v));
  return h("table.diff", {},
    h("caption.visually-hidden", {}, "What the change did"),
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Field"), h("th", { scope: "col" }, "Before"), h("th", { scope: "col" }, "After"))),
    h("tbody", {}, rows.map(([p, b, a]) => h("tr", {}, h("td", {}, p), h("td.before", {}, show(b)), h("td.after", {}, show(a))))));
}

export async function render(main) {
  const type = h("select", {},
    h("option", { value: "" }, "Every type"),
    h("option", { value: "request" }, "Requests"),
    h("option", { value: "audit" }, "Changes (audit)"),
    h("option", { value: "alert" }, "Alerts"));
  const route = h("input", { spellcheck: "false", placeholder: "route id" });
  const key = h("input", { spellcheck: "false", placeholder: "client id" });
  const status = h("p.muted", { "aria-live": "polite" });
  const tail = h("ol.tail", { "aria-label": "Live events, newest first" });
  const audit = h("div");
  const alerts = h("div");
  const live = h("div", {}, h("form.filters", { onsubmit: (e) => { e.preventDefault(); restart(); } },
    field("Type", type), field("Route", route), field("Key", key), h("button", { type: "submit" }, "Apply")), status, tail);
  const t = tabs("Events", [["Live", live], ["Changes", audit], ["Alerts", alerts]]);
  fill(main, heading("Events"), t.list, live, audit, alerts);

  const seen = new Set();
  const add = (e) => {
    if (seen.has(e.id)) return;
    seen.add(e.id);
    const item = h("li", { dataset: { type: short(e.type) } },
      h("time", { datetime: e.time }, when(e.time)), " ",
      h("span.kind", {}, short(e.type)), " ",
      h("span", {}, summary(e)),
      h("details", {}, h("summary", {}, "Event"), h("pre.code", {}, JSON.stringify(e, null, 2))));
    tail.prepend(item);
    while (tail.children.length > KEEP) tail.lastElementChild.remove();
  };
  const query = () => {
    const q = new URLSearchParams();
    if (type.value) q.set("type", type.value);
    if (route.value.trim()) q.set("route", route.value.trim());
    if (key.value.trim()) q.set("key", key.value.trim());
    return q.toString();
  };
  let reader = null;
  let timer = null;
  let stopped = false;
  const poll = async () => {
    try {
      const q = query();
      const { events } = await api("GET", `/events?limit=100${q ? `&${q}` : ""}`);
      for (const e of events) add(e);
    } catch (err) {
      status.textContent = `Events could not be read: ${err.message}`;
    }
  };
  // The stream, read with fetch (every event type arrives, whatever its
  // name; a reconnection resumes after the last id seen).
  let lastId = null;
  let generation = 0;
  const follow = async (q, gen) => {
    const current = () => !stopped && gen === generation;
    while (current()) {
      let response;
      try {
        response = await api("GET", `/events/stream${q ? `?${q}` : ""}`, undefined, {
          raw: true,
          headers: { Accept: "text/event-stream", ...(lastId ? { "Last-Event-ID": lastId } : {}) },
        });
      } catch {
        response = null;
      }
      if (!response || !response.ok) {
        if (response && response.body) response.body.cancel();
        return false;
      }
      status.textContent = "Live: new events appear at the top.";
      reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      try {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value;
          let end;
          while ((end = buffer.indexOf("\n\n")) >= 0) {
            const block = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            const data = block.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trimStart()).join("\n");
            const id = block.split("\n").find((l) => l.startsWith("id:"));
            if (id) lastId = id.slice(3).trim();
            if (data) { try { add(JSON.parse(data)); } catch { /* a comment */ } }
          }
        }
      } catch {
        /* interrupted: reconnect */
      }
      if (!current()) return true;
      status.textContent = "The stream was interrupted; reconnecting…";
      await new Promise((r) => setTimeout(r, 2000));
    }
    return true;
  };
  const restart = async () => {
    if (reader) reader.cancel().catch(() => {});
    clearInterval(timer);
    seen.clear();
    lastId = null;
    tail.replaceChildren();
    const q = query();
    const gen = ++generation;
    await poll();
    follow(q, gen).then((offered) => {
      if (offered || stopped || gen !== generation) return;
      status.textContent = "This deployment offers no live stream: the recent events are read again every 2 s.";
      timer = setInterval(poll, 2000);
    });
  };
  const loadAudit = async () => {
    const list = await api("GET", "/events?type=audit&limit=100").then((r) => r.events).catch(() => []);
    fill(audit, table("Changes", [
      ["Time", (e) => when(e.time)],
      ["Who", (e) => e.data.actor],
      ["What", (e) => `${e.data.action}${e.data.target ? ` ${e.data.target}` : ""}`],
      ["Revision", (e) => String(e.data.revision)],
      ["Change", (e) => diffView(e.data)],
    ], list.slice().reverse(), { empty: "No change recorded." }));
    const al = await api("GET", "/events?type=alert&limit=100").then((r) => r.events).catch(() => []);
    fill(alerts, table("Alerts", [
      ["Time", (e) => when(e.time)],
      ["Alert", (e) => short(e.type).replace("alert.", "")],
      ["Severity", (e) => e.data.severity || ""],
      ["What happened", (e) => e.data.message || ""],
    ], al.slice().reverse(), { empty: "No alert." }));
  };
  t.list.addEventListener("tabchange", (e) => { if (e.detail > 0) loadAudit(); });
  await restart();
  return () => {
    stopped = true;
    if (reader) reader.cancel().catch(() => {});
    clearInterval(timer);
  };
}
