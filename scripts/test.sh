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
