#!/usr/bin/env bash
# The forwarder's crash test, longer than in the test suite: the server is
# killed with SIGKILL KILLS times (default 200) at random moments while it
# delivers a backlog, on SQLite and PostgreSQL; in the end the local lake must
# hold every event exactly once. Usage: scripts/crash-forward.sh [KILLS]
set -euo pipefail
cd "$(dirname "$0")/.."
export AUDITLAKE_TEST_PG="${AUDITLAKE_TEST_PG:-postgres://postgres@127.0.0.1:5432/test}"
scripts/ensure-postgres.sh
AUDITLAKE_CRASH_KILLS="${1:-200}" cargo test -p auditlake-cli --test forward_e2e kill_9 -- --nocapture
