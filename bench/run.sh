#!/usr/bin/env bash
# End-to-end benchmark: Komainu against nginx (and the bare backend), in one
# run, interleaved. Installs nginx, wrk and redis-server from Debian packages
# when missing, builds Komainu and the fixed-rate load generator in release
# mode, then runs bench/e2e.py (options: see `bench/e2e.py --help`).
#
#   ./bench/run.sh                 # 5 rounds of 5 s per case, then a fixed-rate phase
#   ./bench/run.sh --rounds 3 --seconds 3
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq "${need[@]}" >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq "${need[@]}"; }
fi

cargo build --release -p komainu -p komainu-loadgen
exec python3 bench/e2e.py "$@"
