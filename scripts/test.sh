#!/usr/bin/env bash
# The test command: set-up (once), formatting, the whole test suite in the release profile
# (the same profile as the demo, so Burn compiles once), and the browser app built for wasm32
# and tested in headless Chromium (WebGPU, then the CPU fallback).
#
# Clippy runs inside those two builds (scripts/lint-build.sh): scripts/clippy-rustc compiles the
# workspace's own crates (clippy-driver, warnings denied), so the dependencies compile once per
# target instead of once for a separate `cargo clippy` check pass and again for the build
# (about 6 minutes of a cold run). Every crate and target of the workspace is linted natively,
# and the browser-only code (in app/ and web/) on wasm32, as before.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lint-build.sh

./scripts/setup.sh
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"

cargo fmt --all -- --check
mapfile -t lint_config < <(lint_build_config release)
RUSTC_WORKSPACE_WRAPPER="$LINT_WRAPPER" \
  cargo test --release --workspace --all-targets "${lint_config[@]}"
MMANET_LINT_BUILD=1 ./scripts/web.sh test
echo "all tests passed"
