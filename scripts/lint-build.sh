# Sourced by scripts/test.sh and scripts/web.sh: how the test command builds this workspace's
# own crates so that Clippy lints them during the build (see scripts/clippy-rustc).
#
# clippy-driver compiles without rustc's MIR optimisations (Clippy's lints read unoptimised
# MIR), which makes our kernels measurably slower (the `small` training step about 1.4× slower),
# and Cargo does not tell such builds apart by the compiler wrapper alone. So the linted build
# also gives the workspace's crates line tables (`debug = "line-tables-only"`: file and line in
# a failing test's backtrace), a profile setting Cargo does tell apart: the linted artifacts
# never stand in for the ones `cargo build --release` (the demo, the benchmarks) makes, and the
# dependencies, which neither setting touches, still compile once for both.

# The workspace's package names (one top-level folder per member).
workspace_packages() {
  local root manifest
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  for manifest in "$root"/*/Cargo.toml; do
    sed -n 's/^name = "\(.*\)"$/\1/p' "$manifest" | head -n 1
  done
}

# `--config` arguments (one per line) that give the workspace's packages line tables in the
# profile named $1.
lint_build_config() {
  local package
  for package in $(workspace_packages); do
    printf -- '--config\nprofile.%s.package.%s.debug="line-tables-only"\n' "$1" "$package"
  done
}

# The compiler wrapper of the linted build.
LINT_WRAPPER="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/clippy-rustc"
