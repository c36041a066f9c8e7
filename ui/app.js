// The Komainu web UI: a client of the admin API, nothing more. Pages are
// ES modules under pages/, each exporting render(main, ctx) and returning
// an optional clean-up function (live pages close their streams there).

import { h, fill, field, toast, heading } from "./dom.js";
import { ApiError, currentSession, login, loginOptions, loginUser, logout, whenLoggedOut } from "./api.js";

const pages = {
  overview: ["Overview", () => import("./pages/overview.js")],
  routes: ["Routes", () => import("./pages/routes.js")],
  keys: ["API keys", () => import("./pages/keys.js")],
  groups: ["Groups", () => import("./pages/groups.js")],
  exporters: ["Exporters", () => import("./pages/exporters.js")],
  try: ["Try it", () => import("./pages/tryit.js")],
  events: ["Events", () => import("./pages/events.js")],
  transfer: ["Import / export", () => import("./pages/transfer.js")],
  logins: ["Logins", () => import("./pages/logins.js")],
};

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const who = document.getElementById("who");
let session = null;
let cleanup = null;

function stopPage() {
  if (cleanup) {
    try { cleanup(); } catch { /* the page is gone anyway */ }
    cleanup = null;
  }
}

/** A username and password form for the local module `m`. */
function userLoginForm(m, error) {
  const username = h("input", { name: "username", autocomplete: "username", required: true, spellcheck: "false" });
  const password = h("input", { name: "password", type: "password", autocomplete: "current-password", required: true });
  return h("form.login-form", {
    "aria-label": `Log in with ${m.name}`,
    onsubmit: async (e) => {
      e.preventDefault();
      error.hidden = true;
      try {
        session = await loginUser(m.id, username.value.trim(), password.value);
        password.value = "";
        start();
      } catch (err) {
        error.hidden = false;
        error.textContent = !(err instanceof ApiError) ? `Could not log in: ${err.message}`
          : err.status === 401 ? "Wrong username or password."
          : err.status === 429 ? `${err.message}.`
          : err.code === "no_role" ? "You are known, but have no role on this admin: ask an admin for the admin or viewer role."
          : `Could not log in: ${err.message}`;
        password.focus();
      }
    },
  },
  field("Username", username),
  field("Password", password),
  h("button", { type: "submit" }, `Log in with ${m.name}`));
}

/** The admin key form. */
function keyLoginForm(error) {
  const id = h("input", { name: "clientId", autocomplete: "username", required: true, spellcheck: "false" });
  const secret = h("input", { name: "clientSecret", type: "password", autocomplete: "current-password", required: true });
  return h("form.login-form", {
    "aria-label": "Log in with an admin key",
    onsubmit: async (e) => {
      e.preventDefault();
      error.hidden = true;
      try {
        session = await login(id.value.trim(), secret.value);
        secret.value = "";
        start();
      } catch (err) {
        error.hidden = false;
        error.textContent = err instanceof ApiError && err.status === 401
          ? "That admin key was refused: check its client id and secret."
          : `Could not log in: ${err.message}`;
        secret.focus();
      }
    },
  },
  h("p.muted", {}, "With an admin key (the one printed at first start, or given with --admin-key). It is sent once; the browser keeps only a session cookie."),
  field("Admin key id", id),
  field("Secret", secret),
  h("button", { type: "submit" }, "Log in with the admin key"));
}

async function showLogin(message) {
  stopPage();
  session = null;
  nav.hidden = true;
  who.replaceChildren();
  document.title = "Log in · Komainu";
  // A provider's login that came back with an error says so in the URL.
  const params = new URLSearchParams(location.search);
  const failed = params.get("login_error");
  const error = h("p.form-error", { role: "alert", hidden: !(message || failed) }, message || failed || "");
  let modules = [];
  try {
    modules = (await loginOptions()).modules || [];
  } catch {
    modules = []; // the admin key still works
  }
  const people = modules.map((m) => (m.kind === "local"
    ? userLoginForm(m, error)
    : h("p", {}, h("a.button", {
      href: `api/login/${encodeURIComponent(m.id)}?back=${encodeURIComponent(location.hash.startsWith("#/") ? location.hash : "#/overview")}`,
    }, `Log in with ${m.name}`))));
  const key = keyLoginForm(error);
  const card = h("div.card.login", {}, h("h1", {}, "Log in"), error,
    ...people,
    people.length ? h("details", {}, h("summary", {}, "Log in with an admin key"), key) : key);
  fill(main, card);
  const first = card.querySelector("input, a.button");
  if (first) first.focus();
}

async function show() {
  stopPage();
  const hash = location.hash.replace(/^#\/?/, "").split("?")[0];
  if (location.hash && !location.hash.startsWith("#/")) return; // in-page anchors (the skip link)
  const [name, ...rest] = hash.split("/");
  const entry = pages[name];
  if (!entry) {
    location.replace("#/overview");
    return;
  }
  for (const a of nav.querySelectorAll("a")) {
    if (a.getAttribute("href") === `#/${name}`) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  document.title = `${entry[0]} · Komainu`;
  fill(main, h("p.muted", {}, "Loading…"));
  try {
    const module = await entry[1]();
    const result = await module.render(main, { session, args: rest.map(decodeURIComponent) });
    cleanup = typeof result === "function" ? result : null;
    const title = main.querySelector("h1");
    if (title) title.focus({ preventScroll: true });
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return; // the login form is shown
    fill(main, heading(entry[0]), h("p.form-error", { role: "alert" }, `This page could not load: ${err.message}`));
  }
}

function start() {
  nav.hidden = false;
  document.body.dataset.role = session.role || "admin";
  if (location.search.includes("login_error")) history.replaceState(null, "", location.pathname + location.hash);
  fill(who,
    h("span.muted", {}, `${session.actor} · ${session.role || "admin"} · ${session.deployment === "worker" ? "Worker" : "native"}`),
    session.role === "viewer" ? h("span.badge", { title: "Your changes are refused: ask an admin for the admin role." }, "read-only") : null,
    h("button.secondary", {
      type: "button",
      onclick: async () => {
        await logout().catch(() => {});
        toast("Logged out.");
        showLogin();
      },
    }, "Log out"));
  show();
}

whenLoggedOut(() => showLogin("Your session has ended: log in again."));
window.addEventListener("hashchange", () => { if (session) show(); });
window.addEventListener("komainu:reload", () => { if (session) show(); });

(async () => {
  try {
    session = await currentSession();
  } catch (err) {
    fill(main, h("p.form-error", { role: "alert" }, `The admin API did not answer: ${err.message}`));
    return;
  }
  if (session) start();
  else showLogin();
})();
