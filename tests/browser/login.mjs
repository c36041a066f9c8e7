// People log in to the UI through a real OpenID Provider, in headless
// Chromium: an admin, a viewer (whose writes are refused), someone with no
// role, someone from another email domain; and the attacks a login must
// withstand (state, replayed code, open redirect, provider down).
//
//   node tests/browser/login.mjs '{"ui": "http://127.0.0.1:8081/", "deployment": "native",
//                                  "shots": "target/ui-screenshots/native"}'
//
// The gateway has the auth modules `corp` (the provider) and `down` (a
// provider that does not answer).

import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { readFile } from "node:fs/promises";
import { chromium } from "playwright-core";

const require = createRequire(import.meta.url);
const opts = JSON.parse(process.argv[2]);
const ui = opts.ui.endsWith("/") ? opts.ui : `${opts.ui}/`;
const proxy = opts.proxy.endsWith("/") ? opts.proxy : `${opts.proxy}/`;
const axeSource = await readFile(require.resolve("axe-core/axe.min.js"), "utf8");
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
const browser = await chromium.launch({ executablePath, args: ["--no-sandbox"] });

let step = "start";
let page = null;
const problems = [];

/** A fresh browser (no cookie of the gateway's or the provider's). */
async function fresh() {
  if (page) await page.context().close();
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  page = await context.newPage();
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  return page;
}
const shot = (name) => page.screenshot({ path: `${opts.shots}/${name}.png`, fullPage: true });
async function axe(name) {
  await page.evaluate(axeSource);
  const result = await page.evaluate(() => window.axe.run(document, { resultTypes: ["violations"] }));
  const bad = result.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  assert.deepEqual(bad.map((v) => `${v.id}: ${v.help}`), [], `accessibility of ${name}`);
}
const api = (path, init = {}) => page.evaluate(async ([base, p, i]) => {
  const r = await fetch(`${base}api${p}`, i);
  return { status: r.status, body: await r.text() };
}, [ui, path, init]);

/** Logs `who` in through the provider's own login page; the callback URL the provider sent back. */
async function loginAs(who) {
  await page.goto(ui);
  await page.getByRole("heading", { name: "Log in" }).waitFor();
  let callback = null;
  page.on("request", (r) => { if (r.url().includes("/api/login/corp/callback")) callback = r.url(); });
  await page.getByRole("link", { name: "Log in with Corp SSO" }).click();
  // The provider's page (oidc-provider's built-in login form).
  await page.locator("input[name=login]").waitFor();
  await page.locator("input[name=login]").fill(who);
  await page.locator("input[name=password]").fill("any password");
  await page.locator("button[type=submit]").click();
  return () => callback;
}

