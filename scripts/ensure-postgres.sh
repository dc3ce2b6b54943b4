#!/usr/bin/env bash
# Makes sure the local PostgreSQL the tests use answers, starting the
# machine's cluster when it is stopped, and drops test databases that
# earlier interrupted runs left behind.
set -euo pipefail
url="${AUDITLAKE_TEST_PG:-postgres://postgres@127.0.0.1:5432/test}"

if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  if command -v pg_ctlcluster >/dev/null 2>&1; then
    echo "starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  fi
  for _ in $(seq 1 30); do
    pg_isready -q -h 127.0.0.1 -p 5432 && break
    sleep 1
  done
fi
pg_isready -h 127.0.0.1 -p 5432 >/dev/null || { echo "PostgreSQL is not reachable at 127.0.0.1:5432" >&2; exit 1; }

# Leftovers of interrupted runs (each test drops its own database when it ends).
psql "$url" -Atqc "SELECT datname FROM pg_database WHERE datname LIKE 'auditlake_t_%'" 2>/dev/null |
  while read -r db; do psql "$url" -qc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 || true; done
