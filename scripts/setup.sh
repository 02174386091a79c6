#!/usr/bin/env bash
# One-time machine set-up for the tests: a software Vulkan adapter for the wgpu tests
# (Debian's mesa-vulkan-drivers), Xvfb for the desktop-app window test, rustfmt and clippy,
# and the wasm32 target for the browser build check.
# Safe to run again: it only installs what is missing.
set -euo pipefail

# Debian packages: a software Vulkan adapter for the wgpu tests (mesa-vulkan-drivers) and a
# virtual X display for the desktop-app test (xvfb, xauth for xvfb-run).
missing=()
ls /usr/share/vulkan/icd.d/lvp_icd*.json >/dev/null 2>&1 || missing+=(mesa-vulkan-drivers)
command -v xvfb-run >/dev/null 2>&1 || missing+=(xvfb)
command -v xauth >/dev/null 2>&1 || missing+=(xauth)
if [ ${#missing[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
      if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
        echo "setup: need root (or sudo) to install ${missing[*]}; the wgpu and window tests will fail without them" >&2
      fi
    fi
    echo "setup: installing ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "setup: no apt-get; install a Vulkan driver (e.g. mesa lavapipe) and Xvfb yourself" >&2
  fi
fi

if command -v rustup >/dev/null 2>&1; then
  for component in rustfmt clippy; do
    if ! rustup component list --installed | grep -q "^$component"; then
      echo "setup: adding the $component component"
      rustup component add "$component"
    fi
  done
  if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    echo "setup: adding the wasm32-unknown-unknown target"
    rustup target add wasm32-unknown-unknown
  fi
fi
