#!/usr/bin/env python3
"""A staked node's connections stay verified on a bad path: lost, duplicated and reordered
segments, retransmissions and SACK are still counted as the connection's own
(docs/operations.md "What can be attributed"), not sent to the node's small request
channel where a real stream would be dropped.

    con1 (staked, 198.18.0.11) -- [impair] --+
                                             +-- [bridge] -- o [stakegate] i -- cluster (198.18.0.100)

`netprog.py impair` relays con1's frames in both directions, losing 5 %, duplicating 2 %
and reordering 20 % of them. Over it run real TCP streams (iperf3) at a third of con1's rate:
con1 to the cluster, the cluster to con1 (con1's side only acknowledges), and a
connection the cluster opens to con1, with con1 sending. `--ipv6`: the same over IPv6
(con1 at 2001:2::11, the cluster at 2001:2::100), whose segments take the full path.
Needs root; the namespaces are removed on exit.
"""
import json
import os
import subprocess
import sys
import time

import yaml

from common import check
from netlab import LabError, run_inline, sh
# The same node and gateway as the spoofing test: con1 staked at 1,000 pps, the cluster's /28.
import test_netns_spoof as spoof
from test_netns_spoof import OVER_RATE_PENALTY, RATE, node_id

IPV6 = "--ipv6" in sys.argv[1:]
CON1, CL = ("2001:2::11", "2001:2::100") if IPV6 else (spoof.CON1, spoof.CL)

LOSS, DUP, REORDER = 0.05, 0.02, 0.20
SECONDS = 5
# Of con1's rate: room for the retransmissions a bad path adds, and for its ACKs (up to one
# per segment while segments arrive out of order).
STREAM = 0.35
# Connection requests are the only packets off a verified connection: iperf3's two SYNs
# (control and data connections), and a retransmission or two of them on this path.
MAX_REQUESTS_PER_STREAM = 4


def write_config(d, lab, metrics_port):
    path = spoof.write_config(d, lab, metrics_port)
    with open(path) as f:
        cfg = yaml.safe_load(f)
    # A relay in Python on a busy two-CPU machine stalls now and then and sends what it
    # held at once: a second of burst keeps such a stall from looking like a flood.
    for role in cfg["roles"].values():
        role["burst_ms"] = 1000
    if IPV6:
        infos = os.path.join(d, "node-infos.pub.json")
        with open(infos) as f:
            nodes = json.load(f)
        nodes[0]["Address"] = f"[{CON1}]:3569"
        with open(infos, "w") as f:
            json.dump(nodes, f)
        cfg["cluster"]["prefixes"] = ["2001:2::100/120"]
    with open(path, "w") as f:
        yaml.safe_dump(cfg, f, sort_keys=False)
    return path


def build_topology(lab):
    plen = 64 if IPV6 else 24
    lab.switched({"con1": [f"{CON1}/{plen}"]}, [f"{CL}/{plen}"], ipv6=IPV6)
    # Take con1's port off the bridge; a second veth pair joins the bridge in its place,
    # and the relay copies frames between the two.
    sw = lab.ns("sw")
    sh(["ip", "link", "set", "p-con1", "nomaster"], ns=sw)
    lab.veth(sw, "q-con1", sw, "r-con1")
    sh(["ip", "link", "set", "q-con1", "master", "br0"], ns=sw)


def counters(gw):
    s, r = gw.api().call("GetNode", {"node_id": node_id("con1")})
    return {k: int(v) for k, v in r["counters"].items()}, r


