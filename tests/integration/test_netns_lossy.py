#!/usr/bin/env python3
"""A staked node's connections stay verified on a bad path: lost, duplicated and reordered
segments, retransmissions and SACK are still counted as the connection's own
(docs/operations.md "What can be attributed"), not sent to the node's small request
channel where a real stream would be dropped.

    con1 (staked, 198.18.0.11) -- [impair] --+
                                             +-- [bridge] -- o [stakegate] i -- cluster (198.18.0.100)

`netprog.py impair` relays con1's frames in both directions, losing 5 %, duplicating 2 %
and reordering 20 % of them. Over it run real TCP streams (iperf3) at half con1's rate:
con1 to the cluster, the cluster to con1 (con1's side only acknowledges), and a
connection the cluster opens to con1, with con1 sending.
Needs root; the namespaces are removed on exit.
"""
import json
import subprocess
import time

from common import check
from netlab import LabError, run_inline, sh
# The same node and gateway as the spoofing test: con1 staked at 1,000 pps, the cluster's /28.
from test_netns_spoof import CL, CON1, RATE, node_id, write_config

LOSS, DUP, REORDER = 0.05, 0.02, 0.20
SECONDS = 5
# Connection requests (SYNs and their retransmissions, and a reset or two when iperf3
# closes its control connection early) are the only packets off a verified connection.
MAX_REQUESTS_PER_STREAM = 8


def build_topology(lab):
    lab.switched({"con1": [f"{CON1}/24"]}, [f"{CL}/24"])
    # Take con1's port off the bridge; a second veth pair joins the bridge in its place,
    # and the relay copies frames between the two.
    sw = lab.ns("sw")
    sh(["ip", "link", "set", "p-con1", "nomaster"], ns=sw)
    lab.veth(sw, "q-con1", sw, "r-con1")
    sh(["ip", "link", "set", "q-con1", "master", "br0"], ns=sw)


def counters(gw):
    s, r = gw.api().call("GetNode", {"node_id": node_id("con1")})
    return {k: int(v) for k, v in r["counters"].items()}, r


def listen(lab, ns, ip):
    lab.spawn(ns, ["iperf3", "-s", "-B", ip, "-p", "3569"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 10
    while f"{ip}:3569" not in sh(["ss", "-Htln"], ns=ns).stdout:
        if time.time() > deadline:
            raise LabError(f"iperf3 -s did not start listening on {ip}")
        time.sleep(0.05)


def stream(lab, gw, what, client_ns, server_ip, reverse):
    print(f"\n== {what}, over the bad path", flush=True)
    mbit = 0.5 * RATE * 1448 * 8 / 1e6
    before, _ = counters(gw)
    # Paced by the kernel a little above the rate asked: iperf3's own -b catches up after
    # a stall (here: every loss) with a burst.
    args = ["iperf3", "-c", server_ip, "-p", "3569", "-t", str(SECONDS), "-b", f"{mbit:.2f}M",
            "--fq-rate", f"{1.1 * mbit:.2f}M", "--connect-timeout", "3000", "--json"]
    out, err = lab.spawn(client_ns, args + (["-R"] if reverse else [])).communicate(timeout=SECONDS + 30)
    after, node = counters(gw)
    d = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    try:
        end = json.loads(out)["end"]
        got, retransmits = end["sum_received"]["bits_per_second"] / 1e6, end["sum_sent"].get("retransmits", 0)
    except (ValueError, KeyError):
        check(False, f"{what}: iperf3 failed: {err.strip() or out.strip()[:500]}")
        return
    print(f"{got:.2f} of {mbit:.2f} Mbit/s, {retransmits} retransmissions, con1's counters: {d}")
    # A lossy path costs TCP some throughput (and the retransmissions show the path was bad).
    check(got >= 0.7 * mbit, f"{what}: the stream got through ({got:.2f} of {mbit:.2f} Mbit/s)")
    check(retransmits > 0, f"{what}: the path lost segments ({retransmits} retransmissions)")
    requests = d.get("request_passed", 0) + d.get("request_over_rate", 0)
    check(d["passed"] > 1000 and requests <= MAX_REQUESTS_PER_STREAM and d.get("request_over_rate", 0) == 0,
          f"{what}: con1's {d['passed']} packets counted on its verified connections, {requests} on its request "
          f"channel (its connection requests), none dropped there")
    check(d.get("over_rate", 0) == 0 and not node["graylisted"] and float(node.get("score", 0)) == 0,
          f"{what}: no drop, no penalty (over_rate {d.get('over_rate', 0)}, score {node.get('score', 0)})")


def phases(lab, d, gw, metrics_port):
    relay = lab.prog(lab.ns("sw"), "impair", "--a", "p-con1", "--b", "r-con1", "--loss", LOSS, "--dup", DUP,
                     "--reorder", REORDER, "--seed", 7)
    relay.wait_event("ready")
    cl, con1 = lab.ns("cl"), lab.ns("con1")
    listen(lab, cl, CL)
    stream(lab, gw, "con1 sends to the cluster", con1, CL, reverse=False)
    stream(lab, gw, "the cluster sends to con1 (con1 acknowledges)", con1, CL, reverse=True)
    listen(lab, con1, CON1)
    stream(lab, gw, "the cluster dials con1, which sends", cl, CON1, reverse=True)
    n = relay.stop()
    print(f"relay: {n}")
    check(n.get("lost", 0) > 0 and n.get("duplicated", 0) > 0 and n.get("reordered", 0) > 0,
          f"the relay lost, duplicated and reordered frames ({n})")
    cases = gw.api().call("ListEvidence")[1].get("cases", [])
    check(cases == [], f"no evidence case opened ({len(cases)})")


if __name__ == "__main__":
    run_inline(build_topology, write_config, phases)
