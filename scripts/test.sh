#!/usr/bin/env bash
# The test command: set-up (once), formatting, the whole test suite in the release profile
# (the same profile as the demo, so Burn compiles once), and the browser app built for wasm32
# and tested in headless Chromium (WebGPU, then the CPU fallback).
#
# Clippy runs inside those two builds (scripts/lint-build.sh): scripts/clippy-rustc compiles the
# workspace's own crates (clippy-driver, warnings denied), so the dependencies compile once per
# target instead of once for a separate `cargo clippy` check pass and again for the build.
# Every crate and target of the workspace is linted natively, and the browser-only code (in
# app/ and web/) on wasm32, as before.
#
# The page's build and its headless-Chromium test run beside the native build and tests, in a
# target folder of their own (the two share no artifact: another target, another profile): on
# two cores each alone leaves a core idle much of the time (one large crate compiling, links,
# the tests on the software GPU, the page training on one thread). The page is built in about a
# third of the native build's time, so its browser test runs while the native build still
# compiles. Its output is shown when it is done.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lint-build.sh

./scripts/setup.sh
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"

cargo fmt --all -- --check

web_target="${CARGO_TARGET_DIR:-target}-web"
web_log=$(mktemp)
# its own process group (setsid), so that a failure here stops its cargo, server and browser too
MMANET_LINT_BUILD=1 CARGO_TARGET_DIR="$web_target" setsid ./scripts/web.sh test >"$web_log" 2>&1 &
web_job=$!
trap 'kill -- -"$web_job" 2>/dev/null || true' EXIT

mapfile -t lint_config < <(lint_build_config release)
RUSTC_WORKSPACE_WRAPPER="$LINT_WRAPPER" \
  cargo test --release --workspace --all-targets "${lint_config[@]}"

if ! wait "$web_job"; then
  cat "$web_log"
  echo "test: the page's build or its browser test failed" >&2
  exit 1
fi
trap - EXIT
cat "$web_log"
echo "all tests passed"
