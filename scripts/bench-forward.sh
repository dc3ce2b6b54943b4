#!/usr/bin/env bash
# Builds and runs issue 5's benchmark: the forwarder delivering to the local
# lake over loopback through the AWS SDK (one busy integration next to a
# one-event-per-call sender, 1,000 integrations x 1,000 events, latency at
# 1,000 events/s). Results: bench-out/forward.json and bench-out/forward-run.log.
# Arguments go to auditlake-forward-bench, e.g. `--database-url postgres://...`.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
mkdir -p bench-out
cargo build --release -p auditlake-bench --bin auditlake-forward-bench
./target/release/auditlake-forward-bench --out bench-out "$@" 2>&1 | tee bench-out/forward-run.log
