// Logins: the auth modules people log in with (local users, OpenID
// providers), their users and roles, and revoking their sessions.

import { h, fill, field, heading, table, toast, reload } from "../dom.js";
import { api, ApiError } from "../api.js";

const path = (id) => `/auth-modules/${encodeURIComponent(id)}`;

function refusal(err) {
  if (!(err instanceof ApiError)) throw err;
  return err.errors.length ? err.errors.map((x) => `${x.field}: ${x.message}`).join(" ") : err.message;
}

/** The users of a module as a PUT body sends them: passwords left out are kept. */
function usersToSend(module) {
  return (module.users || []).map(({ passwordSet, ...u }) => u);
}

function roleOf(module, roles) {
  if ((roles || []).some((r) => (module.adminRoles || []).includes(r))) return "admin";
  if ((roles || []).some((r) => (module.viewerRoles || []).includes(r))) return "viewer";
  return "none";
}

async function saveUsers(module, users, done) {
  const body = { ...module, users };
  delete body.clientSecretSet;
  await api("PUT", path(module.id), body);
  toast(done);
  reload();
}

function userForm(modules) {
  const local = modules.filter((m) => m.kind === "local");
  const module = h("select", {}, local.map((m) => h("option", { value: m.id }, m.name || m.id)),
    h("option", { value: "" }, "A new local module named “staff”"));
  const username = h("input", { name: "username", autocomplete: "off", required: true, spellcheck: "false" });
  const password = h("input", { name: "new-password", type: "password", autocomplete: "new-password", required: true, minlength: 8 });
  const role = h("select", {}, ["admin", "viewer", "none"].map((r) => h("option", { value: r }, r)));
  const email = h("input", { name: "email", type: "email", autocomplete: "off" });
  const error = h("p.form-error", { role: "alert", hidden: true });
  return h("form.editor", {
    onsubmit: async (e) => {
      e.preventDefault();
      error.hidden = true;
      const user = { username: username.value.trim(), password: password.value, roles: role.value === "none" ? [] : [role.value] };
      if (email.value.trim()) user.email = email.value.trim();
      try {
        const existing = local.find((m) => m.id === module.value);
        if (existing) {
          const others = usersToSend(existing).filter((u) => u.username !== user.username);
          await saveUsers(existing, [...others, user], `User ${user.username} saved.`);
        } else {
          await api("POST", "/auth-modules", { id: "staff", name: "Staff", kind: "local", users: [user] });
          toast(`User ${user.username} created.`);
          reload();
        }
        password.value = "";
      } catch (err) {
        error.hidden = false;
        error.textContent = `Not saved: ${refusal(err)}`;
      }
    },
  }, h("h2", {}, "Add or update a local user"),
  field("Module", module),
  field("Username", username),
  field("Password", password, { hint: "At least 8 characters; stored as an argon2id hash, never shown again. Changing it ends the user's sessions." }),
  field("Role", role, { hint: "admin: read-write; viewer: read-only; none: private routes only." }),
  field("Email (optional)", email),
  error,
  h("div.actions", {}, h("button", { type: "submit" }, "Save user")));
}

