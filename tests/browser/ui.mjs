// The web UI in a real browser: Debian's Chromium, headless, driven by
// playwright-core, against a running gateway (the native binary or the
// Worker in workerd). Started by tests/tests/ui.rs, which starts the
// gateway and a backend and passes:
//
//   node tests/browser/ui.mjs '{"ui": "...", "proxy": "http://…", "admin": "id:secret", "backend": "http://…",
//                               "deployment": "native"|"worker", "shots": "target/ui-screenshots/native"}'
//
// Exits non-zero, naming the step, on the first failure. Screenshots of
// every page land in `shots`; axe-core checks every page for serious or
// critical accessibility violations.

import assert from "node:assert/strict";
import { readFile, mkdir } from "node:fs/promises";
import { createRequire } from "node:module";
import http from "node:http";
import { chromium } from "playwright-core";

const require = createRequire(import.meta.url);
const opts = JSON.parse(process.argv[2]);
const [adminId, adminSecret] = opts.admin.split(/:(.*)/s);
const ui = opts.ui.endsWith("/") ? opts.ui : `${opts.ui}/`;
const uiOrigin = new URL(ui).origin;
const axeSource = await readFile(require.resolve("axe-core/axe.min.js"), "utf8");
await mkdir(opts.shots, { recursive: true });

const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
const browser = await chromium.launch({ executablePath, args: ["--no-sandbox"] });
const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: uiOrigin });
const page = await context.newPage();
const problems = [];
page.on("dialog", (d) => d.accept()); // the confirmations of deletes and resets
page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
page.on("console", (m) => {
  // An error answer (a refused field, a 401 the test provokes) is logged by
  // the browser as a failed resource: the pages handle those.
  if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) problems.push(`console: ${m.text()}`);
});
// The CSP (and the other protections) on every response of the UI and its
// API (at the edge, what the proxied routes answer on the same host is the
// backends' own).
const unprotected = [];
page.on("response", (r) => {
  if (!r.url().startsWith(ui)) return;
  const h = r.headers();
  if (!h["content-security-policy"] || h["x-frame-options"] !== "DENY") unprotected.push(`${r.status()} ${r.url()}`);
});

