#!/usr/bin/env bash
# One-time machine set-up for the tests: a software Vulkan adapter for the wgpu tests
# (Debian's mesa-vulkan-drivers), rustfmt and clippy, and the wasm32 target for the browser
# build check.
# Safe to run again: it only installs what is missing.
set -euo pipefail

if ! ls /usr/share/vulkan/icd.d/lvp_icd*.json >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
      if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
        echo "setup: need root (or sudo) to install mesa-vulkan-drivers; the wgpu test will fail without a Vulkan adapter" >&2
      fi
    fi
    echo "setup: installing mesa-vulkan-drivers (software Vulkan adapter for the wgpu tests)"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq mesa-vulkan-drivers >/dev/null
  else
    echo "setup: no apt-get; install a Vulkan driver (e.g. mesa lavapipe) yourself" >&2
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
