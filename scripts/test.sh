#!/usr/bin/env bash
# The test command: set-up (once), formatting, the whole test suite in the release profile
# (the same profile as the demo, so Burn compiles once), and the browser app built for wasm32
# and tested in headless Chromium (WebGPU, then the CPU fallback).
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/setup.sh
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"

cargo fmt --all -- --check
cargo clippy --release --workspace --all-targets -- -D warnings
cargo test --release --workspace
# the browser-only code (in app/ and web/) is linted for the target it builds for
cargo clippy --profile web --target wasm32-unknown-unknown -p mmanet-web -- -D warnings
./scripts/web.sh test
echo "all tests passed"
