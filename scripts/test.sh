#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints, then every test on
# SQLite and PostgreSQL, then the running server against its OpenAPI
# document (schemathesis). Installs what it needs; safe to run on a fresh
# machine of the project's kind.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export AUDITLAKE_TEST_PG="${AUDITLAKE_TEST_PG:-postgres://postgres@127.0.0.1:5432/test}"

scripts/ensure-postgres.sh
scripts/ensure-browser.sh

echo "== rustfmt"
cargo fmt --all -- --check

echo "== clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== docs"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet

echo "== fuzz (short runs)"
# Every fuzz target for a few seconds from its seed corpus (scripts/fuzz.sh;
# the long campaigns are scripts/fuzz-long.sh, recorded in RELIABILITY.md).
scripts/fuzz.sh "${AUDITLAKE_FUZZ_SECONDS:-20}"

echo "== tests (SQLite and PostgreSQL)"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --locked 2>&1 | tee "$log" || status=$?
# One closing line for the whole run (cargo prints one per test binary).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"

echo "== conformance (schemathesis)"
# About 2 minutes; the server is the binary the tests above just built.
scripts/conformance.sh || status=$?

echo "== benchmark smoke (debug build, SQLite, small sizes)"
# The benchmark (scripts/bench.sh) needs a release build and is not part of
# this run; this small pass of every scenario keeps the tool itself from
# breaking unnoticed (it once failed every scenario on a changed `serve`
# banner). The figures of a debug build mean nothing and are not kept.
cargo build -p auditlake-bench --locked --quiet
bench_out="$(mktemp -d)"
target/debug/auditlake-bench --bin target/debug/auditlake --backend sqlite --out "$bench_out" \
  --events 5000 --requests 500 --warmup 20 --search-events 5000 --orgs 10 --searches 200 \
  >"$bench_out/stdout.log" 2>&1 || { status=$?; cat "$bench_out/stdout.log"; }
rm -rf "$bench_out"
exit "$status"