try {
  step = "the login page offers the provider";
  await fresh();
  await page.goto(ui);
  await page.getByRole("link", { name: "Log in with Corp SSO" }).waitFor();
  await shot("login-oidc");
  await axe("login-oidc");

  step = "an admin logs in through the provider";
  let callbackOf = await loginAs("ann");
  await page.getByText("ann@example.com · admin").waitFor();
  await shot("oidc-admin");
  const cookies = await page.context().cookies(ui);
  const session = cookies.find((c) => c.name === "komainu_session");
  assert.ok(session && session.httpOnly && session.sameSite === "Strict", JSON.stringify(cookies));
  assert.ok(!cookies.some((c) => c.name === "komainu_login" && c.value), "the login's own cookie is gone");
  const me = JSON.parse((await api("/session")).body);
  assert.equal(me.role, "admin");
  assert.equal(me.user.module, "corp");
  assert.equal(me.user.subject, "ann");
  assert.deepEqual(me.user.roles, ["komainu-admins"]);
  const created = await api("/groups", { method: "POST", headers: { "Content-Type": "application/json", "Komainu-CSRF": me.csrfToken }, body: JSON.stringify({ id: "by-ann" }) });
  assert.equal(created.status, 201, created.body);

  step = "the authorization code cannot be used twice";
  const used = callbackOf();
  assert.ok(used, "the provider sent the browser back");
  await page.goto(used);
  await page.getByRole("heading", { name: "This login cannot go on" }).waitFor();
  await shot("oidc-replayed");
  // Even with the login's cookie restored, the provider refuses the code.
  const replay = await page.evaluate(async (u) => (await fetch(u, { headers: { Accept: "application/json" } })).status, used);
  assert.ok(replay === 400 || replay === 401, `replayed code: ${replay}`);

  step = "a private route: a tool without a session gets 401 JSON";
  const tool = await fetch(`${proxy}private/hello`, { headers: { Accept: "application/json" } });
  assert.equal(tool.status, 401);
  const toolBody = await tool.json();
  assert.equal(toolBody.error, "login_required", JSON.stringify(toolBody));

  step = "a private route: a browser logs in, and the backend learns who";
  await fresh();
  await page.goto(`${proxy}private/hello?x=1`);
  await page.locator("input[name=login]").waitFor();
  await page.locator("input[name=login]").fill("vic");
  await page.locator("input[name=password]").fill("any password");
  await page.locator("button[type=submit]").click();
  await page.waitForURL(`${proxy}private/hello?x=1`);
  const echoed = JSON.parse(await page.locator("body").innerText());
  const claim = echoed.headers["komainu-claim"];
  assert.ok(claim, JSON.stringify(echoed.headers));
  const payload = JSON.parse(Buffer.from(claim.split(".")[1], "base64url").toString());
  assert.equal(payload.sub, "vic");
  assert.equal(payload.email, "vic@example.com");
  assert.equal(payload.name, "Vic Viewer");
  assert.deepEqual(payload.roles, ["komainu-viewers"]);
  assert.equal(payload.authModule, "corp");
  assert.equal(payload.aud, "private");
  const forwardedCookies = echoed.headers.cookie || "";
  assert.ok(!/komainu_/.test(forwardedCookies), `no cookie of the gateway's reaches the backend: ${forwardedCookies}`);
  const userCookie = (await page.context().cookies(proxy)).find((c) => c.name === "komainu_user");
  assert.ok(userCookie && userCookie.httpOnly && userCookie.sameSite === "Lax", JSON.stringify(userCookie));
  await shot("private-route");

  step = "a private route: log out (here and at the provider), and be sent to log in again";
  await page.goto(`${proxy}.well-known/komainu/logout`);
  await page.getByRole("button", { name: "Yes, sign me out" }).click();
  await page.getByRole("heading", { name: "You are logged out" }).waitFor();
  await shot("private-logged-out");
  assert.ok(!(await page.context().cookies(proxy)).some((c) => c.name === "komainu_user" && c.value));
  await page.goto(`${proxy}private/hello`);
  await page.locator("input[name=login]").waitFor(); // the provider asks again
  assert.ok(!page.url().startsWith(proxy), `sent to the provider, not the route: ${page.url()}`);

  step = "a viewer logs in; every change is refused";
  await fresh();
  await loginAs("vic");
  await page.getByText("vic@example.com · viewer").waitFor();
  await page.getByText("read-only", { exact: true }).waitFor();
  const vic = JSON.parse((await api("/session")).body);
  const refused = await api("/groups", { method: "POST", headers: { "Content-Type": "application/json", "Komainu-CSRF": vic.csrfToken }, body: JSON.stringify({ id: "by-vic" }) });
  assert.equal(refused.status, 403, refused.body);
  assert.equal(JSON.parse(refused.body).error, "read_only");
  assert.equal((await api("/groups/by-vic")).status, 404);
  await shot("oidc-viewer");

  step = "log out, and be refused again";
  await page.getByRole("button", { name: "Log out" }).click();
  await page.getByRole("heading", { name: "Log in" }).waitFor();
  assert.equal((await api("/routes")).status, 401);

  step = "someone with no role gets no session";
  await fresh();
  await loginAs("nora");
  await page.getByRole("heading", { name: "You may not log in here" }).waitFor();
  await page.getByText("has no role").waitFor();
  await shot("oidc-no-role");
  await axe("oidc-no-role");
  assert.equal((await api("/session")).status, 401);

  step = "someone from another email domain gets no session";
  await fresh();
  await loginAs("eve");
  await page.getByRole("heading", { name: "You may not log in here" }).waitFor();
  await page.getByText("only verified emails of example.com").waitFor();
  assert.equal((await api("/session")).status, 401);

  step = "a callback without the login's state is refused";
  await fresh();
  await page.goto(`${ui}api/login/corp/callback?code=stolen&state=guessed`);
  await page.getByRole("heading", { name: "This login cannot go on" }).waitFor();
  await page.getByText("Nothing was granted").waitFor();
  await shot("oidc-bad-state");
  assert.equal((await api("/session")).status, 401);

  step = "an open-redirect target is refused";
  const open = await page.goto(`${ui}api/login/corp?back=https%3A%2F%2Fevil.example%2F`);
  assert.equal(open.status(), 400);
  const cb = await page.goto(`${ui}api/login/corp/callback?code=x&state=y&redirect=https%3A%2F%2Fevil.example%2F`);
  assert.equal(cb.status(), 400);
  assert.notEqual(new URL(page.url()).host, "evil.example", "the browser stayed on the gateway");

  step = "a provider that does not answer: a clear 502 page";
  const down = await page.goto(`${ui}api/login/down?back=%23%2Foverview`);
  assert.equal(down.status(), 502);
  await page.getByRole("heading", { name: "The identity provider did not answer" }).waitFor();
  await shot("oidc-provider-down");
  assert.equal((await api("/session")).status, 401);

  assert.deepEqual(problems, []);
  console.log(`login ${opts.deployment}: every step passed; screenshots in ${opts.shots}`);
} catch (e) {
  if (page) await shot(`failed-login-${step.replace(/\W+/g, "-")}`).catch(() => {});
  console.error(`login ${opts.deployment}: FAILED at "${step}": ${e.stack || e}`);
  if (problems.length) console.error(problems.join("\n"));
  process.exitCode = 1;
} finally {
  await browser.close();
}
