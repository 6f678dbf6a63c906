#!/usr/bin/env python3
"""Per-node view of a demo run: what each staked node sent (from the scenario's
expected.json) next to what stakegate passed and dropped (from its --report)."""
import json
import sys

exp = json.load(open(sys.argv[1]))
rep = json.load(open(sys.argv[2]))
nodes = {n["node_id"]: n for n in rep["nodes"]}
print(f"{'node':10} {'role':12} {'kind':8} {'rate_pps':>9} {'sent':>7} {'passed':>7} {'over_rate':>9} {'kept':>6}")
for kind, rows in (("honest", exp["honest"]), ("flooder", exp["flooders"])):
    for r in rows:
        n = nodes[r["node_id"]]
        kept = n["passed"] / r["sent"] if r["sent"] else 1
        print(f"{r['node_id'][:8]:10} {n['role']:12} {kind:8} {r['rate_pps']:9.0f} {r['sent']:7} {n['passed']:7} "
              f"{n['dropped']['over_rate']:9} {kept:6.1%}")
