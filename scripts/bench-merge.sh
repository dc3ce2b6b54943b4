#!/usr/bin/env bash
# Builds and runs issue 22's merge benchmark: compaction's SortedMerge against
# DataFusion's sort-preserving merge on the same sorted Parquet runs, for
# speed (interleaved rounds, medians), peak memory (a child process per
# merge) and, with valgrind installed, instructions (callgrind). Results:
# bench-out/merge-results.md and .json. Arguments go to auditlake-merge-bench,
# e.g. `--cases 8x16384 --rounds 5`.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
mkdir -p bench-out
cargo build --release --locked -p auditlake-bench --bin auditlake-merge-bench
callgrind=()
if command -v valgrind >/dev/null; then
  callgrind=(--callgrind)
fi
./target/release/auditlake-merge-bench --out bench-out "${callgrind[@]}" "$@" 2>&1 \
  | tee bench-out/merge-run.log
