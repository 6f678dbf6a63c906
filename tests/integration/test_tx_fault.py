#!/usr/bin/env python3
"""A port that refuses to transmit, at full speed (docs/reliability.md): the inside port is
net_pcap on a veth whose link goes down mid-run. Passed packets the port does not take
are counted (stakegate_port_tx_dropped_total) and freed, the gateway keeps running and
answering, and when the link comes back the drops stop and packets arrive again."""
import json
import os
import subprocess
import time

from common import Gateway, TempDir, check, finish, free_port, metric_values, one_node_config, scrape, write_pcap, write_yaml
from netlab import Lab


def rx_packets(ifname):
    info = json.loads(subprocess.run(["ip", "-j", "-s", "link", "show", ifname], capture_output=True, text=True).stdout)
    return info[0]["stats64"]["rx"]["packets"]


with TempDir() as d, Lab() as lab:
    a, b = lab.root_link("t"), lab.root_link("u")
    lab.veth(None, a, None, b)
    port = free_port()
    cfg = os.path.join(d, "tx.yaml")
    # Endless frames of an EtherType the config lets through (IEEE's local experimental
    # 0x88b5), within an infra budget far above what one core can send: all of it passes.
    frame = b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01\x88\xb5" + b"\x00" * 46
    write_pcap(os.path.join(d, "in.pcap"), [frame] * 64)
    c = one_node_config(d, f"net_pcap0,rx_pcap={d}/in.pcap,infinite_rx=1", f"net_pcap1,tx_iface={a}",
                        infra={"pps": 1e9, "burst_ms": 1000, "ethertypes": ["0x88b5"]})
    c["control"]["metrics"] = f"127.0.0.1:{port}"
    write_yaml(cfg, c)

    gw = Gateway(cfg, f"{d}/ctl.sock")

    def sample():
        m = metric_values(scrape(port))
        return (m['stakegate_port_tx_dropped_total{port="inside"}'],
                m['stakegate_packets_total{direction="outside",role="l2",verdict="pass"}'], rx_packets(b))

    time.sleep(1)
    d0, p0, r0 = sample()
    check(d0 == 0 and p0 > 0 and r0 > 0, f"link up: {p0:.0f} passed, {r0} arrived on the peer, no TX drop")
    subprocess.run(["ip", "link", "set", a, "down"], check=True)
    time.sleep(1)
    d1, p1, _ = sample()
    time.sleep(1)
    d2, p2, _ = sample()
    check(0 < d1 < d2 and p2 > p1, f"link down: passed packets the port refuses are counted as TX drops ({d1:.0f}, then {d2:.0f})")
    s, st = gw.api().call("Status")
    check(s == 200 and gw.proc.poll() is None, "the gateway keeps running and answering")
    subprocess.run(["ip", "link", "set", a, "up"], check=True)
    time.sleep(1)
    d3, _, r3 = sample()
    time.sleep(1)
    d4, _, r4 = sample()
    check(d4 == d3 and r4 > r3, f"link up again: no more TX drops ({d3:.0f} = {d4:.0f}), packets arrive again (+{r4 - r3})")
    rc, out, err = gw.stop()
    check(rc == 0 and f"tx dropped {int(d4)}" in err, f"clean exit; the final line reports the {int(d4)} TX drops")
finish()
