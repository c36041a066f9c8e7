// Overview: the live numbers (from /metrics, every 2 s), the live revision
// and the deployment, what is configured, and the latest alerts.

import { h, fill, heading, table, when } from "../dom.js";
import { api, metrics } from "../api.js";

const EVERY_MS = 2000;
const WINDOW_MS = 60000;

function sum(samples, name, filter = () => true) {
  return samples.filter((s) => s.name === name && filter(s.labels)).reduce((a, s) => a + s.value, 0);
}

/** Cumulative histogram buckets summed over every route: [[le, count]]. */
function buckets(samples, name) {
  const by = new Map();
  for (const s of samples) {
    if (s.name !== `${name}_bucket`) continue;
    const le = s.labels.le === "+Inf" ? Infinity : Number(s.labels.le);
    by.set(le, (by.get(le) || 0) + s.value);
  }
  return [...by.entries()].sort((a, b) => a[0] - b[0]);
}

/** The quantile q of the requests between two scrapes (bucket upper bounds). */
function quantile(before, after, q) {
  const delta = after.map(([le, c], i) => [le, c - ((before[i] && before[i][1]) || 0)]);
  const total = delta.length ? delta[delta.length - 1][1] : 0;
  if (!total) return null;
  const want = q * total;
  for (const [le, c] of delta) if (c >= want) return le;
  return null;
}

function ms(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  if (seconds === Infinity) return "> 10 s";
  return seconds < 0.001 ? `${(seconds * 1000).toFixed(2)} ms` : `${(seconds * 1000).toFixed(1)} ms`;
}

export async function render(main) {
  const [health, routes, keys, groups, exporters] = await Promise.all([
    api("GET", "/health"),
    api("GET", "/routes"),
    api("GET", "/apikeys"),
    api("GET", "/groups"),
    api("GET", "/exporters"),
  ]);
  const tiles = {
    rps: h("output.value", {}, "–"),
    p50: h("output.value", {}, "–"),
    p95: h("output.value", {}, "–"),
    errors: h("output.value", {}, "–"),
    overhead: h("output.value", {}, "–"),
    revision: h("output.value", {}, String(health.revision)),
  };
  const tile = (label, el, hint) => h("div.tile", {}, h("span.label", {}, label), el, hint ? h("span.hint", {}, hint) : null);
  const note = h("p.muted", { "aria-live": "polite" });
  const alerts = h("div");
  fill(main,
    heading("Overview", h("span.badge", {}, health.deployment === "worker" ? "Cloudflare Worker" : "native binary")),
    h("section", { "aria-label": "Live traffic" },
      h("div.tiles", {},
        tile("Requests per second", tiles.rps),
        tile("Latency p50", tiles.p50, "whole request"),
        tile("Latency p95", tiles.p95, "whole request"),
        tile("Error rate", tiles.errors, "5xx answers"),
        tile("Gateway overhead", tiles.overhead, "mean, besides the backend"),
        tile("Live revision", tiles.revision)),
      note),
    h("section", {},
      h("h2", {}, "Configured"),
      h("ul.counts", {},
        h("li", {}, h("a", { href: "#/routes" }, `${routes.length} route${routes.length === 1 ? "" : "s"}`)),
        h("li", {}, h("a", { href: "#/keys" }, `${keys.length} API key${keys.length === 1 ? "" : "s"}`)),
        h("li", {}, h("a", { href: "#/groups" }, `${groups.length} group${groups.length === 1 ? "" : "s"}`)),
        h("li", {}, h("a", { href: "#/exporters" }, `${exporters.length} exporter${exporters.length === 1 ? "" : "s"}`)))),
    h("section", {}, h("h2", {}, "Latest alerts"), alerts));

  let previous = null;
  let stopped = false;
  const tick = async () => {
    if (stopped) return;
    try {
      const [samples, latest] = await Promise.all([
        health.deployment === "worker" ? null : metrics(),
        api("GET", "/events?type=alert&limit=8").then((r) => r.events).catch(() => []),
        api("GET", "/health").then((hh) => { tiles.revision.textContent = String(hh.revision); }),
      ]);
      fill(alerts, table("Latest alerts", [
        ["Time", (e) => when(e.time)],
        ["Alert", (e) => e.type.replace("io.komainu.alert.", "").replace(".v1", "")],
        ["Severity", (e) => (e.data && e.data.severity) || ""],
        ["What happened", (e) => (e.data && e.data.message) || ""],
      ], latest.slice().reverse(), { empty: "No alert." }));
      if (!samples) {
        await fromEvents();
        return;
      }
      const now = {
        at: performance.now(),
        total: sum(samples, "komainu_requests_total"),
        errors: sum(samples, "komainu_requests_total", (l) => l.status_class === "5xx"),
        latency: buckets(samples, "komainu_request_duration_seconds"),
        overheadSum: sum(samples, "komainu_gateway_overhead_seconds_sum"),
        overheadCount: sum(samples, "komainu_gateway_overhead_seconds_count"),
      };
      if (previous) {
        const seconds = (now.at - previous.at) / 1000;
        const calls = now.total - previous.total;
        tiles.rps.textContent = (calls / seconds).toFixed(1);
        tiles.errors.textContent = calls ? `${((100 * (now.errors - previous.errors)) / calls).toFixed(1)} %` : "–";
        tiles.p50.textContent = calls ? `≤ ${ms(quantile(previous.latency, now.latency, 0.5))}` : "–";
        tiles.p95.textContent = calls ? `≤ ${ms(quantile(previous.latency, now.latency, 0.95))}` : "–";
        const n = now.overheadCount - previous.overheadCount;
        tiles.overhead.textContent = n ? ms((now.overheadSum - previous.overheadSum) / n) : "–";
        note.textContent = `Over the last ${seconds.toFixed(0)} s; ${now.total} requests since start.`;
      } else {
        note.textContent = `${now.total} requests since start; the rates appear with the next reading.`;
      }
      previous = now;
    } catch (err) {
      note.textContent = `The numbers could not be read: ${err.message}`;
    }
  };
  // The Worker has no /metrics: the numbers come from the recent request
  // events (those of the isolate answering), over the last minute.
  const fromEvents = async () => {
    const { events } = await api("GET", "/events?type=request&limit=1000");
    const since = Date.now() - WINDOW_MS;
    const recent = events.filter((e) => Date.parse(e.time) >= since && e.data && e.data.durations);
    const n = recent.length;
    const sorted = (f) => recent.map(f).filter((v) => typeof v === "number").sort((a, b) => a - b);
    const at = (list, q) => (list.length ? list[Math.min(list.length - 1, Math.floor(q * list.length))] : null);
    const total = sorted((e) => e.data.durations.totalMs);
    const overhead = sorted((e) => e.data.durations.overheadMs);
    tiles.rps.textContent = (n / (WINDOW_MS / 1000)).toFixed(2);
    tiles.p50.textContent = n ? ms(at(total, 0.5) / 1000) : "–";
    tiles.p95.textContent = n ? ms(at(total, 0.95) / 1000) : "–";
    tiles.errors.textContent = n ? `${((100 * recent.filter((e) => e.data.status >= 500).length) / n).toFixed(1)} %` : "–";
    tiles.overhead.textContent = overhead.length ? ms(overhead.reduce((a, b) => a + b, 0) / overhead.length / 1000) : "–";
    note.textContent = `From the ${n} request event${n === 1 ? "" : "s"} of the last minute this Worker isolate kept (the Worker offers no /metrics).`;
  };
  await tick();
  const timer = setInterval(tick, EVERY_MS);
  return () => { stopped = true; clearInterval(timer); };
}
