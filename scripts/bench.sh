#!/usr/bin/env bash
# Builds the release server and the benchmark tool, then runs the full
# benchmark of issue 3's targets on SQLite and PostgreSQL (see BENCHMARKS.md).
# Results: bench-out/results.md, bench-out/results.json, bench-out/run.log and
# the server logs. Arguments go to auditlake-bench, e.g. `--quick` or
# `--backend sqlite --scenario batch`. Takes about 10 minutes after the build.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export AUDITLAKE_TEST_PG="${AUDITLAKE_TEST_PG:-postgres://postgres@127.0.0.1:5432/test}"

# Start the local PostgreSQL only when it is down: ensure-postgres.sh also
# drops the test suite's leftover databases, which would break a test run
# going on beside this one.
pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null || scripts/ensure-postgres.sh

# Databases and SQLite directories of interrupted benchmark runs (each run
# removes its own).
rm -rf "${TMPDIR:-/tmp}"/auditlake-bench-*
psql "$AUDITLAKE_TEST_PG" -Atqc "SELECT datname FROM pg_database WHERE datname LIKE 'auditlake_bench_%'" 2>/dev/null |
  while read -r db; do psql "$AUDITLAKE_TEST_PG" -qc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 || true; done

cargo build --release --locked -p auditlake-cli -p auditlake-bench --bin auditlake --bin auditlake-bench

mkdir -p bench-out
./target/release/auditlake-bench --bin target/release/auditlake --out bench-out "$@" 2>&1 | tee bench-out/run.log
