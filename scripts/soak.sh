#!/usr/bin/env bash
# Builds and runs issue 7's load and soak run: one release `auditlake serve`
# (SQLite in a temporary directory, its lake on, forwarding to that lake)
# under ingest, search and lake queries at once for 10 minutes, then an exact
# check that every event reached every integration that should have it.
# Results: bench-out/soak.md, bench-out/soak.json, bench-out/soak-run.log and
# the server's log bench-out/soak-server.log.
# Arguments go to auditlake-soak, e.g. `--quick` (one minute) or
# `--minutes 30 --ingest-rate 2000`; `auditlake-soak --help` lists them.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
mkdir -p bench-out
# One build of both binaries (as scripts/bench.sh builds them): two builds
# would compile the shared dependencies twice, with the features each
# package alone switches on.
cargo build --release --locked -p auditlake-cli -p auditlake-bench --bin auditlake --bin auditlake-soak
./target/release/auditlake-soak --bin target/release/auditlake --out bench-out "$@" 2>&1 |
    tee bench-out/soak-run.log
