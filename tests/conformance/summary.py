"""Summarises a schemathesis NDJSON report (scripts/conformance.sh).

Prints how many requests the run sent, their statuses by class, and the
documented operations that never answered 2xx (their success paths went
untested in this run) or were not requested at all (schemathesis leaves out
the operation serving the document itself). Usage:
summary.py REPORT.ndjson OPENAPI.json
"""

import collections
import json
import sys

METHODS = {"get", "put", "post", "delete", "patch"}

with open(sys.argv[2], encoding="utf-8") as doc:
    paths = json.load(doc)["paths"]
operations = {f"{m.upper()} {p}" for p, item in paths.items() for m in item if m in METHODS}

requests = 0
by_class = collections.Counter()
requested = set()
succeeded = set()
with open(sys.argv[1], encoding="utf-8") as report:
    for line in report:
        scenario = json.loads(line).get("ScenarioFinished")
        if not scenario:
            continue
        recorder = scenario["recorder"]
        for case_id, interaction in recorder.get("interactions", {}).items():
            response = interaction.get("response")
            case = recorder["cases"].get(case_id, {}).get("value")
            if not response or not case:
                continue
            requests += 1
            status = response["status_code"]
            by_class[f"{status // 100}xx"] += 1
            operation = f"{case['method']} {case['path']}"
            requested.add(operation)
            if 200 <= status < 300:
                succeeded.add(operation)

classes = ", ".join(f"{k}: {v}" for k, v in sorted(by_class.items()))
tested = operations & requested
print(f"{requests} requests ({classes}); {len(tested & succeeded)} of {len(tested)} operations answered 2xx")
for op in sorted(tested - succeeded):
    print(f"  no 2xx: {op}")
for op in sorted(operations - requested):
    print(f"  not requested: {op}")
