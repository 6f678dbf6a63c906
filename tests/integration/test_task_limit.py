#!/usr/bin/env python3
"""A gateway that cannot make a thread (its task limit: systemd's TasksMax, a pids cgroup,
or no memory for a new stack) keeps forwarding and answering (docs/reliability.md).

The control plane starts helper threads for DNS rounds, reloads and identity replaces.
With tests/faultsim/task_limit.cc preloaded, every new thread fails while a file exists:
- the DNS rounds that are due cannot start: logged, tried again, the gateway runs on;
- SIGHUP and the Reload RPC are refused with a message that says why (503 unavailable),
  and the running policy stays;
- ReplaceIdentities does its work on the control thread instead and applies;
- once threads can be made again, Reload applies (nothing was left waiting) and the DNS
  rounds resume.
"""
import os
import signal
import time

from common import (Gateway, TempDir, check, finish, free_port, metric_values, node_infos, scrape, wait_for,
                    write_yaml)

TASKLIMIT = os.environ["STAKEGATE_TASKLIMIT"]
A, B, C = "a1" * 32, "b2" * 32, "c3" * 32


def outside_packets(api):
    return int(api.call("Status")[1]["outside_packets"])


with TempDir() as d:
    limit = f"{d}/limit"
    with open(f"{d}/node-infos.pub.json", "w") as f:
        f.write(node_infos([(A, "consensus", "198.18.70.1:3569", 100), (B, "consensus", "b.tasklimit.test:3569", 100)]))
    mport, dead_dns = free_port(), free_port()  # nothing listens there: every lookup fails at once
    write_yaml(f"{d}/gw.yaml", {
        "dataplane": {"eal": ["--no-huge", "-m", "512", "--no-pci", "--no-shconf"],
                      "outside": {"vdev": "net_null0"}, "inside": {"vdev": "net_null1,no-rx=1"}},
        "capacity": {"pps": 100000},
        "identity": {"flow_node_infos": "node-infos.pub.json",
                     "dns": {"servers": [f"127.0.0.1:{dead_dns}"], "timeout_s": 1, "retry_s": 1}},
        "roles": {"consensus": {"share": 0.5}},
        "control": {"socket": f"{d}/ctl.sock", "metrics": f"127.0.0.1:{mport}"}})
    env = dict(os.environ, LD_PRELOAD=TASKLIMIT, STAKEGATE_TASK_LIMIT_FILE=limit)
    gw = Gateway(f"{d}/gw.yaml", f"{d}/ctl.sock", env=env)
    api = gw.api()
    fails = lambda: metric_values(scrape(mport)).get("stakegate_dns_lookup_failures_total", 0)
    check(wait_for(lambda: fails() >= 2, 10), "DNS rounds run (the name fails each second)")

    print("\n== no thread can be made")
    open(limit, "w").close()
    before = outside_packets(api)
    time.sleep(2.5)  # two DNS rounds fall due
    alive = gw.proc.poll() is None
    check(alive, "the gateway runs on" + ("" if alive else f": {gw.log()[-800:]}"))
    check(outside_packets(api) > before, "the data path forwards")
    check(gw.log().count("dns: cannot start a thread") == 1, "the log says once that the DNS rounds cannot start")
    gen = api.call("Status")[1]["identity_generation"]

    gw.proc.send_signal(signal.SIGHUP)
    check(wait_for(lambda: "SIGHUP: reload refused (unavailable)" in gw.log(), 5),
          "SIGHUP is refused and logged")
    check(gw.proc.poll() is None, "the gateway runs on after SIGHUP")
    s, r = api.call("Reload")
    check(s == 503 and r["code"] == "unavailable" and "thread" in r["message"] and "unchanged" in r["message"],
          f"Reload: {s} {r}")
    check(api.call("Status")[1]["identity_generation"] == gen, "the running policy stays")

    table = node_infos([(A, "consensus", "198.18.70.1:3569", 100), (B, "consensus", "b.tasklimit.test:3569", 100),
                        (C, "consensus", "198.18.70.3:3569", 100)])
    s, r = api.call("ReplaceIdentities", table)
    check(s == 200 and r["nodes"] == 3, f"ReplaceIdentities applies on the control thread: {s} {r}")
    check(gw.proc.poll() is None, "still running")

    print("\n== threads can be made again")
    os.remove(limit)
    s, r = api.call("Reload")
    check(s == 200, f"Reload applies (nothing left waiting): {s} {r}")
    after_reload = fails()  # the reload looked the failing name up itself
    check(wait_for(lambda: "dns: lookup rounds run again" in gw.log(), 10) and wait_for(lambda: fails() > after_reload, 10),
          "the DNS rounds resume, and the log says so")
    check(outside_packets(api) > 0, "forwarding")
    rc, _, err = gw.stop()
    check(rc == 0, f"stopped cleanly: rc {rc}")
finish()
