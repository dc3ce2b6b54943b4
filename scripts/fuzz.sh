#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ (or the ones named) for SECONDS each
# (default 20) from its committed seed corpus, and fails if any input
# crashes, panics, times out or runs out of memory. scripts/test.sh runs it
# with the short default; scripts/fuzz-long.sh runs it for hours.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# New inputs the fuzzer finds go to $FUZZ_CORPUS_DIR/<target> (default: a
# temporary directory), never into fuzz/corpus: the committed seeds stay
# small. A crashing input is saved under fuzz/artifacts/<target>/; turn it
# into a regression test (see RELIABILITY.md), then fix the code.
#
# The machine has only stable Rust: RUSTC_BOOTSTRAP=1 lets it take the -Z
# flags cargo-fuzz passes, and AddressSanitizer (nightly only) is off. The
# targets are safe Rust (the workspace forbids unsafe code), so the
# sanitizer would add little; panics, overflows (debug assertions are on in
# --dev builds) and timeouts are what the runs look for.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-20}"
shift || true

scripts/ensure-fuzz.sh
export RUSTC_BOOTSTRAP=1
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
cd fuzz
# cargo-fuzz has no --locked: refuse a lock file that is out of date.
cargo fetch --locked --target "$(rustc -vV | sed -n 's/^host: //p')"
flags=(--dev --sanitizer none)

start=$(date +%s)
cargo fuzz build "${flags[@]}"
echo "fuzz build: $(($(date +%s) - start)) s"

if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo fuzz list)
fi

scratch=""
if [ -z "${FUZZ_CORPUS_DIR:-}" ]; then
  scratch="$(mktemp -d)"
  trap 'rm -rf "$scratch"' EXIT
  FUZZ_CORPUS_DIR="$scratch"
fi

failed=()
for target in "${targets[@]}"; do
  grown="$FUZZ_CORPUS_DIR/$target"
  log="$FUZZ_CORPUS_DIR/$target.log"
  mkdir -p "$grown"
  status=0
  # libFuzzer writes new inputs into the first corpus directory only.
  # -timeout: one input taking longer is a failure (dev builds are slow,
  # so the bound is generous); -rss_limit_mb: so is growing past 2 GiB.
  cargo fuzz run "${flags[@]}" "$target" "$grown" "corpus/$target" -- \
    -max_total_time="$seconds" -timeout=30 -rss_limit_mb=2048 \
    -print_final_stats=1 >"$log" 2>&1 || status=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  corpus=$(find "$grown" -type f | wc -l)
  if [ "$status" = 0 ]; then
    echo "fuzz $target: ok, ${execs:-?} runs in ${seconds} s, coverage ${cov:-?}, ${corpus} new inputs"
  else
    echo "fuzz $target: FAILED (exit $status) after ${execs:-?} runs; the end of its log:"
    tail -60 "$log"
    failed+=("$target")
  fi
done

if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzz: ${#failed[@]} target(s) failed: ${failed[*]} (inputs in fuzz/artifacts/)"
  exit 1
fi
echo "fuzz: ${#targets[@]} targets, no failure"
