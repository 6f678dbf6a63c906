"""The SWQoS guarantee (DESIGN.md), in replay: while a third of the stake floods at 10x
its rate, unregistered sources flood at 100x capacity and an attacker forges every honest
node's address at 10x its rate (UDP, and TCP on its very connection with guessed sequence
numbers), every honest node sending within its rate keeps >= 99 % of its packets, and
each flooder gets no more than its rate plus its burst."""
import json
import os

from common import TempDir, check, finish, generate, read_yaml, replay, write_yaml

with TempDir() as d:
    exp = generate(d, "--nodes-per-role", 6, "--flood-stake", 1 / 3, "--flood-multiplier", 10,
                   "--honest-fraction", 0.95, "--capacity-pps", 4000, "--duration-ms", 1000,
                   "--unregistered-flood", 100, "--unregistered-flood-sources", 2000, "--ejected", 0,
                   "--spoof-multiplier", 10)
    # The guarantee is about the buckets alone: peer scoring (which would also graylist the
    # flooders, see test_evidence.py) is off here.
    c = read_yaml(os.path.join(d, "config.yaml"))
    c["scoring"] = {"enabled": False}
    write_yaml(os.path.join(d, "config.yaml"), c)
    rep, _ = replay(os.path.join(d, "config.yaml"), os.path.join(d, "scenario.pcap"), report=os.path.join(d, "r.json"))
    nodes = {n["node_id"]: n for n in rep["nodes"]}
    stakes = json.load(open(os.path.join(d, "stakes.json")))

    flood_ids = {f["node_id"] for f in exp["flooders"]}
    total = sum(stakes.values())
    flooding = sum(stakes[i] for i in flood_ids)
    check(flooding / total >= 1 / 3, f"flooders hold {flooding / total:.1%} of the stake")
    check(exp["unregistered_flood_sent"] >= 100 * 4000 * 0.99, f"unregistered flood: {exp['unregistered_flood_sent']} packets in 1 s")
    honest_rate = sum(h["rate_pps"] for h in exp["honest"])
    check(exp["forged"] >= 10 * honest_rate * 0.99, f"forged traffic with honest addresses: {exp['forged']} packets in 1 s")

    worst = 1.0
    for h in exp["honest"]:
        n = nodes[h["node_id"]]
        worst = min(worst, n["passed"] / h["sent"])
    check(len(exp["honest"]) >= 10 and worst >= 0.99, f"every honest node keeps >= 99 % (worst {worst:.2%}, {len(exp['honest'])} nodes)")
    forged_passed = sum(nodes[h["node_id"]]["request_channel"]["passed"] for h in exp["honest"])
    forged_dropped = sum(nodes[h["node_id"]]["request_channel"]["request_over_rate"] for h in exp["honest"])
    check(forged_dropped > 0.9 * exp["forged"], f"the forged traffic stayed in the request channel: {forged_passed} passed, "
          f"{forged_dropped} dropped (request_over_rate)")
    for f in exp["flooders"]:
        n = nodes[f["node_id"]]
        limit = f["rate_pps"] * exp["duration_ms"] / 1000 + f["burst"]
        check(n["passed"] <= limit + 1, f"flooder {f['node_id'][:8]}: {n['passed']} passed <= rate + burst {limit:.0f}")
        check(n["passed"] >= 0.95 * f["rate_pps"], f"flooder {f['node_id'][:8]} still gets its own rate ({n['passed']})")

    unreg = rep["by_direction"]["outside"]["unregistered"]["packets"]
    pool = 0.05 * 4000
    replies = exp["expected_passes"]["session_replies"]  # the cluster's DNS answers: the sessions budget
    check(unreg.get("pass", 0) - replies <= pool * 1.0 + pool * 0.1 + 1,
          f"unregistered traffic held to the pool: {unreg.get('pass', 0) - replies} passed (and {replies} session replies)")

finish()
