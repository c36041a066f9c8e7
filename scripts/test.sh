#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs what it needs, then
# checks formatting, lints, the core on wasm32, and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "toolchain: wasm32 target"
if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  rustup target add wasm32-unknown-unknown
fi

step "redis-server (the Redis store tests run a real one)"
if ! command -v redis-server >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq redis-server >/dev/null 2>&1 \
      || { apt-get update -qq && apt-get install -y -qq redis-server; }
  else
    echo "redis-server is missing and apt-get is not available: install Redis 7 or newer" >&2
    exit 1
  fi
fi
redis-server --version

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets -- -D warnings

step "komainu-core builds for wasm32 (no runtime, no I/O)"
cargo check -p komainu-core --target wasm32-unknown-unknown

step "build the komainu binary for the end-to-end tests"
cargo build -p komainu

step "tests: core units, native units, end-to-end against the real binary"
cargo test --workspace

printf '\nAll checks passed.\n'
