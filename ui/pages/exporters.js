// Exporters: where events go (file, webhook, Redis stream), their health,
// and a test event.

import { h, fill, field, heading, table, toast, when, reload } from "../dom.js";
import { api, ApiError } from "../api.js";

export async function render(main) {
  const exporters = await api("GET", "/exporters");
  const statuses = h("div", { "aria-live": "polite" });
  const kind = h("select", {}, ["webhook", "file", "redis-stream"].map((k) => h("option", { value: k }, k)));
  const json = h("textarea.code", { rows: 8, spellcheck: "false" });
  const templates = {
    webhook: { id: "hooks", kind: "webhook", url: "https://example.com/komainu-events", include: ["audit", "alert"] },
    file: { id: "events-file", kind: "file", path: "-" },
    "redis-stream": { id: "stream", kind: "redis-stream", url: "redis://127.0.0.1:6379/0", stream: "komainu:events" },
  };
  const setTemplate = () => { json.value = JSON.stringify(templates[kind.value], null, 2); };
  kind.addEventListener("change", setTemplate);
  setTemplate();
  const formError = h("p.form-error", { role: "alert", hidden: true });
  const form = h("form.editor", {
    onsubmit: async (e) => {
      e.preventDefault();
      formError.hidden = true;
      let body;
      try {
        body = JSON.parse(json.value);
      } catch (err) {
        formError.hidden = false;
        formError.textContent = `The JSON is not valid: ${err.message}`;
        return;
      }
      try {
        await api("POST", "/exporters", body);
        toast(`Exporter ${body.id} created.`);
        reload();
      } catch (err) {
        if (!(err instanceof ApiError)) throw err;
        formError.hidden = false;
        formError.textContent = `Not created: ${err.errors.length ? err.errors.map((x) => `${x.field}: ${x.message}`).join(" ") : err.message}`;
      }
    },
  }, h("h2", {}, "New exporter"), field("Kind", kind), field("Exporter (JSON)", json, { hint: "Fields: see the README's exporter table." }), formError,
  h("div.actions", {}, h("button", { type: "submit" }, "Create exporter")));
  fill(main, heading("Exporters"), statuses, form);
  let stopped = false;
  const tick = async () => {
    if (stopped) return;
    const rows = await Promise.all(exporters.map(async (x) => {
      try {
        return { x, s: await api("GET", `/exporters/${encodeURIComponent(x.id)}/status`) };
      } catch (err) {
        return { x, error: err.message };
      }
    }));
    fill(statuses, table("Exporters", [
      ["Exporter", ({ x }) => `${x.id} (${x.kind})`],
      ["Where", ({ x }) => x.url || x.path || ""],
      ["Queued", ({ s }) => (s ? String(s.queued) : "–")],
      ["Sent", ({ s }) => (s ? String(s.sent) : "–")],
      ["Dropped", ({ s }) => (s ? String(s.dropped) : "–")],
      ["Last error", ({ s, error }) => error || (s && s.lastError ? `${s.lastError}${s.lastErrorAt ? ` (${when(s.lastErrorAt)})` : ""}` : "none")],
      ["", ({ x }) => h("div.row", {},
        h("button.secondary.small", {
          type: "button", "aria-label": `Send a test event through ${x.id}`,
          onclick: async () => {
            try {
              await api("POST", `/exporters/${encodeURIComponent(x.id)}/test`);
              toast(`Test event sent through ${x.id}.`);
              tick();
            } catch (err) {
              toast(`Test not sent: ${err.message}`, "error");
            }
          },
        }, "Send test event"),
        h("button.danger.small", {
          type: "button", "aria-label": `Delete exporter ${x.id}`,
          onclick: async () => {
            if (!confirm(`Delete exporter ${x.id}?`)) return;
            try {
              await api("DELETE", `/exporters/${encodeURIComponent(x.id)}`);
              reload();
            } catch (err) {
              toast(`Not deleted: ${err.message}`, "error");
            }
          },
        }, "Delete"))],
    ], rows, { empty: "No exporter: events stay in the recent-events list and the stream." }));
  };
  await tick();
  const timer = setInterval(tick, 3000);
  return () => { stopped = true; clearInterval(timer); };
}
