// Starts the built Worker (edge/build) in workerd through Miniflare, on a
// free loopback port, with in-memory KV and Durable Objects. Prints one JSON
// line {"url": ...} when ready; stops when its standard input closes (the
// test harness that started it went away) or on SIGTERM.
//
//   node edge/test/worker.mjs [--admin-key id:secret] [--claim-secret s] [--admin-host h]
import { Miniflare } from "miniflare";
import { fileURLToPath } from "node:url";
import path from "node:path";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const arg = (name, fallback) => {
  const i = process.argv.lastIndexOf(name);
  return i > 0 ? process.argv[i + 1] : fallback;
};

const mf = new Miniflare({
  modules: true,
  modulesRoot: path.join(root, "edge/build"),
  scriptPath: path.join(root, "edge/build/index.js"),
  modulesRules: [{ type: "CompiledWasm", include: ["**/*.wasm"] }],
  compatibilityDate: "2026-08-01",
  kvNamespaces: ["KOMAINU_CONFIG"],
  durableObjects: { KOMAINU_CONFIG_DO: "ConfigObject", KOMAINU_COUNTER_DO: "CounterObject" },
  // An empty value leaves the setting out (to test the Worker without it).
  bindings: Object.fromEntries(
    Object.entries({
      KOMAINU_ADMIN_PATH: "/_komainu",
      KOMAINU_ADMIN_KEY: arg("--admin-key", "ops:e2e-admin-secret"),
      KOMAINU_CLAIM_SECRET: arg("--claim-secret", "e2e-claim-secret"),
      KOMAINU_SECRET_KEY: arg("--secret-key", "e2e-deployment-key-0123456789abcdef"),
      KOMAINU_ADMIN_HOST: arg("--admin-host", ""),
    }).filter(([, value]) => value !== ""),
  ),
  host: "127.0.0.1",
  port: 0,
  cf: false,
});
const url = await mf.ready;
console.log(JSON.stringify({ url: url.href.replace(/\/$/, "") }));

let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  await mf.dispose();
  process.exit(0);
};
process.stdin.on("end", stop);
process.stdin.on("close", stop);
process.stdin.resume();
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
