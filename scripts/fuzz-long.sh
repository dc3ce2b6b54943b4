#!/usr/bin/env bash
# A long fuzzing campaign: HOURS (default 1, fractions allowed) shared
# evenly among the targets of fuzz/, one after the other. New inputs are
# kept in fuzz/corpus-grown/ (not committed), so a later campaign goes on
# from where this one stopped. Record each campaign (date, machine, time per
# target, runs, failures) in RELIABILITY.md, section "Fuzzing".
#
#   scripts/fuzz-long.sh [HOURS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."

hours="${1:-1}"
shift || true
if [ "$#" -gt 0 ]; then
  count=$#
else
  scripts/ensure-fuzz.sh
  count=$(cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz list | wc -l)
fi
seconds=$(awk -v h="$hours" -v n="$count" 'BEGIN { printf "%d", h * 3600 / n }')
echo "fuzz campaign: $hours h over $count targets, $seconds s each, started $(date -u +%FT%TZ)"
export FUZZ_CORPUS_DIR="$PWD/fuzz/corpus-grown"
scripts/fuzz.sh "$seconds" "$@"
echo "fuzz campaign: ended $(date -u +%FT%TZ)"
