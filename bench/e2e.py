#!/usr/bin/env python3
"""Komainu and its peers, side by side, in one run.

Cases (each measured in every round, interleaved A B C D E, A B C D E, ...):
  direct         wrk -> backend (the ceiling)
  nginx          wrk -> nginx proxy_pass (upstream keep-alive) -> backend
  komainu-public wrk -> komainu, public route -> backend
  komainu-key    wrk -> komainu, API key + per-second/day/month quotas (memory store)
  komainu-redis  the same on the Redis store

Layout: each proxy has one worker (nginx: worker_processes 1; Komainu: the
whole process) pinned to CPU 0; the backend (an nginx returning a 3-byte
body), the load generator and redis-server are pinned to CPU 1. Keep-alive
on both sides, access logs off for both proxies, 64 connections, one wrk
thread. CPU per request is read from the proxy's own accounting
(/proc/PID/stat utime+stime over the round; the user/kernel split is
shown too), peak RSS from VmHWM.

Ratios to nginx are given two ways: of the medians, and paired (the
median of each round's ratio to nginx's figure in the same round). Shared
machines drift between a faster and a slower state; a round's cases run
back to back, so the paired ratio is the steadier of the two.

The fixed-rate phase runs bench/loadgen (open loop, latency counted from
each request's due time) in interleaved rounds as well, at a rate well
below what the backend side sustains (default: 30% of the direct case's
median): the backend and the load generator share CPU 1, and near its
saturation the latency measured is their queueing, not the proxy's.

Prints a table and writes JSON (default: target/bench/e2e.json).
"""
import argparse, json, os, re, shutil, signal, socket, statistics, subprocess, sys, tempfile, time, urllib.request, base64

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KOMAINU = os.path.join(ROOT, "target", "release", "komainu")
LOADGEN = os.path.join(ROOT, "target", "release", "loadgen")
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
CLK_TCK = os.sysconf("SC_CLK_TCK")
SECRET = "bench-secret-0123456789abcdef"
ADMIN = "bench:admin-secret-0123456789"
PROXY_CPU, LOAD_CPU = "0", "1"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on {port}")


def cpu_ticks(pid):
    """(user, kernel) CPU ticks of a process."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]), int(fields[12])


def peak_rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def nginx(tmp, name, server_block):
    prefix = os.path.join(tmp, name)
    os.makedirs(os.path.join(prefix, "logs"), exist_ok=True)
    conf = os.path.join(prefix, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"""
