"""DuckDB baseline for the lake benchmark: the seed query and a group-by over
eventdata.eventname on the same Parquet files the lake reads. Prints the
median of RUNS timed runs (after one warm-up) of each, as JSON.

Usage: bench_duckdb.py '<parquet glob>' RUNS
"""
import json
import statistics
import sys
import time

import duckdb

glob, runs = sys.argv[1], int(sys.argv[2])
con = duckdb.connect()
src = f"read_parquet('{glob}')"
queries = {
    "seed": f"select eventtime, eventdata.useridentity, eventdata.eventname, eventdata.additionaleventdata from {src} order by eventtime desc limit 10",
    "group": f"select eventdata.eventname, count(*) from {src} group by eventdata.eventname",
}
out = {"version": duckdb.__version__}
for name, sql in queries.items():
    con.execute(sql).fetchall()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        con.execute(sql).fetchall()
        times.append((time.perf_counter() - t) * 1000)
    out[name] = {"median_ms": statistics.median(times), "runs_ms": times}
print(json.dumps(out))
