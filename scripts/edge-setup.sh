#!/usr/bin/env bash
# Installs what building and testing the Worker needs, offline-friendly,
# skipping what is already there at the right version:
# the wasm32 target, worker-build and wasm-bindgen-cli (the same version as
# the wasm-bindgen crate in Cargo.lock), and the pinned npm tools
# (wrangler, Miniflare, esbuild, wasm-opt, and the Node 22 they need).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  rustup target add wasm32-unknown-unknown
fi

worker_build_version=0.8.7
if [ "$(worker-build --version 2>/dev/null || true)" != "$worker_build_version" ]; then
  cargo install worker-build --version "$worker_build_version" --debug
fi

bindgen_version=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/"/, "", $3); print $3; exit }' Cargo.lock)
if [ "$(wasm-bindgen --version 2>/dev/null || true)" != "wasm-bindgen $bindgen_version" ]; then
  # Not --locked: its lock file names a release the registry lacks.
  cargo install wasm-bindgen-cli --version "$bindgen_version" --debug
fi

lock_sum=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -x node_modules/.bin/wrangler ] || [ "$(cat node_modules/.komainu-lock 2>/dev/null || true)" != "$lock_sum" ]; then
  WRANGLER_SEND_METRICS=false DO_NOT_TRACK=1 npm ci --no-audit --no-fund
  echo "$lock_sum" > node_modules/.komainu-lock
fi
