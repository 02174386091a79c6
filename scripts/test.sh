#!/usr/bin/env bash
# The test command: set-up (once), formatting, the whole test suite in the release profile
# (the same profile as the demo, so Burn compiles once), and the wasm32 build check of core.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/setup.sh
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"

cargo fmt --all -- --check
cargo clippy --release --workspace --all-targets -- -D warnings
cargo test --release --workspace
cargo check --release --target wasm32-unknown-unknown -p mmanet-core
echo "all tests passed"
