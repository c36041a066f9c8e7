#!/usr/bin/env python3
"""How late is a configuration change? Starts the release `komainu` (memory
store), then 50 times: PATCH a key's daily quota through the admin API and
send a proxied call at once; counts the calls that did not obey the new
quota yet, and times PATCH response -> proxied response.

    cargo build --release -p komainu && python3 bench/hot_change.py
"""
import base64, json, os, subprocess, sys, time, urllib.error, urllib.request

from e2e import KOMAINU, free_port, wait_port  # the end-to-end benchmark's helpers


def main():
    proxy, admin = free_port(), free_port()
    proc = subprocess.Popen([KOMAINU, "serve", "--store", "memory", "--proxy-addr", f"127.0.0.1:{proxy}",
                             "--admin-addr", f"127.0.0.1:{admin}", "--admin-key", "ops:s", "--claim-secret", "c"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ, KOMAINU_LOG="error"))
    try:
        wait_port(admin)
        api, base = f"http://127.0.0.1:{admin}/api", f"http://127.0.0.1:{proxy}"
        auth = {"Authorization": "Basic " + base64.b64encode(b"ops:s").decode(), "Content-Type": "application/json"}

        def call(method, url, body=None, headers=auth):
            data = json.dumps(body).encode() if body is not None else None
            req = urllib.request.Request(url, data=data, method=method, headers=headers)
            try:
                r = urllib.request.urlopen(req)
                return r.status, r.headers, r.read()
            except urllib.error.HTTPError as e:
                return e.code, e.headers, e.read()

        # The backend is the admin listener's own health endpoint.
        call("POST", api + "/routes", {"id": "r", "paths": ["/api/health"],
                                       "backend": {"targets": [{"url": f"http://127.0.0.1:{admin}"}]}})
        _, _, body = call("POST", api + "/apikeys", {"clientId": "k", "routes": ["r"], "quotas": {"perDay": 1000}})
        key = {"Komainu-Client-Id": "k", "Komainu-Client-Secret": json.loads(body)["clientSecret"]}
        late, gaps = 0, []
        for i in range(50):
            limit = 100000 + i
            call("PATCH", api + "/apikeys/k", {"quotas": {"perDay": limit}})
            t0 = time.perf_counter()
            _, headers, _ = call("GET", base + "/api/health", headers=key)
            gaps.append((time.perf_counter() - t0) * 1e3)
            if f"q={limit};" not in headers["ratelimit-policy"]:
                late += 1
        gaps.sort()
        print(f"50 PATCHes: calls that did not obey the change yet = {late}; "
              f"PATCH response -> next proxied response: median {gaps[25]:.2f} ms, max {gaps[-1]:.2f} ms")
        return 1 if late else 0
    finally:
        proc.terminate()
        proc.wait(timeout=10)


if __name__ == "__main__":
    sys.exit(main())
