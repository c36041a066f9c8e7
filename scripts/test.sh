#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs what it needs, then
# checks formatting, lints, the core on wasm32, and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

# A clean build gains nothing from incremental compilation, which only adds
# tens of gigabytes to target/.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

step() { printf '\n==> %s\n' "$*"; }

step "edge toolchain: wasm32 target, worker-build, wasm-bindgen-cli, wrangler + Miniflare (skipped when present)"
./scripts/edge-setup.sh

step "redis-server (the Redis store tests run a real one), openssl (the https backend test makes a certificate), promtool (Debian's prometheus: it parses /metrics), chromium (the UI's browser tests)"
need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null 2>&1 \
      || { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}"; }
  else
    echo "missing ${need[*]} and apt-get is not available: install Redis 7 or newer, openssl, prometheus (promtool) and chromium" >&2
    exit 1
  fi
fi
redis-server --version
promtool --version | head -1
chromium --version 2>/dev/null | tail -1

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --exclude komainu-edge --all-targets -- -D warnings
cargo clippy -p komainu-edge --target wasm32-unknown-unknown -- -D warnings

step "komainu-core builds for wasm32 (no runtime, no I/O)"
cargo check -p komainu-core --target wasm32-unknown-unknown

step "build the Worker (release, through wrangler.toml's build command) and validate the bundle: wrangler deploy --dry-run"
# node_modules/.bin first: wrangler needs the pinned Node 22.
PATH="$PWD/node_modules/.bin:$PATH" \
WRANGLER_SEND_METRICS=false WRANGLER_SEND_ERROR_REPORTS=false DO_NOT_TRACK=1 CLOUDFLARE_CF_FETCH_ENABLED=false \
  wrangler deploy --dry-run --outdir target/wrangler-dry-run
printf 'Worker wasm: %s bytes raw, %s bytes gzip\n' \
  "$(wc -c < edge/build/index_bg.wasm)" "$(gzip -9 -c edge/build/index_bg.wasm | wc -c)"

step "build the komainu binary for the end-to-end tests"
cargo build -p komainu

step "tests: core units, native units, stores, end-to-end against the real binary and the real Worker"
cargo test --workspace --exclude komainu-edge

step "fuzz targets: build them (cargo-fuzz, installed when missing) and run each briefly"
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked --quiet
(
  cd fuzz
  cargo fuzz build -s none
  for target in $(cargo fuzz list); do
    cargo fuzz run -s none "$target" -- -max_total_time="${KOMAINU_FUZZ_SECONDS:-10}" -print_final_stats=0 2>&1 \
      | grep -E '^Done|ERROR|panicked' || true
    if [ -d "artifacts/$target" ] && [ -n "$(ls -A "artifacts/$target" 2>/dev/null)" ]; then
      echo "fuzz target $target found a failing input: fuzz/artifacts/$target" >&2
      exit 1
    fi
  done
)

printf '\nAll checks passed.\n'