function moduleForm() {
  const kind = h("select", {}, ["oidc", "local"].map((k) => h("option", { value: k }, k)));
  const json = h("textarea.code", { rows: 10, spellcheck: "false" });
  const templates = {
    oidc: {
      id: "corp", name: "Company account", kind: "oidc",
      issuer: "https://accounts.example.com", clientId: "komainu", clientSecret: "from-the-provider",
      rolesClaim: "groups", adminRoles: ["komainu-admins"], viewerRoles: ["komainu-viewers"],
    },
    local: { id: "staff", name: "Staff", kind: "local", users: [] },
  };
  const setTemplate = () => { json.value = JSON.stringify(templates[kind.value], null, 2); };
  kind.addEventListener("change", setTemplate);
  setTemplate();
  const error = h("p.form-error", { role: "alert", hidden: true });
  return h("form.editor", {
    onsubmit: async (e) => {
      e.preventDefault();
      error.hidden = true;
      let body;
      try {
        body = JSON.parse(json.value);
      } catch (err) {
        error.hidden = false;
        error.textContent = `The JSON is not valid: ${err.message}`;
        return;
      }
      try {
        await api("POST", "/auth-modules", body);
        toast(`Auth module ${body.id} created.`);
        reload();
      } catch (err) {
        error.hidden = false;
        error.textContent = `Not created: ${refusal(err)}`;
      }
    },
  }, h("h2", {}, "New auth module"), field("Kind", kind),
  field("Auth module (JSON)", json, { hint: "The provider's redirect URI to register is shown in the README (Human login)." }),
  error, h("div.actions", {}, h("button", { type: "submit" }, "Create module")));
}

function moduleCard(m) {
  const actions = h("div.row", {},
    h("button.secondary.small", {
      type: "button", "aria-label": `Revoke sessions of ${m.id}`,
      onclick: async () => {
        if (!confirm(`End every session opened with ${m.id}? Its people log in again.`)) return;
        try {
          await api("POST", `${path(m.id)}/revoke-sessions`);
          toast(`Sessions of ${m.id} revoked.`);
          reload();
        } catch (err) {
          toast(`Not revoked: ${err.message}`, "error");
        }
      },
    }, "Revoke sessions"),
    h("button.danger.small", {
      type: "button", "aria-label": `Delete auth module ${m.id}`,
      onclick: async () => {
        if (!confirm(`Delete auth module ${m.id}? Its people can no longer log in.`)) return;
        try {
          await api("DELETE", path(m.id));
          toast(`Auth module ${m.id} deleted.`);
          reload();
        } catch (err) {
          toast(`Not deleted: ${err.message}`, "error");
        }
      },
    }, "Delete"));
  const facts = [
    `${m.kind === "oidc" ? "OpenID provider" : "Local users"}`,
    m.enabled === false ? "disabled" : "enabled",
    `sessions last ${Math.round((m.sessionSeconds || 28800) / 3600)} h`,
  ];
  if (m.sessionsNotBefore) facts.push(`sessions before ${m.sessionsNotBefore} revoked`);
  const parts = [h("h2", {}, `${m.name || m.id} (${m.id})`), h("p.muted", {}, facts.join(" · "))];
  if (m.kind === "oidc") {
    parts.push(h("p", {}, `Issuer ${m.issuer} · client ${m.clientId}${m.clientSecretSet ? " (secret set)" : ""} · roles from “${m.rolesClaim}”`));
  } else {
    parts.push(table(`Users of ${m.id}`, [
      ["User", (u) => u.username],
      ["Role", (u) => roleOf(m, u.roles)],
      ["Email", (u) => u.email || ""],
      ["Enabled", (u) => (u.enabled === false ? "no" : "yes")],
      ["", (u) => h("button.danger.small", {
        type: "button", "aria-label": `Remove user ${u.username}`,
        onclick: async () => {
          if (!confirm(`Remove user ${u.username}?`)) return;
          try {
            await saveUsers(m, usersToSend(m).filter((x) => x.username !== u.username), `User ${u.username} removed.`);
          } catch (err) {
            toast(`Not removed: ${refusal(err)}`, "error");
          }
        },
      }, "Remove")],
    ], m.users || [], { empty: "No user yet: add one below." }));
  }
  parts.push(actions);
  return h("section.card", {}, ...parts);
}

export async function render(main) {
  const modules = await api("GET", "/auth-modules");
  fill(main, heading("Logins"),
    h("p.muted", {}, "How people log in to this UI, the admin API and private routes. Admin keys still work alongside."),
    ...(modules.length ? modules.map(moduleCard) : [h("p", {}, "No auth module yet: only admin keys log in.")]),
    userForm(modules),
    moduleForm());
}
