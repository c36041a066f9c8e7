// Import / export: the whole configuration as one document. An import is
// shown as its difference with what runs (a dry run) before it is applied,
// all or nothing. An Otoroshi export is imported too: mapped by the
// gateway, with its report of what was mapped, approximated or dropped.

import { h, fill, field, heading, table, toast } from "../dom.js";
import { api, ApiError } from "../api.js";

export async function render(main) {
  const file = h("input", { type: "file", accept: "application/json,.json" });
  const text = h("textarea.code", { rows: 10, spellcheck: "false", placeholder: "{ \"format\": 1, \"routes\": [...] }" });
  const merge = h("input", { type: "checkbox" });
  const source = h("select", {},
    h("option", { value: "komainu" }, "A Komainu configuration document"),
    h("option", { value: "otoroshi" }, "An Otoroshi export (otoroshi.json)"));
  const sharedKey = h("input", { type: "password", autocomplete: "off", placeholder: "app.claim.sharedKey (CLAIM_SHAREDKEY)" });
  const sharedKeyField = field("Otoroshi's shared key (signs Otoroshi-Claim and the state challenge)", sharedKey);
  sharedKeyField.hidden = true;
  source.addEventListener("change", () => {
    sharedKeyField.hidden = source.value !== "otoroshi";
  });
  const preview = h("section", { "aria-live": "polite", "aria-label": "What the import changes" });
  const error = h("p.form-error", { role: "alert", hidden: true });
  file.addEventListener("change", async () => {
    if (file.files[0]) text.value = await file.files[0].text();
  });
  const query = (dry) => `/import?merge=${merge.checked}${dry ? "&dryRun=true" : ""}${source.value === "otoroshi" ? "&from=otoroshi" : ""}`;
  const headers = () => (source.value === "otoroshi" && sharedKey.value
    ? { "Komainu-Otoroshi-Shared-Key": sharedKey.value }
    : {});
  const form = h("form.editor", {
    onsubmit: async (e) => {
      e.preventDefault();
      error.hidden = true;
      fill(preview);
      try {
        const dry = await api("POST", query(true), text.value, { headers: headers() });
        const rows = dry.changes || [];
        fill(preview,
          dry.report ? reportOf(dry.report) : "",
          h("h2", {}, "What the import changes"),
          table("Changes", [
            ["Change", (c) => ({ added: "created", changed: "changed", removed: "removed" })[c.op] || c.op],
            ["Entity", (c) => `${c.kind} ${c.id}`.trim()],
            ["Fields", (c) => (c.fields || []).join(", ")],
          ], rows, { empty: "Nothing: the document is what runs now." }),
          h("div.actions", {},
            h("button", {
              type: "button",
              onclick: async () => {
                try {
                  const done = await api("POST", query(false), text.value, { headers: headers() });
                  toast(`Imported: revision ${done.revision} is live.`);
                  fill(preview, h("p", {}, `Imported: revision ${done.revision}, ${done.routes} routes, ${done.apikeys} keys, ${done.groups} groups.`));
                } catch (err) {
                  showError(err);
                }
              },
            }, `Apply ${rows.length} change${rows.length === 1 ? "" : "s"}`)));
      } catch (err) {
        showError(err);
      }
    },
  },
  field("What the file is", source),
  sharedKeyField,
  field("A document file", file),
  field("Or paste it", text),
  h("div.checks", {}, field("Merge (keep what the document does not name)", merge)),
  error,
  h("div.actions", {}, h("button", { type: "submit" }, "Show the difference")));
  function reportOf(report) {
    const s = report.summary;
    const status = { mapped: "mapped", approximated: "approximated", dropped: "dropped", error: "error" };
    return h("section", { "aria-label": "What became of the export" },
      h("h2", {}, "What became of the Otoroshi export"),
      h("p", {}, `${s.mapped} mapped, ${s.approximated} approximated, ${s.dropped} dropped, ${s.errors} in error.`),
      table("The export's entities", [
        ["Status", (e) => h(`span.badge.${e.status}`, {}, status[e.status] || e.status)],
        ["Entity", (e) => `${e.kind} ${e.name || e.id}`],
        ["Became", (e) => (e.became || []).join(", ")],
        ["Notes", (e) => (e.notes || []).length ? h("ul", {}, e.notes.map((n) => h("li", {}, n))) : ""],
      ], report.entities));
  }
  function showError(err) {
    error.hidden = false;
    error.textContent = err instanceof ApiError && err.errors.length
      ? `Refused, nothing changed: ${err.errors.map((x) => `${x.field}: ${x.message}`).join("; ")}`
      : `Refused, nothing changed: ${err.message}`;
  }
  const download = h("button", {
    type: "button",
    onclick: async () => {
      const doc = await api("GET", "/export");
      const blob = new Blob([JSON.stringify(doc, null, 2)], { type: "application/json" });
      const a = h("a", { href: URL.createObjectURL(blob), download: `komainu-revision-${doc.revision}.json` });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(a.href), 1000);
    },
  }, "Download the configuration");
  fill(main,
    heading("Import / export"),
    h("section", {}, h("h2", {}, "Export"), h("p", {}, "The whole configuration: secrets only as verifiers, never usable to call as a key."), download),
    h("section", {}, h("h2", {}, "Import"), form, preview));
}