def listen(lab, ns, ip, port):
    lab.spawn(ns, ["iperf3", "-s", "-B", ip, "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 10
    shown = f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"
    while shown not in sh(["ss", "-Htln"], ns=ns).stdout:
        if time.time() > deadline:
            raise LabError(f"iperf3 -s did not start listening on {ip}")
        time.sleep(0.05)


def stream(lab, gw, what, client_ns, server_ip, port, reverse):
    print(f"\n== {what}, over the bad path", flush=True)
    mbit = STREAM * RATE * 1448 * 8 / 1e6
    before, _ = counters(gw)
    # Paced by the kernel a little above the rate asked: iperf3's own -b catches up after
    # a stall (here: every loss) with a burst. A connection may need a few SYNs here (the
    # kernel retries after 1, 3 and 7 s): 15 s to connect.
    args = ["iperf3", "-c", server_ip, "-p", str(port), "-t", str(SECONDS), "-b", f"{mbit:.2f}M",
            "--fq-rate", f"{1.1 * mbit:.2f}M", "--connect-timeout", "15000", "--json"]
    out, err = lab.spawn(client_ns, args + (["-R"] if reverse else [])).communicate(timeout=SECONDS + 30)
    after, node = counters(gw)
    d = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    try:
        end = json.loads(out)["end"]
        got, retransmits = end["sum_received"]["bits_per_second"] / 1e6, end["sum_sent"].get("retransmits", 0)
    except (ValueError, KeyError):
        try:
            why = json.loads(out).get("error", out.strip()[:500])
        except ValueError:
            why = err.strip() or out.strip()[:500]
        check(False, f"{what}: iperf3 failed: {why}")
        return
    print(f"{got:.2f} of {mbit:.2f} Mbit/s, {retransmits} retransmissions, con1's counters: {d}")
    # A lossy path costs TCP throughput: each retransmission timeout stalls the stream for
    # at least 200 ms (Linux's minimum RTO), doubled when the retransmission is lost too, and
    # the relay is a Python process on a shared machine. What the gateway did is in its
    # counters below (none of con1's packets dropped); this only asks that the stream flowed.
    check(got >= 0.5 * mbit, f"{what}: the stream got through ({got:.2f} of {mbit:.2f} Mbit/s)")
    check(retransmits > 0, f"{what}: the path lost segments ({retransmits} retransmissions)")
    requests = d.get("request_passed", 0) + d.get("request_over_rate", 0)
    check(d["passed"] > 500 and requests <= MAX_REQUESTS_PER_STREAM and d.get("request_over_rate", 0) == 0,
          f"{what}: con1's {d['passed']} packets counted on its verified connections, {requests} on its request "
          f"channel (its connection requests), none dropped there")
    # Policing still applies on a verified connection (a TCP burst over the node's bucket),
    # and only its own verified drops may cost it: over_rate costs OVER_RATE_PENALTY per
    # second of its rate, so far.
    own = after.get("over_rate", 0) * OVER_RATE_PENALTY / RATE
    score = float(node.get("score", 0))
    check(d.get("over_rate", 0) <= 0.01 * d["passed"] and not node["graylisted"] and -own - 0.01 <= score <= 0,
          f"{what}: within its rate, not graylisted, score moved only by its own verified drops "
          f"(over_rate {d.get('over_rate', 0)}, score {score:.2f}, at most -{own:.2f})")


def phases(lab, d, gw, metrics_port):
    relay = lab.prog(lab.ns("sw"), "impair", "--a", "p-con1", "--b", "r-con1", "--loss", LOSS, "--dup", DUP,
                     "--reorder", REORDER, "--seed", 7)
    relay.wait_event("ready")
    cl, con1 = lab.ns("cl"), lab.ns("con1")
    # One iperf3 server per stream: on this path the previous test's end can still be in
    # flight when the next one starts, and a busy server refuses it. Both ports are con1's.
    listen(lab, cl, CL, 3569)
    stream(lab, gw, "con1 sends to the cluster", con1, CL, 3569, reverse=False)
    listen(lab, cl, CL, 3570)
    stream(lab, gw, "the cluster sends to con1 (con1 acknowledges)", con1, CL, 3570, reverse=True)
    listen(lab, con1, CON1, 3569)
    stream(lab, gw, "the cluster dials con1, which sends", cl, CON1, 3569, reverse=True)
    n = relay.stop()
    print(f"relay: {n}")
    check(n.get("lost", 0) > 0 and n.get("duplicated", 0) > 0 and n.get("reordered", 0) > 0,
          f"the relay lost, duplicated and reordered frames ({n})")
    cases = gw.api().call("ListEvidence")[1].get("cases", [])
    check(cases == [], f"no evidence case opened ({len(cases)})")


if __name__ == "__main__":
    run_inline(build_topology, write_config, phases)
