#!/usr/bin/env bash
# The browser app.
#   scripts/web.sh build          builds the page into web/dist (index.html, JS glue, .wasm, data)
#   scripts/web.sh serve [PORT]   serves web/dist on http://127.0.0.1:PORT (default 8080)
#   scripts/web.sh test [--built] builds (unless --built: the page in web/dist is current),
#                                 serves on a free port, and runs the headless-Chromium test
#                                 (web/tests/browser.mjs): WebGPU, then the CPU fallback
# Tools it needs and installs when missing: the wasm32 target, wasm-bindgen-cli at exactly the
# version of the wasm-bindgen crate (built from source once: a few minutes), and for `test`
# Debian's chromium and the npm package playwright-core. wasm-opt (Debian's binaryen) shrinks
# the module when it is there.
set -euo pipefail
cd "$(dirname "$0")/.."

WASM_BINDGEN_VERSION=0.2.130 # = the wasm-bindgen crate in Cargo.lock
DIST=web/dist
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
TOOLS="${MMANET_TOOLS:-$HOME/.cache/mmanet/tools}"
export PATH="$TOOLS/bin:$PATH"

need_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "web: need root (or sudo) for: $*" >&2
    return 1
  fi
}

ensure_build_tools() {
  if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    echo "web: adding the wasm32-unknown-unknown target"
    rustup target add wasm32-unknown-unknown
  fi
  if [ "$(wasm-bindgen --version 2>/dev/null)" != "wasm-bindgen $WASM_BINDGEN_VERSION" ]; then
    echo "web: installing wasm-bindgen-cli $WASM_BINDGEN_VERSION into $TOOLS (once; a few minutes)"
    cargo install --quiet --root "$TOOLS" wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION"
  fi
  if ! command -v wasm-opt >/dev/null && command -v apt-get >/dev/null; then
    echo "web: installing binaryen (wasm-opt)"
    need_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq binaryen >/dev/null ||
      echo "web: no wasm-opt; the module stays unshrunk" >&2
  fi
}

build() {
  ensure_build_tools
  if [ "${MMANET_LINT_BUILD:-0}" = 1 ]; then
    # the test command's build: Clippy lints the browser-only code while it compiles
    . scripts/lint-build.sh
    local lint_config
    mapfile -t lint_config < <(lint_build_config web)
    RUSTC_WORKSPACE_WRAPPER="$LINT_WRAPPER" \
      cargo build --profile web --target wasm32-unknown-unknown -p mmanet-web "${lint_config[@]}"
  else
    cargo build --profile web --target wasm32-unknown-unknown -p mmanet-web
  fi
  local wasm="$TARGET_DIR/wasm32-unknown-unknown/web/mmanet_web.wasm"
  local before
  before=$(stat -c %s "$wasm")
  # wasm-opt goes before wasm-bindgen: Debian's binaryen (108) breaks wasm-bindgen's externref
  # table when it runs after. -g keeps function names for readable crash stacks.
  if command -v wasm-opt >/dev/null; then
    local opt="$TARGET_DIR/wasm-opt/mmanet_web.wasm"
    mkdir -p "$(dirname "$opt")"
    if wasm-opt -Os -g --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
      --enable-mutable-globals --enable-reference-types --enable-multivalue --enable-simd "$wasm" -o "$opt"; then
      wasm="$opt"
    else
      echo "web: wasm-opt failed; the module stays unshrunk" >&2
    fi
  fi
  rm -rf "$DIST"
  mkdir -p "$DIST"
  wasm-bindgen --target web --no-typescript --out-dir "$DIST" "$wasm"
  local out="$DIST/mmanet_web_bg.wasm"
  cp web/static/index.html web/static/worker.js "$DIST/"
  # the data is inside the module; its files and attribution (CC BY 4.0) travel with the page
  mkdir -p "$DIST/data"
  cp -r core/data/mfeat "$DIST/data/"
  local after gz
  after=$(stat -c %s "$out")
  gz=$(gzip -9 -c "$out" | wc -c)
  echo "web: built $DIST: mmanet_web_bg.wasm $((after / 1000000)).$(((after / 100000) % 10)) MB" \
    "($((before / 1000000)) MB before wasm-opt; $((gz / 1000000)).$(((gz / 100000) % 10)) MB gzipped)"
}

serve() {
  local port="${1:-8080}"
  [ -f "$DIST/index.html" ] || { echo "web: $DIST is empty; run scripts/web.sh build first" >&2; exit 1; }
  echo "web: serving $DIST on http://127.0.0.1:$port/ (WebGPU needs localhost or https)"
  exec python3 -m http.server --bind 127.0.0.1 "$port" --directory "$DIST"
}

ensure_test_tools() {
  if ! command -v "${CHROMIUM:-chromium}" >/dev/null; then
    echo "web: installing Debian's chromium"
    need_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  fi
  if [ ! -d web/tests/node_modules/playwright-core ]; then
    echo "web: installing playwright-core (npm)"
    (cd web/tests && npm ci --no-audit --no-fund --silent)
  fi
}

test_page() {
  # `--built`: the page in web/dist was just built (scripts/test.sh builds it beside the
  # native tests)
  if [ "${1:-}" != "--built" ] || [ ! -f "$DIST/index.html" ]; then
    build
  fi
  ensure_test_tools
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  python3 -m http.server --bind 127.0.0.1 "$port" --directory "$DIST" >/dev/null 2>&1 &
  WEB_SERVER_PID=$!
  trap 'kill "$WEB_SERVER_PID" 2>/dev/null || true' EXIT
  for _ in $(seq 50); do
    curl -sf "http://127.0.0.1:$port/index.html" >/dev/null 2>&1 && break
    sleep 0.1
  done
  node web/tests/browser.mjs "http://127.0.0.1:$port" web/tests/out
}

case "${1:-}" in
  build) build ;;
  serve) serve "${2:-8080}" ;;
  test) test_page "${2:-}" ;;
  *)
    sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