let step = "start";
const shot = (name) => page.screenshot({ path: `${opts.shots}/${name}.png`, fullPage: true });
async function axe(name) {
  await page.evaluate(axeSource);
  const result = await page.evaluate(() => window.axe.run(document, { resultTypes: ["violations"] }));
  const bad = result.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  assert.deepEqual(
    bad.map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`),
    [],
    `accessibility of ${name}`,
  );
}
async function visit(hash, name, ready) {
  await page.goto(`${ui}${hash}`);
  await page.locator(ready).first().waitFor();
  await shot(name);
  await axe(name);
}
// Clicks and waits for the admin API write it causes: a toast from an earlier
// save may still be on screen, so the toast alone does not prove this one.
async function clickAndAwait(button, method, path) {
  const [answer] = await Promise.all([
    page.waitForResponse((r) => r.request().method() === method && new URL(r.url()).pathname.endsWith(`/api${path}`)),
    button.click(),
  ]);
  assert.ok(answer.ok(), `${method} ${path} answered ${answer.status()}`);
}
const apiStatus = (path, init = {}) =>
  page.evaluate(async ([p, i]) => (await fetch(`api${p}`, i)).status, [path, init]);

try {
  step = "the login page";
  await page.goto(ui);
  await page.getByRole("heading", { name: "Log in" }).waitFor();
  await shot("login");
  await axe("login");

  step = "without a session every API call is 401";
  for (const p of ["/routes", "/apikeys", "/events", "/export", "/session"]) {
    assert.equal(await apiStatus(p), 401, p);
  }
  assert.equal(await apiStatus("/groups", { method: "POST", body: "{\"id\":\"x\"}" }), 401);

  step = "a wrong admin secret is refused";
  await page.getByLabel("Admin key id").fill(adminId);
  await page.getByLabel("Secret").fill("not-the-secret");
  await page.getByRole("button", { name: "Log in" }).click();
  await page.getByText("That admin key was refused").waitFor();

  step = "log in, with the keyboard alone";
  await page.getByLabel("Admin key id").focus();
  await page.keyboard.press("Tab");
  assert.equal(await page.evaluate(() => document.activeElement.name), "clientSecret");
  await page.keyboard.press("Control+A");
  await page.keyboard.type(adminSecret);
  await page.keyboard.press("Enter");
  await page.getByRole("heading", { name: "Overview" }).waitFor();
  const cookies = await context.cookies(ui);
  const session = cookies.find((c) => c.name === "komainu_session");
  assert.ok(session, "a session cookie");
  assert.equal(session.httpOnly, true, "HttpOnly");
  assert.equal(session.sameSite, "Strict", "SameSite=Strict");
  assert.equal(await page.evaluate(() => document.cookie.includes("komainu_session")), false, "not readable by scripts");
  assert.equal(await page.evaluate(() => JSON.stringify(localStorage) + JSON.stringify(sessionStorage)).then((s) => s.includes(adminSecret)), false);
  await page.getByText(opts.deployment === "worker" ? "Cloudflare Worker" : "native binary").waitFor();
  await shot("overview");
  await axe("overview");

  step = "create a group";
  await visit("#/groups", "groups", "h1:has-text('Groups')");
  await page.getByLabel("Id").fill("shop");
  await page.getByLabel("Name").fill("The shop");
  await page.getByRole("button", { name: "Create group" }).click();
  await page.getByRole("link", { name: "The shop (shop)" }).waitFor();

  step = "a bad field shows its server error inline and nothing is saved";
  await visit("#/routes/new", "route-new", "h1:has-text('New route')");
  await page.getByLabel("Id").fill("broken");
  await page.getByLabel("Paths").fill("no-slash");
  await page.getByLabel("Backend targets").fill(opts.backend);
  await page.getByRole("button", { name: "Create route" }).click();
  const pathsError = page.locator("[data-field=paths] .field-error");
  await pathsError.waitFor();
  assert.match(await pathsError.textContent(), /must start with/);
  assert.equal(await page.getByLabel("Paths").getAttribute("aria-invalid"), "true");
  await shot("route-error");
  assert.equal(await apiStatus("/routes/broken"), 404, "nothing saved");

  step = "create a route";
  await page.getByLabel("Id").fill("orders");
  await page.getByLabel("Name").fill("Orders");
  await page.getByLabel("Paths").fill("/orders\n/orders/{*rest}");
  await page.getByLabel("Groups").fill("shop");
  await page.getByRole("button", { name: "Create route" }).click();
  await page.getByRole("heading", { name: "Route orders" }).waitFor();
  await visit("#/routes", "routes", "a:has-text('Orders (orders)')");

  step = "the form keeps what it does not show";
  // A field only the JSON knows, set through the API...
  assert.equal(await page.evaluate(async () => {
    const s = await (await fetch("api/session")).json();
    return (await fetch("api/routes/orders", {
      method: "PATCH",
      headers: { "Content-Type": "application/json", "Komainu-CSRF": s.csrfToken },
      body: JSON.stringify({ maxBodyBytes: 4096, responseHeaders: { set: { "x-team": "shop" } } }),
    })).status;
  }), 200);
  // ...survives a save from the form.
  await visit("#/routes/orders", "route-edit", "h1:has-text('Route orders')");
  // The targets' health, as the answering instance sees it.
  await page.getByRole("heading", { name: "Target health" }).waitFor();
  if (opts.deployment !== "worker") {
    const targets = page.getByRole("region", { name: "Targets of route orders" });
    await targets.waitFor();
    assert.match(await targets.textContent(), /up/);
  }
  await page.getByLabel("Name").fill("Orders API");
  await clickAndAwait(page.getByRole("button", { name: "Save" }), "PUT", "/routes/orders");
  await page.getByText("Route orders saved").waitFor();
  const kept = await page.evaluate(async () => (await fetch("api/routes/orders")).json());
  assert.equal(kept.name, "Orders API");
  assert.equal(kept.maxBodyBytes, 4096);
  assert.deepEqual(kept.responseHeaders, { set: { "x-team": "shop" } });
  await page.getByRole("tab", { name: "JSON" }).click();
  assert.match(await page.getByRole("textbox", { name: "The route as JSON" }).inputValue(), /"maxBodyBytes": 4096/);
  await shot("route-json");
  await visit("#/routes", "routes", "a:has-text('Orders API (orders)')");

  step = "disable and enable a route from the list";
  const toggle = page.getByRole("switch", { name: "Route orders enabled" });
  await toggle.uncheck();
  await page.getByText("Route orders disabled.").waitFor();
  assert.equal((await page.evaluate(async () => (await fetch("api/routes/orders")).json())).enabled, false);
  await toggle.check();
  await page.getByText("Route orders enabled.").waitFor();
  assert.equal((await page.evaluate(async () => (await fetch("api/routes/orders")).json())).enabled, true);

  step = "create a key; the secret is shown once and copied";
  await visit("#/keys/new", "key-new", "h1:has-text('New API key')");
  await page.getByLabel("Client id").fill("alice");
  await page.getByLabel("Name").fill("Alice");
  await page.getByLabel("Routes it may call").selectOption("orders");
  await page.getByLabel("Per day").fill("100");
  await page.getByRole("button", { name: "Create key" }).click();
  const secretEl = page.locator("#new-secret");
  await secretEl.waitFor();
  const secret = (await secretEl.textContent()).trim();
  assert.ok(secret.length >= 16, "a secret");
  await page.getByRole("button", { name: "Copy the secret" }).click();
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), secret, "the copied secret");
  const curlLines = await page.locator("code.line").allTextContents();
  assert.ok(curlLines.some((l) => l.includes("Komainu-Client-Id: alice") && l.includes(secret)), "curl with the header pair");
  assert.ok(curlLines.some((l) => l.includes("-u 'alice:")), "curl with Basic");
  const bearerLine = page.locator("code.line", { hasText: "Authorization: Bearer" });
  await bearerLine.waitFor();
  const jwt = (await bearerLine.textContent()).match(/Bearer ([\w.-]+)/)[1];
  const byJwt = await fetch(`${opts.proxy}/orders/jwt`, { headers: { Authorization: `Bearer ${jwt}` } });
  assert.equal(byJwt.status, 200, "the ready-made Bearer JWT is accepted");
  await shot("key-created");
  await axe("key-created");

  step = "call the route from Try it";
  await page.getByRole("link", { name: "Try it with this key" }).click();
  await page.getByRole("heading", { name: "Try it" }).waitFor();
  assert.equal(await page.getByLabel("API key").inputValue(), "alice");
  assert.equal(await page.getByLabel("Its secret").inputValue(), secret, "the secret carried over, in memory");
  await page.getByLabel("Path").fill("/orders/42");
  await page.getByRole("button", { name: "Send" }).click();
  await page.getByRole("heading", { name: /^200/ }).waitFor();
  await page.getByText("komainu-request-id").first().waitFor();
  await shot("try-it");
  await axe("try-it");

  step = "the call is in the live events";
  await visit("#/events", "events", "h1:has-text('Events')");
  await page.locator("ol.tail li[data-type=request]", { hasText: "/orders/42" }).first().waitFor({ timeout: 15000 });
  // A new call appears live, without reloading.
  const live = await fetch(`${opts.proxy}/orders/live`, { headers: { "Komainu-Client-Id": "alice", "Komainu-Client-Secret": secret } });
  assert.equal(live.status, 200);
  await page.locator("ol.tail li[data-type=request]", { hasText: "/orders/live" }).first().waitFor({ timeout: 15000 });
  await shot("events-live");
  await page.getByRole("tab", { name: "Changes" }).click();
  await page.locator("table.diff").first().waitFor();
  await shot("events-audit");
  await axe("events-audit");

  step = "the key's consumption moved";
  await visit("#/keys/alice", "key", "h1:has-text('API key')");
  const dayUsed = page.locator(".usage[data-window=day]");
  await dayUsed.waitFor();
  assert.ok(Number(await dayUsed.textContent()) >= 1, "one call counted");

  step = "reset the key's consumption";
  await page.getByRole("button", { name: "Reset consumption" }).click();
  await page.getByText("Consumption reset.").waitFor();
  await page.waitForFunction(() => document.querySelector(".usage[data-window=day]")?.textContent === "0");

  step = "set and remove the key's expiry";
  await page.getByLabel("Expiry, in your local time").fill("2031-05-04T10:30");
  await page.getByRole("button", { name: "Set expiry" }).click();
  await page.getByText(/alice expires/).waitFor();
  const expiring = await page.evaluate(async () => (await fetch("api/apikeys/alice")).json());
  assert.equal(new Date(expiring.expiresAt).getTime(), new Date("2031-05-04T10:30").getTime());
  await page.getByRole("button", { name: "Never expire" }).click();
  await page.getByText("alice never expires").waitFor();
  assert.equal((await page.evaluate(async () => (await fetch("api/apikeys/alice")).json())).expiresAt, undefined);

  step = "patch a quota in the JSON tab";
  await page.getByRole("tab", { name: "JSON" }).click();
  const json = page.getByLabel("The key as JSON");
  const key = JSON.parse(await json.inputValue());
  key.quotas.perDay = 500;
  await json.fill(JSON.stringify(key, null, 2));
  await clickAndAwait(page.getByRole("button", { name: "Save JSON" }), "PUT", "/apikeys/alice");
  await page.getByText("saved: live now").waitFor();
  const stored = await page.evaluate(async () => (await fetch("api/apikeys/alice")).json());
  assert.equal(stored.quotas.perDay, 500);
  await shot("key-json");

  step = "import a document: its difference first, then applied";
  await visit("#/transfer", "transfer", "h1:has-text('Import / export')");
  await page.getByLabel("Or paste it").fill(JSON.stringify({ format: 1, groups: [{ id: "imported", name: "Imported" }] }));
  await page.getByLabel(/^Merge/).check();
  await page.getByRole("button", { name: "Show the difference" }).click();
  await page.getByRole("cell", { name: "group imported" }).waitFor();
  assert.equal(await apiStatus("/groups/imported"), 404, "nothing applied before the button");
  await shot("transfer-diff");
  await axe("transfer-diff");
  await page.getByRole("button", { name: /^Apply 1 change/ }).click();
  await page.getByText(/^Imported: revision/).first().waitFor();
  assert.equal(await apiStatus("/groups/imported"), 200);

  step = "download the configuration";
  const [download] = await Promise.all([
    page.waitForEvent("download"),
    page.getByRole("button", { name: "Download the configuration" }).click(),
  ]);
  const exported = JSON.parse(await readFile(await download.path(), "utf8"));
  assert.ok(exported.routes.some((r) => r.id === "orders"), "the export holds the route");
  assert.ok(!JSON.stringify(exported).includes(secret), "and no secret");

  step = "an Otoroshi export: its report, then merged";
  const otoroshiDir = process.env.KOMAINU_OTOROSHI_DATA || new URL("../../../shared/data/otoroshi/", import.meta.url).pathname;
  const otoroshiExport = await readFile(`${otoroshiDir.replace(/\/?$/, "/")}otoroshi-routes.json`, "utf8");
  await visit("#/transfer", "transfer-otoroshi", "h1:has-text('Import / export')");
  await page.getByLabel("What the file is").selectOption("otoroshi");
  await page.getByLabel(/^Otoroshi's shared key/).fill("otoroshi-ui-shared-key");
  await page.getByLabel("Or paste it").fill(otoroshiExport);
  await page.getByLabel(/^Merge/).check();
  await page.getByRole("button", { name: "Show the difference" }).click();
  await page.getByRole("heading", { name: "What became of the Otoroshi export" }).waitFor();
  await page.getByRole("cell", { name: "apiKeys partner-app" }).waitFor();
  await page.getByRole("cell", { name: /a stored backend is not an entity of its own/ }).waitFor();
  assert.equal(await apiStatus("/apikeys/P4tN8rWq1ZyE6hJd"), 404, "nothing applied before the button");
  await shot("transfer-otoroshi-report");
  await axe("transfer-otoroshi-report");
  await page.getByRole("button", { name: /^Apply \d+ changes/ }).click();
  // (The toast of the import before may still show: wait for this one's summary.)
  await page.getByText(/^Imported: revision \d+, \d+ routes, \d+ keys/).waitFor();
  assert.equal(await apiStatus("/apikeys/P4tN8rWq1ZyE6hJd"), 200);
  const mergedExport = await page.evaluate(async () => (await fetch("api/export")).text());
  assert.ok(!mergedExport.includes("otoroshi-ui-shared-key") && !mergedExport.includes("Hq5Lm2Xw9Cv4Bn7Z"), "no secret of the export in clear");
  assert.ok(mergedExport.includes("\"orders\""), "the merge kept what was there");

  step = "an exporter, its status and a test event";
  await visit("#/exporters", "exporters", "h1:has-text('Exporters')");
  await page.getByLabel("Kind").selectOption("webhook");
  await page.getByLabel("Exporter (JSON)").fill(JSON.stringify({ id: "hooks", kind: "webhook", url: "http://127.0.0.1:9/hook" }));
  await page.getByRole("button", { name: "Create exporter" }).click();
  await page.getByRole("cell", { name: "hooks (webhook)" }).waitFor();
  await page.getByRole("button", { name: "Send a test event through hooks" }).click();
  await page.getByText("Test event sent through hooks.").waitFor();
  if (opts.deployment === "worker") {
    // The Worker keeps no exporter queue: its status says so.
    await page.getByRole("cell", { name: /keeps no exporter queue/ }).waitFor();
  }
  await shot("exporters-one");
  step = "the overview's numbers are live";
  await visit("#/overview", "overview-later", "h1:has-text('Overview')");
  const traffic = setInterval(() => {
    fetch(`${opts.proxy}/orders/overview`, { headers: { "Komainu-Client-Id": "alice", "Komainu-Client-Secret": secret } }).catch(() => {});
  }, 100);
  try {
    await page.waitForFunction(() => {
      const values = [...document.querySelectorAll(".tile output")].map((o) => o.textContent);
      return values.length === 6 && values.slice(0, 4).every((v) => /\d/.test(v));
    }, null, { timeout: 15000 });
  } finally {
    clearInterval(traffic);
  }
  await shot("overview-live");

  step = "a write without the CSRF value is refused";
  assert.equal(await apiStatus("/groups", { method: "POST", headers: { "Content-Type": "application/json" }, body: "{\"id\":\"nocsrf\"}" }), 403);
  assert.equal(await apiStatus("/groups/nocsrf"), 404);

  step = "a cross-site form post is refused";
  // A page on another origin posts a form to the admin API: the browser
  // may attach the cookie (same site, other port), never the CSRF value.
  const evil = http.createServer((req, res) => {
    res.writeHead(200, { "content-type": "text/html" });
    res.end(`<form id=f method=POST action="${ui}api/groups" enctype="text/plain">
      <input name='{"id":"evil","x":"' value='"}'></form><script>document.getElementById("f").submit()</script>`);
  });
  await new Promise((r) => evil.listen(0, "127.0.0.1", r));
  const evilPage = await context.newPage();
  await evilPage.goto(`http://localhost:${evil.address().port}/`);
  await evilPage.waitForLoadState("networkidle").catch(() => {});
  await evilPage.close();
  evil.close();
  assert.equal(await apiStatus("/groups/evil"), 404, "the cross-site post changed nothing");

  step = "a phone-sized screen";
  await page.setViewportSize({ width: 390, height: 844 });
  await visit("#/keys", "keys-phone", "h1:has-text('API keys')");
  await page.setViewportSize({ width: 1280, height: 860 });

  step = "people: a local admin and a local viewer are added on the Logins page";
  await visit("#/logins", "logins-empty", "h1:has-text('Logins')");
  const addUser = async (username, password, role, email) => {
    await page.getByLabel("Username").fill(username);
    await page.getByLabel("Password", { exact: true }).fill(password);
    await page.getByLabel("Role").selectOption(role);
    await page.getByLabel("Email (optional)").fill(email);
    const first = !(await page.getByRole("table", { name: "Users of staff" }).count());
    await clickAndAwait(page.getByRole("button", { name: "Save user" }), first ? "POST" : "PUT", first ? "/auth-modules" : "/auth-modules/staff");
    await page.getByRole("cell", { name: username, exact: true }).waitFor();
  };
  await addUser("alice", "alice's password", "admin", "alice@example.com");
  await addUser("bob", "bob's password", "viewer", "bob@example.com");
  await shot("logins");
  await axe("logins");
  // Neither a password nor its hash reaches the page.
  const modulesJson = await page.evaluate(async () => (await fetch("api/auth-modules")).text());
  assert.ok(!modulesJson.includes("argon2") && !modulesJson.includes("bob's password"), modulesJson);

  step = "a viewer logs in with a password, reads, and every change is refused";
  await page.getByRole("button", { name: "Log out" }).click();
  await page.getByRole("heading", { name: "Log in" }).waitFor();
  const staff = page.getByRole("form", { name: "Log in with Staff" });
  await staff.getByLabel("Username").fill("bob");
  await staff.getByLabel("Password").fill("not bob's password");
  await staff.getByRole("button", { name: "Log in with Staff" }).click();
  await page.getByText("Wrong username or password.").waitFor();
  await shot("login-with-users");
  await axe("login-with-users");
  await staff.getByLabel("Password").fill("bob's password");
  await staff.getByRole("button", { name: "Log in with Staff" }).click();
  await page.getByText("bob@example.com · viewer").waitFor();
  await page.getByText("read-only", { exact: true }).waitFor();
  await visit("#/groups", "groups-viewer", "h1:has-text('Groups')");
  assert.equal(await page.getByRole("button", { name: "Create group" }).isVisible(), false, "no save button for a viewer");
  // The API refuses what the page no longer offers, with its CSRF value too.
  const refused = await page.evaluate(async () => {
    const s = await (await fetch("api/session")).json();
    const r = await fetch("api/groups", { method: "POST", headers: { "Content-Type": "application/json", "Komainu-CSRF": s.csrfToken }, body: "{\"id\":\"by-a-viewer\"}" });
    return [r.status, (await r.json()).error];
  });
  assert.deepEqual(refused, [403, "read_only"]);
  assert.equal(await apiStatus("/groups/by-a-viewer"), 404, "nothing was written");
  assert.equal(await apiStatus("/export"), 403, "the export is for admins");

  step = "an admin logs in with a password and changes are made in their name";
  await page.getByRole("button", { name: "Log out" }).click();
  await page.getByRole("heading", { name: "Log in" }).waitFor();
  await staff.getByLabel("Username").fill("alice");
  await staff.getByLabel("Password").fill("alice's password");
  await staff.getByRole("button", { name: "Log in with Staff" }).click();
  await page.getByText("alice@example.com · admin").waitFor();
  await visit("#/groups", "groups-admin-user", "h1:has-text('Groups')");
  await page.getByLabel("Id").fill("by-alice");
  await page.getByLabel("Name").fill("Made by Alice");
  await clickAndAwait(page.getByRole("button", { name: "Create group" }), "POST", "/groups");
  // (Events reach the list through the dispatcher, within milliseconds.)
  let audit;
  let mine;
  for (let i = 0; i < 50 && !mine; i++) {
    if (i) await page.waitForTimeout(100);
    audit = await page.evaluate(async () => (await (await fetch("api/events?type=io.komainu.audit.group.create.v1&limit=5")).json()));
    mine = (audit.events || audit).find((e) => e.subject === "by-alice" || (e.data && e.data.target === "by-alice"));
  }
  assert.ok(mine, JSON.stringify(audit));
  assert.equal(mine.data.actor, "alice@example.com");
  assert.equal(mine.data.user.subject, "alice");

    step = "log out; every page refused";
  await page.getByRole("button", { name: "Log out" }).click();
  await page.getByRole("heading", { name: "Log in" }).waitFor();
  for (const p of ["/routes", "/apikeys", "/events", "/session"]) assert.equal(await apiStatus(p), 401, p);
  // The old cookie, replayed by hand after logout, is not in the browser any more.
  assert.equal((await context.cookies(ui)).some((c) => c.name === "komainu_session" && c.value), false);
  await page.goto(`${ui}#/routes`);
  await page.getByRole("heading", { name: "Log in" }).waitFor();
  await shot("logged-out");

  step = "security headers on every UI response";
  assert.deepEqual(unprotected, []);
  assert.deepEqual(problems, []);
  console.log(`ui ${opts.deployment}: every step passed; screenshots in ${opts.shots}`);
} catch (e) {
  await shot(`failed-${step.replace(/\W+/g, "-")}`).catch(() => {});
  console.error(`ui ${opts.deployment}: FAILED at "${step}": ${e.stack || e}`);
  if (problems.length) console.error(problems.join("\n"));
  process.exitCode = 1;
} finally {
  await browser.close();
}
