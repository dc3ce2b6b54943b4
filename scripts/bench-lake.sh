#!/usr/bin/env bash
# Builds the release binary and the lake benchmark, installs DuckDB (the
# baseline) into bench-out/venv, and runs issue 4's benchmark: ingest through
# PutAuditEvents, bytes per stored event, and the seed query and a group-by
# on 10M events next to DuckDB on the same Parquet files. Results:
# bench-out/lake-results.md and .json. Arguments go to auditlake-lake-bench,
# e.g. `--query-events 1000000` for a shorter run.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
rm -rf "${TMPDIR:-/tmp}"/auditlake-lake-bench-*

mkdir -p bench-out
if [ ! -x bench-out/venv/bin/python ]; then
  python3 -m venv bench-out/venv
fi
bench-out/venv/bin/pip install --quiet --disable-pip-version-check "duckdb==1.4.4"

cargo build --release --locked -p auditlake-cli -p auditlake-bench --bin auditlake --bin auditlake-lake-bench

./target/release/auditlake-lake-bench --bin target/release/auditlake --out bench-out \
  --python bench-out/venv/bin/python "$@" 2>&1 | tee bench-out/lake-run.log
