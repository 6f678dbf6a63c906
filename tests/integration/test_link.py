#!/usr/bin/env python3
"""A port's link goes down and comes back while the gateway runs: the operator hears of
it at once (docs/operations.md, "Links").

The gateway is inline: while either link is down, every node behind it is cut off, and
nothing in the packet counters says why (no packet arrives to be counted). So each change
is logged as it happens (the control loop reads both links every 50 ms), and the links
are in the metrics (`stakegate_port_link_up`, `..._link_speed_mbps`,
`..._link_changes_total`, for the `StakegatePortLinkDown` alert) and in `stakegatectl
status`. The virtual devices here report a link that is always up, so a preloaded model
of a NIC's link (tests/nicsim/link_sim.cc) answers for the inside port from a file the
test writes, as a driver reports a cable pulled or a switch port shut.
"""
import os
import subprocess
import time

from common import STAKEGATECTL, Gateway, TempDir, check, finish, free_port, metric_values, one_node_config, \
    scrape, wait_for, write_yaml

LINKSIM = os.environ["STAKEGATE_LINKSIM"]


def links(gw):
    return {p["name"]: p for p in gw.api().call("Status")[1].get("ports", [])}


def check_metrics(port, up, speed, changes, what):
    """The inside link's three series as given, and the outside link (not modelled) up."""
    m = {k: v for k, v in metric_values(scrape(port)).items() if k.startswith("stakegate_port_link")}
    want = {'stakegate_port_link_up{port="inside"}': up, 'stakegate_port_link_speed_mbps{port="inside"}': speed,
            'stakegate_port_link_changes_total{port="inside"}': changes, 'stakegate_port_link_up{port="outside"}': 1}
    check(all(m.get(k) == v for k, v in want.items()), f"metrics: {what}: {m}")


def set_link(path, text):
    """What the model's NIC reports from now on (replaced whole: never read half-written)."""
    with open(path + ".new", "w") as f:
        f.write(text)
    os.replace(path + ".new", path)


def ctl_status(d):
    r = subprocess.run([STAKEGATECTL, "--socket", f"{d}/ctl.sock", "status"], capture_output=True, text=True, timeout=30)
    return r.stdout


def start(d, state, mport):
    cfg = one_node_config(d, "net_null0", "net_null1,no-rx=1")
    cfg["control"]["metrics"] = f"127.0.0.1:{mport}"
    cfg["dataplane"]["stats_interval_s"] = 1
    write_yaml(f"{d}/gw.yaml", cfg)
    return Gateway(f"{d}/gw.yaml", f"{d}/ctl.sock",
                   env=dict(os.environ, LD_PRELOAD=LINKSIM, STAKEGATE_LINKSIM_PORT="net_null1", STAKEGATE_LINKSIM_FILE=state))


# A NIC often brings its link up seconds after the port starts: that is said, and its
# coming up is no change of the link (the flapping alert counts changes).
with TempDir() as d:
    state = f"{d}/link"
    set_link(state, "down")
    mport = free_port()
    gw = start(d, state, mport)
    check("port inside (net_null1): link down at start (a NIC may take seconds to bring it up)" in gw.log(),
          "a link down at start is said")
    set_link(state, "up 10000")
    check(wait_for(lambda: links(gw).get("inside", {}).get("link_up"), 5, every=0.02), "Status: then up")
    check("port inside (net_null1): link up, 10 Gbps full-duplex\n" in gw.log() and " again" not in gw.log(),
          "its coming up is logged as the link's first state, not as a return")
    check_metrics(mport, 1, 10000, 0, "up after the start, no change counted")
    rc, _, _ = gw.stop()
    check(rc == 0, f"the gateway stops cleanly (exit code {rc})")

with TempDir() as d:
    state = f"{d}/link"
    set_link(state, "up 25000")
    mport = free_port()
    gw = start(d, state, mport)

    now = links(gw)
    inside, outside = now.get("inside", {}), now.get("outside", {})
    check(inside.get("link_up") and inside.get("speed_mbps") == 25000 and inside.get("full_duplex")
          and int(inside.get("link_changes", -1)) == 0,
          f"Status: the inside link is up at 25 Gbps, no change yet: {inside}")
    check(outside.get("link_up") is True, f"Status: the outside link (net_null, not modelled) is up: {outside}")
    check_metrics(mport, 1, 25000, 0, "both links up, the inside one at 25000 Mbit/s")
    check("port inside (net_null1): link up, 25 Gbps full-duplex" in gw.log(), "the start log gives each link")

    set_link(state, "down")  # the cable is pulled
    t0 = time.monotonic()
    down = wait_for(lambda: not links(gw).get("inside", {}).get("link_up", True), 5, every=0.02)
    seen = time.monotonic() - t0
    check(down and seen < 1.0, f"Status shows the inside link down {seen:.2f} s after it went")
    check(wait_for(lambda: "port inside (net_null1): link down: nothing passes on it until it comes up" in gw.log(), 5),
          "the log says so at once, naming the port and device")
    check_metrics(mport, 0, 0, 1, "the inside link down, one change; the outside one still up")
    check(wait_for(lambda: "inside rate 0.000 Mpps; LINK DOWN: inside" in gw.log(), 5),
          "the periodic summary line says so while it lasts")
    out = ctl_status(d)
    check("port inside: link down (ATTENTION: nothing passes on it); 1 link changes since start" in out,
          f"stakegatectl status says so: {[l for l in out.splitlines() if l.startswith('port')]}")

    set_link(state, "up 1000")  # back, at a lower speed (a bad cable, a wrong switch port)
    up = wait_for(lambda: links(gw).get("inside", {}).get("link_up"), 5, every=0.02)
    check(up, "Status shows the inside link up again")
    check(wait_for(lambda: "port inside (net_null1): link up, 1 Gbps full-duplex again" in gw.log(), 5),
          "the log says it is back, at its new speed")
    check_metrics(mport, 1, 1000, 2, "the inside link up at 1000 Mbit/s after two changes")
    rc, _, err = gw.stop()
    check(rc == 0, f"the gateway stops cleanly (exit code {rc})")

finish()