worker_processes 1;
daemon off;
master_process on;
pid {prefix}/nginx.pid;
error_log stderr crit;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  keepalive_requests 10000000;
  keepalive_timeout 300s;
  client_body_temp_path {prefix}/body; proxy_temp_path {prefix}/proxy;
  fastcgi_temp_path {prefix}/fcgi; uwsgi_temp_path {prefix}/uwsgi; scgi_temp_path {prefix}/scgi;
  {server_block}
}}
""")
    return subprocess.Popen([NGINX, "-p", prefix, "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def nginx_worker(master):
    for _ in range(100):
        out = subprocess.run(["pgrep", "-P", str(master.pid)], capture_output=True, text=True).stdout.split()
        if out:
            return int(out[0])
        time.sleep(0.05)
    raise SystemExit("nginx worker not found")


def pin(pid, cpu):
    subprocess.run(["taskset", "-a", "-p", "-c", cpu, str(pid)], stdout=subprocess.DEVNULL, check=True)


def komainu(tmp, name, store, proxy_port, admin_port, backend_port, env_extra=None, args_extra=(), exporters=()):
    doc = {
        "format": 1,
        "routes": [
            {"id": "public", "paths": ["/public", "/public/{*rest}"], "public": True,
             "backend": {"targets": [{"url": f"http://127.0.0.1:{backend_port}"}]}},
            {"id": "keyed", "paths": ["/keyed", "/keyed/{*rest}"],
             "backend": {"targets": [{"url": f"http://127.0.0.1:{backend_port}"}]}},
            # Three targets, power of two choices: what balancing costs
            # over "public" (one target), in the same run.
            {"id": "spread", "paths": ["/spread", "/spread/{*rest}"], "public": True,
             "backend": {"targets": [{"url": f"http://127.0.0.1:{backend_port}/t{i}"} for i in (1, 2, 3)],
                         "loadBalancing": {"strategy": "leastRequests"}}},
        ],
        "apikeys": [{"clientId": "bench", "clientSecret": SECRET, "routes": ["keyed"],
                     "quotas": {"perSecond": 10**12, "perDay": 10**15, "perMonth": 10**16}}],
        "exporters": list(exporters),
    }
    if store is None:
        path = os.path.join(tmp, f"{name}.json")
        with open(path, "w") as f:
            json.dump(doc, f)
        store = f"file:{path}"
    env = dict(os.environ, KOMAINU_LOG="error")
    cmd = ["taskset", "-c", PROXY_CPU, KOMAINU, "serve", "--store", store,
           "--proxy-addr", f"127.0.0.1:{proxy_port}", "--admin-addr", f"127.0.0.1:{admin_port}",
           "--admin-key", ADMIN, "--claim-secret", "bench-claim-secret", *args_extra]
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(proxy_port)
    wait_port(admin_port)
    if not store.startswith("file:"):
        req = urllib.request.Request(f"http://127.0.0.1:{admin_port}/api/import", data=json.dumps(doc).encode(),
                                     method="POST", headers={"Authorization": "Basic " + base64.b64encode(ADMIN.encode()).decode()})
        urllib.request.urlopen(req).read()
    return p


UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def parse_wrk(text):
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    lat = {}
    for pct, val, unit in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", text, re.M):
        lat[pct] = float(val) * UNITS[unit]
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    errors = re.search(r"Socket errors:.*", text)
    return rps, lat.get("50"), lat.get("99"), int(non2xx.group(1)) if non2xx else 0, errors.group(0) if errors else ""


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--fixed-rate", type=int, default=0, help="req/s of the fixed-rate phase (default: 30%% of the direct case's median)")
    ap.add_argument("--fixed-seconds", type=int, default=5)
    ap.add_argument("--fixed-rounds", type=int, default=3)
    ap.add_argument("--no-redis", action="store_true")
    ap.add_argument("--json", default=os.path.join(ROOT, "target", "bench", "e2e.json"))
    args = ap.parse_args()
    if (os.cpu_count() or 1) < 2:
        raise SystemExit("needs 2 CPUs: the proxy on one, backend and load generator on the other")

    tmp = tempfile.mkdtemp(prefix="komainu-bench-")
    procs = []
    try:
        backend_port, nginx_port = free_port(), free_port()
        backend = nginx(tmp, "backend", f"server {{ listen 127.0.0.1:{backend_port} backlog=4096; location / {{ return 200 \"ok\\n\"; }} }}")
        procs.append(backend)
        wait_port(backend_port)
        pin(nginx_worker(backend), LOAD_CPU)
        proxy = nginx(tmp, "proxy", f"""
  upstream backend {{ server 127.0.0.1:{backend_port}; keepalive 256; keepalive_requests 10000000; }}
  server {{ listen 127.0.0.1:{nginx_port} backlog=4096;
    location / {{ proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection ""; }} }}""")
        procs.append(proxy)
        wait_port(nginx_port)
        nginx_pid = nginx_worker(proxy)
        pin(nginx_pid, PROXY_CPU)
        # The peer with an access log: one JSON line per request, buffered,
        # the closest nginx has to a request event written by a file exporter.
        nginx_log_port = free_port()
        nginx_log_file = os.path.join(tmp, "nginx-access.jsonl")
        proxy_log = nginx(tmp, "proxy-log", f"""
  log_format events escape=json '{{"time":"$time_iso8601","requestId":"$request_id","method":"$request_method",'
    '"host":"$host","path":"$uri","status":$status,"bytesIn":$request_length,"bytesOut":$bytes_sent,'
    '"clientIp":"$remote_addr","totalS":$request_time,"backendS":"$upstream_response_time",'
    '"backendAddr":"$upstream_addr","userAgent":"$http_user_agent","traceparent":"$http_traceparent"}}';
  upstream backend {{ server 127.0.0.1:{backend_port}; keepalive 256; keepalive_requests 10000000; }}
  server {{ listen 127.0.0.1:{nginx_log_port} backlog=4096;
    access_log {nginx_log_file} events buffer=64k flush=1s;
    location / {{ proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection ""; }} }}""")
        procs.append(proxy_log)
        wait_port(nginx_log_port)
        nginx_log_pid = nginx_worker(proxy_log)
        pin(nginx_log_pid, PROXY_CPU)

        # Without request events (metrics, audit and alerts only) ...
        kp, ka = free_port(), free_port()
        k_mem = komainu(tmp, "memory", None, kp, ka, backend_port, args_extra=["--no-request-events"])
        procs.append(k_mem)
        # ... and with every request an event, written by a file exporter.
        ep, ea = free_port(), free_port()
        events_file = os.path.join(tmp, "events.jsonl")
        k_ev = komainu(tmp, "events", None, ep, ea, backend_port,
                       exporters=[{"id": "bench-file", "kind": "file", "path": events_file, "batchSize": 1000}])
        procs.append(k_ev)
        # ... and with every request an event kept in memory only (no
        # exporter): what building and keeping events costs, apart from
        # writing them out.
        rp, ra = free_port(), free_port()
        k_ring = komainu(tmp, "events-ring", None, rp, ra, backend_port)
        procs.append(k_ring)
        key_headers = ["-H", "Komainu-Client-Id: bench", "-H", f"Komainu-Client-Secret: {SECRET}"]
        cases = [
            ("direct", None, f"http://127.0.0.1:{backend_port}/x", []),
            ("nginx", nginx_pid, f"http://127.0.0.1:{nginx_port}/x", []),
            ("nginx-json-log", nginx_log_pid, f"http://127.0.0.1:{nginx_log_port}/x", []),
            ("komainu-public", k_mem.pid, f"http://127.0.0.1:{kp}/public/x", []),
            ("komainu-3-targets", k_mem.pid, f"http://127.0.0.1:{kp}/spread/x", []),
            ("komainu-key", k_mem.pid, f"http://127.0.0.1:{kp}/keyed/x", key_headers),
            ("komainu-key-events", k_ev.pid, f"http://127.0.0.1:{ep}/keyed/x", key_headers),
            ("komainu-key-events-ring", k_ring.pid, f"http://127.0.0.1:{rp}/keyed/x", key_headers),
        ]
        if not args.no_redis:
            rport = free_port()
            rdir = os.path.join(tmp, "redis")
            os.makedirs(rdir)
            redis = subprocess.Popen(["taskset", "-c", LOAD_CPU, "redis-server", "--port", str(rport), "--bind", "127.0.0.1",
                                      "--save", "", "--appendonly", "no", "--dir", rdir],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            procs.append(redis)
            wait_port(rport)
            rp, ra = free_port(), free_port()
            k_redis = komainu(tmp, "redis", f"redis://127.0.0.1:{rport}/0", rp, ra, backend_port)
            procs.append(k_redis)
            cases.append(("komainu-redis", k_redis.pid, f"http://127.0.0.1:{rp}/keyed/x", key_headers))

        results = {name: {"rps": [], "p50Ms": [], "p99Ms": [], "cpuUsPerReq": [], "userUsPerReq": [], "kernelUsPerReq": [],
                          "non2xx": 0} for name, *_ in cases}
        # Warm up every path once (connections, pools, caches).
        for name, pid, url, headers in cases:
            subprocess.run(["taskset", "-c", LOAD_CPU, "wrk", "-t1", f"-c{args.connections}", "-d1s", url] + headers,
                           capture_output=True, text=True)
        for r in range(args.rounds):
            for name, pid, url, headers in cases:
                before = cpu_ticks(pid) if pid else (0, 0)
                out = subprocess.run(["taskset", "-c", LOAD_CPU, "wrk", "-t1", f"-c{args.connections}", f"-d{args.seconds}s",
                                      "--latency", url] + headers, capture_output=True, text=True).stdout
                after = cpu_ticks(pid) if pid else (0, 0)
                rps, p50, p99, non2xx, errors = parse_wrk(out)
                res = results[name]
                res["rps"].append(rps)
                res["p50Ms"].append(p50)
                res["p99Ms"].append(p99)
                res["non2xx"] += non2xx
                if pid:
                    per_req = 1e6 / CLK_TCK / (rps * args.seconds)
                    user, kernel = (after[0] - before[0]) * per_req, (after[1] - before[1]) * per_req
                    res["cpuUsPerReq"].append(user + kernel)
                    res["userUsPerReq"].append(user)
                    res["kernelUsPerReq"].append(kernel)
                print(f"round {r + 1}/{args.rounds} {name:15} {rps:10.0f} req/s  p50 {p50:.3f} ms  p99 {p99:.3f} ms {errors}", file=sys.stderr)

        ceiling = statistics.median(results["direct"]["rps"])
        rate = args.fixed_rate or int(ceiling * 0.3 / 1000) * 1000
        rounds = {name: [] for name, *_ in cases}
        for r in range(args.fixed_rounds):
            for name, pid, url, headers in cases:
                cmd = ["taskset", "-c", LOAD_CPU, LOADGEN, "--url", url, "--rate", str(rate),
                       "--connections", str(args.connections), "--duration", str(args.fixed_seconds)]
                for i in range(1, len(headers), 2):
                    cmd += ["--header", headers[i]]
                got = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
                rounds[name].append(got)
                print(f"fixed round {r + 1}/{args.fixed_rounds} {rate}/s {name:15} p50 {got['p50Us']} us  p99 {got['p99Us']} us",
                      file=sys.stderr)
        fixed = {name: {"p50Us": statistics.median(g["p50Us"] for g in got),
                        "p99Us": statistics.median(g["p99Us"] for g in got),
                        "p99UsMin": min(g["p99Us"] for g in got), "p99UsMax": max(g["p99Us"] for g in got),
                        "errors": sum(g["errors"] for g in got), "rounds": got}
                 for name, got in rounds.items() if got}

        rss = {"nginx": peak_rss_kib(nginx_pid), "komainu-memory": peak_rss_kib(k_mem.pid)}
        if not args.no_redis:
            rss["komainu-redis"] = peak_rss_kib(k_redis.pid)
        nginx_rps = statistics.median(results["nginx"]["rps"])
        nginx_cpu = statistics.median(results["nginx"]["cpuUsPerReq"])
        summary = {"settings": {
            "rounds": args.rounds, "secondsPerRound": args.seconds, "connections": args.connections,
            "layout": "proxy (1 worker) pinned to CPU 0; backend nginx, wrk/loadgen and redis-server pinned to CPU 1",
            "loadTool": "wrk -t1 (closed loop); loadgen (open loop, latency from due time) for the fixed-rate phase",
            "logging": "access logs off (nginx access_log off; komainu KOMAINU_LOG=error)",
            "fixedRate": rate, "fixedRounds": args.fixed_rounds, "fixedSecondsPerRound": args.fixed_seconds},
            "cases": {}, "peakRssKiB": rss}
        print()
        def paired(name, key):
            ratios = [a / b for a, b in zip(results[name][key], results["nginx"][key])]
            return (statistics.median(ratios), min(ratios), max(ratios)) if ratios else None

        print(f"{'case':16}{'req/s median (min-max)':>30}{'x nginx':>9}{'paired':>18}{'p50 ms':>9}{'p99 ms':>9}"
              f"{'cpu us/req':>12}{'user+kernel':>14}{'x nginx':>9}{'paired':>18}{'fixed p50 us':>14}{'fixed p99 us (min-max)':>26}")
        for name, *_ in cases:
            v = results[name]
            med = statistics.median(v["rps"])
            cpu = statistics.median(v["cpuUsPerReq"]) if v["cpuUsPerReq"] else None
            user = statistics.median(v["userUsPerReq"]) if v["userUsPerReq"] else None
            kernel = statistics.median(v["kernelUsPerReq"]) if v["kernelUsPerReq"] else None
            f = fixed.get(name)
            row = {"rpsMedian": med, "rpsMin": min(v["rps"]), "rpsMax": max(v["rps"]), "ratioToNginx": med / nginx_rps,
                   "p50MsMedian": statistics.median(v["p50Ms"]), "p99MsMedian": statistics.median(v["p99Ms"]),
                   "cpuUsPerRequest": cpu, "userUsPerRequest": user, "kernelUsPerRequest": kernel,
                   "cpuRatioToNginx": cpu / nginx_cpu if cpu else None,
                   "pairedRatioToNginx": paired(name, "rps"),
                   "pairedCpuRatioToNginx": paired(name, "cpuUsPerReq") if cpu else None,
                   "non2xx": v["non2xx"], "fixedRate": f}
            summary["cases"][name] = row
            def span(p):
                return f"{p[0]:6.2f} ({p[1]:.2f}-{p[2]:.2f})" if p else f"{'-':>18}"
            cpu_text = (f"{cpu:12.1f}{user:7.1f}+{kernel:<6.1f}{cpu / nginx_cpu:9.2f}{span(row['pairedCpuRatioToNginx']):>18}"
                        if cpu else f"{'-':>12}{'-':>14}{'-':>9}{'-':>18}")
            print(f"{name:16}{med:12.0f} ({min(v['rps']):.0f}-{max(v['rps']):.0f}){row['ratioToNginx']:9.2f}"
                  f"{span(row['pairedRatioToNginx']):>18}"
                  f"{row['p50MsMedian']:9.3f}{row['p99MsMedian']:9.3f}{cpu_text}"
                  + (f"{f['p50Us']:14.0f}{f['p99Us']:12.0f} ({f['p99UsMin']}-{f['p99UsMax']})" if f else "  (no fixed-rate phase)"))
        spread, one = results["komainu-3-targets"]["cpuUsPerReq"], results["komainu-public"]["cpuUsPerReq"]
        if spread and one:
            diffs = sorted(a - b for a, b in zip(spread, one))
            summary["balancingCostUs"] = {"median": statistics.median(diffs), "min": diffs[0], "max": diffs[-1]}
            print(f"\nthree targets (leastRequests) over one: {statistics.median(diffs):+.2f} us CPU/request "
                  f"(paired rounds: {diffs[0]:+.2f} to {diffs[-1]:+.2f})")
        ev, base = results["komainu-key-events"], results["komainu-key"]
        ev_rps = [a / b for a, b in zip(ev["rps"], base["rps"])]
        ev_cpu = [a / b for a, b in zip(ev["cpuUsPerReq"], base["cpuUsPerReq"])]
        summary["eventsCost"] = {"pairedRps": statistics.median(ev_rps), "pairedCpu": statistics.median(ev_cpu)}
        nl, n0 = results["nginx-json-log"], results["nginx"]
        nl_cpu = statistics.median([a / b for a, b in zip(nl["cpuUsPerReq"], n0["cpuUsPerReq"])])
        nl_rps = statistics.median([a / b for a, b in zip(nl["rps"], n0["rps"])])
        summary["nginxLogCost"] = {"pairedRps": nl_rps, "pairedCpu": nl_cpu}
        print(f"nginx with a JSON access log vs without, paired medians: req/s x{nl_rps:.3f}, cpu/req x{nl_cpu:.3f}")
        exported = sum(1 for _ in open(events_file)) if os.path.exists(events_file) else 0
        summary["eventsCost"]["linesExported"] = exported
        ring = results["komainu-key-events-ring"]
        ring_cpu = statistics.median([a / b for a, b in zip(ring["cpuUsPerReq"], base["cpuUsPerReq"])])
        ring_rps = statistics.median([a / b for a, b in zip(ring["rps"], base["rps"])])
        summary["eventsCost"]["keptOnly"] = {"pairedRps": ring_rps, "pairedCpu": ring_cpu}
        print(f"\nevents (file exporter, every request) vs none, key + 3 quotas, paired medians: "
              f"req/s x{statistics.median(ev_rps):.3f}, cpu/req x{statistics.median(ev_cpu):.3f}; {exported} JSON lines exported")
        print(f"events kept in memory only (no exporter) vs none, paired medians: "
              f"req/s x{ring_rps:.3f}, cpu/req x{ring_cpu:.3f}")
        rss["komainu-events"] = peak_rss_kib(k_ev.pid)
        print(f"\npeak RSS (KiB): {rss}")
        print(f"fixed-rate phase: {rate} req/s, {args.fixed_rounds} interleaved rounds of {args.fixed_seconds} s per case "
              f"(open loop, latency from due time; medians)")
        os.makedirs(os.path.dirname(args.json), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=2)
        print(f"JSON: {args.json}")
    finally:
        for p in reversed(procs):
            try:
                p.send_signal(signal.SIGTERM)
                p.wait(timeout=10)
            except Exception:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
