#!/usr/bin/env python3
"""A restart (an upgrade, `systemctl restart`) keeps the cluster's connections: TCP rides
out the gap, and the new gateway, which has no sessions, picks the connections up from
the cluster's next segments and verifies them at the remote's next acknowledgement
(docs/operations.md "Restarting"), so a staked node's traffic is back on its allowance
at once, unpenalised.

    con1 (staked, 198.18.0.11) -- [bridge] -- o [stakegate] i -- cluster (198.18.0.100)

Two real TCP streams cross the restart: con1 sends to the cluster's 3569 (a connection
con1 opened), and the cluster sends to con1's 3570 (a connection the cluster opened,
con1 only acknowledges). Needs root; the namespaces are removed on exit.
"""
import json
import subprocess
import time

from common import check
from netlab import LabError, run_inline, sh
# The same node and gateway as the spoofing test: con1 staked at 1,000 pps, the cluster's /28.
from test_netns_spoof import CL, CON1, RATE, node_id, write_config

SECONDS = 8
RESTART_AFTER = 2.5
STREAM = 0.3  # of con1's rate, each


def build_topology(lab):
    lab.switched({"con1": [f"{CON1}/24"]}, [f"{CL}/24"])


def listen(lab, ns, ip, port):
    lab.spawn(ns, ["iperf3", "-s", "-B", ip, "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 10
    while f"{ip}:{port}" not in sh(["ss", "-Htln"], ns=ns).stdout:
        if time.time() > deadline:
            raise LabError(f"iperf3 -s did not start listening on {ip}:{port}")
        time.sleep(0.05)


def iperf(lab, ns, server, port, mbit):
    # Paced by the kernel: after the gap, iperf3's -b would catch up in one burst.
    return lab.spawn(ns, ["iperf3", "-c", server, "-p", str(port), "-t", str(SECONDS), "-b", f"{mbit:.2f}M",
                          "--fq-rate", f"{1.1 * mbit:.2f}M", "--json"])


def received(what, proc):
    out, err = proc.communicate(timeout=SECONDS + 30)
    try:
        return json.loads(out)["end"]["sum_received"]["bits_per_second"] / 1e6
    except (ValueError, KeyError):
        check(False, f"{what}: iperf3 failed: {err.strip() or out.strip()[:300]}")
        return 0.0


def phases(lab, d, gw, metrics_port):
    cl, con1 = lab.ns("cl"), lab.ns("con1")
    listen(lab, cl, CL, 3569)
    listen(lab, con1, CON1, 3570)
    mbit = STREAM * RATE * 1448 * 8 / 1e6
    print(f"\n== two streams at {mbit:.2f} Mbit/s each; the gateway restarts after {RESTART_AFTER} s", flush=True)
    up = iperf(lab, con1, CL, 3569, mbit)      # con1 opened it, con1 sends
    down = iperf(lab, cl, CON1, 3570, mbit)    # the cluster opened it, the cluster sends
    time.sleep(RESTART_AFTER)
    t0 = time.monotonic()
    rc, _, _ = gw.restart()
    gap = time.monotonic() - t0
    check(rc == 0, f"the first gateway exited 0 ({rc}); the second forwards {gap:.1f} s after the first stopped")
    t_up = time.monotonic()
    got_up, got_down = received("con1's stream", up), received("the cluster's stream", down)
    ran = time.monotonic() - t_up
    # Both streams went on: what they carried overall is at least what the seconds without
    # a gap could carry (the kernel paces them at 1.1 x, so they catch up only partly).
    floor = (SECONDS - gap - 1.0) / SECONDS
    check(got_up >= floor * mbit, f"con1's stream went on across the restart ({got_up:.2f} of {mbit:.2f} Mbit/s)")
    check(got_down >= floor * mbit,
          f"the cluster's stream to con1 went on across the restart ({got_down:.2f} of {mbit:.2f} Mbit/s)")
    _, node = gw.api().call("GetNode", {"node_id": node_id("con1")})
    c = {k: int(v) for k, v in node["counters"].items()}
    requests = c.get("request_passed", 0) + c.get("request_over_rate", 0)
    verified = c.get("passed", 0) + c.get("over_rate", 0)
    print(f"the new gateway, {ran:.1f} s of traffic: {c}", flush=True)
    # The new gateway sees con1's segments before any of the cluster's on a connection:
    # those few go to its request channel, until the cluster's next segment opens the
    # session and con1's acknowledgement of it verifies the connection.
    check(verified > 20 * requests and requests <= 0.2 * RATE,
          f"the new gateway counts con1's packets on its verified connections ({verified}) but for the few before "
          f"the cluster's first segments ({requests} on its request channel)")
    check(c.get("over_rate", 0) == 0 and not node["graylisted"] and float(node.get("score", 0)) == 0,
          f"con1 is not penalised (over_rate {c.get('over_rate', 0)}, score {node.get('score', 0)})")
    _, status = gw.api().call("Status")
    sessions = {k: int(v) for k, v in status.get("sessions", {}).items()}
    # Each stream's data connection and iperf3's control connection beside it.
    check(sessions.get("verified", 0) >= 2 and sessions.get("verified", 0) == sessions.get("created", -1),
          f"the new gateway picked the connections up and verified each ({sessions})")


if __name__ == "__main__":
    run_inline(build_topology, write_config, phases)
