#!/usr/bin/env bash
# What the fuzz targets need: cargo-fuzz, pinned, built from crates.io with
# its own lock file. libFuzzer itself comes with the libfuzzer-sys crate
# (built with the machine's C++ compiler); no nightly toolchain is needed
# because scripts/fuzz.sh sets RUSTC_BOOTSTRAP=1 for the -Z flags
# cargo-fuzz passes. Safe to run again; does nothing when the pinned
# version is installed.
set -euo pipefail

version=0.13.2
if cargo fuzz --version 2>/dev/null | grep -qx "cargo-fuzz $version"; then
  exit 0
fi
echo "== installing cargo-fuzz $version"
cargo install cargo-fuzz --version "$version" --locked --quiet
