#!/usr/bin/env python3
"""The inside NIC stops completing transmits (its link is paused) while the outside takes a
flood: first with a TX ring smaller than the mbuf pool (the ring fills: TX drops), then
with a ring larger than the pool (the pool runs dry: rx_nombuf). In both the gateway keeps
running and answering, every frame is accounted for, and when the pause ends the drops
stop and packets flow again (docs/reliability.md).

The virtual devices here copy or free every mbuf at once, so the inside port's transmit
descriptors are modelled by tests/nicsim/nicsim.cc, preloaded into the real binary: it
holds a reference on every mbuf the port is given until the modelled NIC completes it,
which it stops doing while the pause file says 1. The outside port is net_pcap on a veth
(it counts rx_nombuf when the pool is empty); the flood comes from a namespace."""
import os
import re
import subprocess
import time

from common import STAKEGATE, Gateway, TempDir, check, finish, free_port, metric_values, one_node_config, scrape, write_yaml
from netlab import Lab

NICSIM = os.environ["STAKEGATE_NICSIM"]
# An ARP request: not IP, so it passes (counted as l2) and every frame reaches the inside port.
ARP = bytes.fromhex("ffffffffffff020000000001" "0806" "0001080006040001" "020000000001c6120101"
                    "000000000000c6120102") + bytes(18)


def preload():
    """The model, after the ASan runtime when the binary is built with it (it must come first)."""
    libs = subprocess.run(["ldd", STAKEGATE], capture_output=True, text=True).stdout
    asan = re.search(r"(\S*libasan\.so\S*) => (\S+)", libs)
    return (asan.group(2) + ":" if asan else "") + NICSIM


def set_pause(path, on):
    """Written in place: the model maps the file, and truncating it under the mapping is a SIGBUS."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    os.pwrite(fd, b"1" if on else b"0", 0)
    os.close(fd)


def port_line(log, name):
    m = re.search(rf"port {name}: ipackets (\d+) opackets (\d+) imissed (\d+) rx_nombuf (\d+) oerrors (\d+)", log)
    return dict(zip(("ipackets", "opackets", "imissed", "rx_nombuf", "oerrors"), map(int, m.groups()))) if m else None


def scenario(lab, d, label, mbufs, descriptors, fault):
    """Runs one pause; fault is the counter the pause must raise, the other must stay 0."""
    print(f"-- {label}: {mbufs} mbufs, {descriptors} TX descriptors", flush=True)
    out_if = lab.root_link(label[0])
    ns = lab.add_ns(label)
    lab.veth(None, out_if, ns, "eth0")
    pause = os.path.join(d, f"pause-{label}")
    set_pause(pause, False)
    port = free_port()
    cfg = os.path.join(d, f"{label}.yaml")
    # The flood is ARP: it passes within the infra budget, here far above what the link carries.
    c = one_node_config(d, f"net_pcap0,rx_iface={out_if}", "net_pcap1,tx_pcap=/dev/null",
                        infra={"pps": 1e9, "burst_ms": 1000})
    c["dataplane"]["mbufs"] = mbufs
    c["control"] = {"socket": f"{d}/{label}.sock", "metrics": f"127.0.0.1:{port}"}
    write_yaml(cfg, c)

    env = dict(os.environ, LD_PRELOAD=preload(), STAKEGATE_NICSIM_PORT="net_pcap1",
               STAKEGATE_NICSIM_DESCRIPTORS=str(descriptors), STAKEGATE_NICSIM_PAUSE=pause)
    gw = Gateway(cfg, f"{d}/{label}.sock", env=env)
    check("nicsim: port net_pcap1" in gw.log(), f"{label}: the NIC model is on the inside port")
    warned = f"dataplane.mbufs {mbufs} is less than" in gw.log()
    check(warned == (fault == "rx_nombuf"),
          f"{label}: the start-up warning about a pool smaller than the rings {'is' if warned else 'is not'} logged")

    def sample():
        try:
            m = metric_values(scrape(port))
        except OSError:
            print(gw.log(), flush=True)
            raise
        return {"pass": m['stakegate_packets_total{direction="outside",role="l2",verdict="pass"}'],
                "tx_dropped": m['stakegate_port_tx_dropped_total{port="inside"}'],
                "rx_nombuf": m['stakegate_port_rx_nombuf_total{port="outside"}']}

    other = "rx_nombuf" if fault == "tx_dropped" else "tx_dropped"
    flood = lab.prog(ns, "raw-flood", "--iface", "eth0", "--frame", ARP.hex(), "--seconds", 7)
    time.sleep(1.5)
    s0 = sample()
    check(s0["pass"] > 0 and s0[fault] == 0 and s0[other] == 0,
          f"{label}: link running: {s0['pass']:.0f} passed, no drop")
    set_pause(pause, True)
    time.sleep(1)
    s1 = sample()
    time.sleep(1)
    s2 = sample()
    check(0 < s1[fault] < s2[fault], f"{label}: link paused: {fault} counted and rising ({s1[fault]:.0f}, then {s2[fault]:.0f})")
    check(s2[other] == 0, f"{label}: link paused: no {other}")
    status, _ = gw.api().call("Status")
    check(status == 200 and gw.proc.poll() is None, f"{label}: the gateway keeps running and answering")
    set_pause(pause, False)
    time.sleep(0.5)
    s3 = sample()
    time.sleep(1)
    s4 = sample()
    check(s4[fault] == s3[fault] and s4["pass"] > s3["pass"],
          f"{label}: link resumed: {fault} stopped ({s3[fault]:.0f} = {s4[fault]:.0f}), "
          f"{s4['pass'] - s3['pass']:.0f} passed in a second")
    sent = flood.result(timeout=20)["sent"]
    time.sleep(0.5)
    final = sample()
    rc, _, err = gw.stop()
    check(rc == 0, f"{label}: clean exit")
    o, i = port_line(err, "outside"), port_line(err, "inside")
    if not (o and i):
        check(False, f"{label}: the final port lines are logged")
        return
    # Every frame the flood sent is a received packet, an RX failure for lack of an mbuf,
    # or a frame the capture socket missed: nothing unaccounted.
    check(sent == o["ipackets"] + o["rx_nombuf"] + o["imissed"],
          f"{label}: {sent} sent = {o['ipackets']} received + {o['rx_nombuf']} rx_nombuf + {o['imissed']} missed")
    # Every passed packet was transmitted or counted as a TX drop.
    check(final["pass"] == i["opackets"] + final["tx_dropped"],
          f"{label}: {final['pass']:.0f} passed = {i['opackets']} transmitted + {final['tx_dropped']:.0f} TX drops")
    check(final["rx_nombuf"] == o["rx_nombuf"] and f"tx dropped {int(final['tx_dropped'])}" in err,
          f"{label}: the final lines report the same drops as the metrics")


with TempDir() as d, Lab() as lab:
    # A ring smaller than the pool: the ring fills, passed packets are refused and counted.
    scenario(lab, d, "ring", mbufs=8191, descriptors=512, fault="tx_dropped")
    # A ring larger than the pool: held mbufs drain the pool, RX finds none.
    scenario(lab, d, "pool", mbufs=2047, descriptors=4096, fault="rx_nombuf")
finish()
