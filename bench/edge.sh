#!/usr/bin/env bash
# Requests/s and latency through the Worker in workerd (Miniflare), on a
# public route and on a route with an API key check (and a daily quota:
# one counter Durable Object call per request). Needs the Worker built
# (./scripts/edge-setup.sh && ./edge/build.sh) and wrk.
#   ./bench/edge.sh [seconds] [connections]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
connections=${2:-32}
command -v wrk >/dev/null 2>&1 || { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
[ -f edge/build/index.js ] || ./edge/build.sh

backend_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# The backend: nginx answering 3 bytes (installed if missing).
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null; }
ngx=$(mktemp -d); mkdir -p "$ngx/logs"
cat > "$ngx/nginx.conf" <<NGX
worker_processes 1; daemon off; pid $ngx/nginx.pid; error_log stderr crit;
events { worker_connections 4096; }
http { access_log off; client_body_temp_path $ngx/b; proxy_temp_path $ngx/p; fastcgi_temp_path $ngx/f; uwsgi_temp_path $ngx/u; scgi_temp_path $ngx/s;
  server { listen 127.0.0.1:$backend_port; location / { return 200 "ok\n"; } } }
NGX
"$(command -v nginx || echo /usr/sbin/nginx)" -p "$ngx" -c "$ngx/nginx.conf" &
backend=$!
fifo=$(mktemp -u); mkfifo "$fifo"
node_modules/.bin/node edge/test/worker.mjs --admin-key bench:admin-secret-0123456789 --claim-secret bench < "$fifo" > "$fifo.out" &
worker=$!
exec 3>"$fifo"
trap 'exec 3>&-; kill $backend 2>/dev/null; wait $worker 2>/dev/null; rm -rf "$fifo" "$fifo.out" "$ngx"' EXIT
for _ in $(seq 100); do [ -s "$fifo.out" ] && break; sleep 0.1; done
url=$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["url"])' "$fifo.out")
curl -sf -u bench:admin-secret-0123456789 "$url/_komainu/api/import" -d "{\"format\":1,
  \"routes\":[{\"id\":\"open\",\"paths\":[\"/open\"],\"public\":true,\"backend\":{\"targets\":[{\"url\":\"http://127.0.0.1:$backend_port\"}]}},
              {\"id\":\"keyed\",\"paths\":[\"/keyed\"],\"backend\":{\"targets\":[{\"url\":\"http://127.0.0.1:$backend_port\"}]}}],
  \"apikeys\":[{\"clientId\":\"bench\",\"clientSecret\":\"bench-secret-0123456789\",\"routes\":[\"keyed\"],\"quotas\":{\"perDay\":1000000000}}]}" >/dev/null
echo "Worker in Miniflare at $url; wrk -t1 -c$connections -d${seconds}s; backend: nginx (3-byte body)"
for name in public api-key+quota; do
  if [ "$name" = public ]; then
    path=/open; set --
  else
    path=/keyed; set -- -H "Komainu-Client-Id: bench" -H "Komainu-Client-Secret: bench-secret-0123456789"
  fi
  wrk -t1 -c2 -d1s "$url$path" "$@" >/dev/null 2>&1 || true
  out=$(wrk -t1 -c"$connections" -d"${seconds}s" --latency "$url$path" "$@")
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p50=$(echo "$out" | awk '$1=="50%" {print $2}')
  p99=$(echo "$out" | awk '$1=="99%" {print $2}')
  non2xx=$(echo "$out" | awk '/Non-2xx/ {print $5}')
  printf '%-15s %10s req/s   p50 %-8s p99 %-8s non-2xx %s\n' "$name" "$rps" "$p50" "$p99" "${non2xx:-0}"
done
