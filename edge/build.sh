#!/usr/bin/env bash
# Builds the Worker (edge/build/) with worker-build, offline: wasm-bindgen,
# wasm-opt and esbuild come from the pinned local installs instead of being
# downloaded. Used by wrangler.toml's [build] command and by the tests.
#   edge/build.sh            release build
#   edge/build.sh --dev      faster, unoptimized
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
export WASM_BINDGEN_BIN="${WASM_BINDGEN_BIN:-$(command -v wasm-bindgen || echo "$HOME/.cargo/bin/wasm-bindgen")}"
export WASM_OPT_BIN="${WASM_OPT_BIN:-$root/node_modules/.bin/wasm-opt}"
export ESBUILD_BIN="${ESBUILD_BIN:-$root/node_modules/.bin/esbuild}"
for tool in "$WASM_BINDGEN_BIN" "$WASM_OPT_BIN" "$ESBUILD_BIN"; do
  [ -x "$tool" ] || { echo "missing $tool: run ./scripts/edge-setup.sh" >&2; exit 1; }
done
mode=--release
[ "${1:-}" = "--dev" ] && mode=--dev
cd "$root/edge"
exec worker-build "$mode"
