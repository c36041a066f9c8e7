// Groups: routes and keys gathered under one name (a key allowed a group
// may call its routes).

import { h, fill, field, heading, table, toast, reload, clearFieldErrors } from "../dom.js";
import { api, showRefusal } from "../api.js";

export async function render(main, { args }) {
  const [groups, routes, keys] = await Promise.all([api("GET", "/groups"), api("GET", "/routes"), api("GET", "/apikeys")]);
  const editing = args[0] && args[0] !== "new" ? groups.find((g) => g.id === args[0]) : null;
  const f = {
    id: h("input", { value: editing ? editing.id : "", readonly: Boolean(editing), spellcheck: "false" }),
    name: h("input", { value: editing ? editing.name || "" : "" }),
    description: h("textarea", { rows: 2 }, editing ? editing.description || "" : ""),
  };
  const formError = h("p.form-error", { role: "alert", hidden: true });
  const form = h("form.editor", {
    novalidate: true,
    onsubmit: async (e) => {
      e.preventDefault();
      formError.hidden = true;
      clearFieldErrors(form);
      const group = { ...(editing || {}), id: f.id.value.trim(), name: f.name.value.trim() };
      if (f.description.value.trim() || (editing && "description" in editing)) group.description = f.description.value.trim();
      try {
        if (editing) await api("PUT", `/groups/${encodeURIComponent(editing.id)}`, group);
        else await api("POST", "/groups", group);
        toast(`Group ${group.id} saved.`);
        if (location.hash === "#/groups") reload();
        else location.hash = "#/groups";
      } catch (err) {
        showRefusal(form, formError, err, /^groups\[\d+\]/);
      }
    },
  },
  h("h2", {}, editing ? `Edit group ${editing.id}` : "New group"),
  field("Id", f.id, { name: "id" }),
  field("Name", f.name, { name: "name" }),
  field("Description", f.description, { name: "description" }),
  formError,
  h("div.actions", {}, h("button", { type: "submit" }, editing ? "Save group" : "Create group"),
    editing ? h("a.button.secondary", { href: "#/groups" }, "Cancel") : null));
  const members = (g, list, key) => list.filter((x) => (x.groups || []).includes(g.id)).map((x) => x[key]);
  fill(main,
    heading("Groups"),
    table("Groups", [
      ["Group", (g) => h("a", { href: `#/groups/${encodeURIComponent(g.id)}` }, g.name ? `${g.name} (${g.id})` : g.id)],
      ["Routes", (g) => members(g, routes, "id").join(", ") || "none"],
      ["Keys allowed", (g) => members(g, keys, "clientId").join(", ") || "none"],
      ["", (g) => h("button.danger.small", {
        type: "button",
        "aria-label": `Delete group ${g.id}`,
        onclick: async () => {
          if (!confirm(`Delete group ${g.id}?`)) return;
          try {
            await api("DELETE", `/groups/${encodeURIComponent(g.id)}`);
            toast(`Group ${g.id} deleted.`);
            reload();
          } catch (err) {
            toast(`Not deleted: ${err.message}`, "error");
          }
        },
      }, "Delete")],
    ], groups, { empty: "No group yet." }),
    form);
}
