"""Replay of generated scenarios (both directions, as a span port captures them): exact
counts for every deterministic verdict, what must pass (ARP, ICMP errors about the
cluster's packets, neighbour discovery, replies on the cluster's sessions, honest nodes'
verified connections), the passed capture, and determinism (two replays, same bytes).
Then a capture taken with a snap length: the same verdicts and byte counts as the whole
capture, its passed frames cut as they came (their wire lengths kept). Last, a capture cut
short in the middle of a frame (its writer killed): the frames before the cut are judged
as a whole capture of just them would be, with a warning, not an error. The same traffic
captured without Ethernet headers (Linux cooked v1 and v2, as tcpdump -i any writes them,
and raw IP) gets the same verdicts; a capture of another link type is refused by name. And
the direction told by source MAC (--inside-mac): a frame forged with a cluster address is
spoofed. A flood of forged TCP ACKs from ever new sources gets what the same flood as UDP
gets, never the pool's reserve for verified connections."""
import json
import os
import struct

from common import (STAKEGATE, TempDir, check, finish, generate, one_node_config, pcap_records, raw_ip, read_pcap,
                    relink_pcap, replay, run, sll, sll2, write_pcap, write_yaml)

for fmt in ["snapshot", "node-infos"]:
    with TempDir() as d:
        opts = ["--format", fmt, "--nodes-per-role", 5, "--flood-stake", 0.25, "--unregistered-flood", 1,
                "--duration-ms", 500, "--capacity-pps", 20000, "--malformed", 160, "--non-ip", 70,
                "--blocklisted", 90, "--port-denied", 110, "--unregistered-private", 130,
                "--ipv6-fraction", 0.3, "--vlan-fraction", 0.3, "--block-nodes", 1]
        if fmt == "node-infos":
            opts += ["--ejected", 0]
        exp = generate(d, *opts)
        cfg, pcap = os.path.join(d, "config.yaml"), os.path.join(d, "scenario.pcap")
        rep, table = replay(cfg, pcap, os.path.join(d, "pass.pcap"), os.path.join(d, "r.json"))
        drops = rep["drops_by_reason"]
        for reason, n in exp["expected_drops"].items():
            check(drops[reason] == n, f"[{fmt}] {reason}: {drops[reason]} dropped, {n} sent")
        check(exp["expected_drops"]["ejected"] == (20 if fmt == "snapshot" else 0), f"[{fmt}] ejected traffic present as intended")
        check(exp["expected_drops"]["blocklisted"] == 90 + 20, f"[{fmt}] blocklisted range and blocked node both sent")
        outside = rep["by_direction"]["outside"]
        l2 = outside["l2"]["packets"]
        check(l2["pass"] == exp["l2"] == 35 and l2["l2_denied"] == exp["expected_drops"]["l2_denied"] == 35,
              f"[{fmt}] ARP passes as l2 ({l2['pass']}), other EtherTypes are l2_denied ({l2['l2_denied']})")
        infra = outside["infra"]["packets"]["pass"]
        check(infra == exp["expected_passes"]["infra"] > 0, f"[{fmt}] ICMP errors and neighbour discovery pass as infra: {infra}")
        unreg = outside["unregistered"]["packets"]["pass"]
        want = exp["expected_passes"]["session_replies"] + exp["unregistered_public_sent"]
        check(unreg >= want, f"[{fmt}] replies on the cluster's sessions pass (unregistered passes {unreg} >= {want})")
        check(rep["sessions"]["verified"] == exp["handshakes"], f"[{fmt}] every node's connection was verified")
        check(rep["totals"]["inside"]["packets"] == exp["inside_packets"], f"[{fmt}] the cluster's frames count as inside")
        total = rep["totals"]["outside"]
        check(total["packets"] == exp["packets"], f"[{fmt}] every packet counted once: {total['packets']}")
        passed = read_pcap(os.path.join(d, "pass.pcap"))
        check(len(passed) == total["passed"], f"[{fmt}] --out holds exactly the passed packets ({len(passed)})")
        check(exp["vlan_tagged"] > 0 and exp["ipv6"] > 0, f"[{fmt}] the scenario carries VLAN tags and IPv6")
        check(drops["over_rate"] > 0 and drops["unregistered_over_rate"] > 0, f"[{fmt}] floods are policed")

        nodes = {n["node_id"]: n for n in rep["nodes"]}
        for h in exp["honest"]:
            n = nodes[h["node_id"]]
            check(n["passed"] == h["sent"] and n["request_channel"]["passed"] == 1,
                  f"[{fmt}] honest node {h['node_id'][:8]} passed {n['passed']} of {h['sent']} on its verified connection "
                  f"(its SYN through the request channel)")
        for fl in exp["flooders"]:
            n = nodes[fl["node_id"]]
            limit = fl["rate_pps"] * exp["duration_ms"] / 1000 + fl["burst"] + 1
            check(n["passed"] <= limit and n["dropped"]["over_rate"] > 0,
                  f"[{fmt}] flooder {fl['node_id'][:8]} held to {n['passed']} <= {limit:.0f}")
        for line in ["class", "unregistered", "consensus", "l2"]:
            check(line in table, f"[{fmt}] the printed table has a '{line}' row")

        rep2, _ = replay(cfg, pcap, os.path.join(d, "pass2.pcap"), os.path.join(d, "r2.json"))
        # The same bundles too, under new names (the first replay's are still there).
        ids = lambda r: [(c["node_id"], c["samples"], c["reason"]) for c in r.pop("evidence")]
        check(ids(rep2) == ids(rep) and rep2 == rep, f"[{fmt}] a second replay reports the same counts and evidence")
        check(open(os.path.join(d, "pass.pcap"), "rb").read() == open(os.path.join(d, "pass2.pcap"), "rb").read(),
              f"[{fmt}] a second replay writes the same capture")


def cut_capture(src, dst, snap):
    """`src` as a capture taken with snap length `snap`: each record keeps its first `snap`
    bytes and its length on the wire."""
    data = open(src, "rb").read()
    order = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    out = bytearray(data[:16] + struct.pack(order + "I", snap) + data[20:24])
    off = 24
    while off + 16 <= len(data):
        sec, frac, caplen, wire = struct.unpack(order + "IIII", data[off:off + 16])
        frame = data[off + 16:off + 16 + caplen]
        out += struct.pack(order + "IIII", sec, frac, min(caplen, snap), wire) + frame[:snap]
        off += 16 + caplen
    open(dst, "wb").write(out)


def records(path):
    """(captured, wire) lengths of a capture's records."""
    return [(len(frame), wire) for _, _, frame, wire in pcap_records(path)[1]]


with TempDir() as d:
    exp = generate(d, "--frame-size", 1500, "--duration-ms", 200, "--ipv6-fraction", 0.3, "--vlan-fraction", 0.3,
                   "--block-nodes", 1)
    cfg, pcap = os.path.join(d, "config.yaml"), os.path.join(d, "scenario.pcap")
    whole, _ = replay(cfg, pcap, os.path.join(d, "pass.pcap"), os.path.join(d, "whole.json"))
    cut_capture(pcap, os.path.join(d, "cut.pcap"), 128)
    cut, _ = replay(cfg, os.path.join(d, "cut.pcap"), os.path.join(d, "pass-cut.pcap"), os.path.join(d, "cut.json"))
    check(sum(1 for c, w in records(os.path.join(d, "cut.pcap")) if c < w) > 1000, "the capture holds cut frames")
    for key in ("drops_by_reason", "by_direction", "totals", "sessions"):
        check(cut[key] == whole[key], f"snap length 128: {key} as with whole frames")
    got, want = records(os.path.join(d, "pass-cut.pcap")), records(os.path.join(d, "pass.pcap"))
    check(len(got) == len(want) > 0 and all(c == min(w, 128) for c, w in got) and [w for _, w in got] == [w for _, w in want],
          f"the passed frames are written cut, with their wire lengths ({len(got)})")

    # Cut short in the middle of a record, against a whole capture of the records before it.
    data = open(pcap, "rb").read()
    order = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    offs, off = [], 24
    while off + 16 <= len(data):
        offs.append(off)
        off += 16 + struct.unpack(order + "I", data[off + 8:off + 12])[0]
    k = len(offs) // 2
    open(os.path.join(d, "head.pcap"), "wb").write(data[:offs[k]])
    open(os.path.join(d, "killed.pcap"), "wb").write(data[:offs[k] + 16 + 30])  # frame k+1 cut after 30 bytes
    head, _ = replay(cfg, os.path.join(d, "head.pcap"), report=os.path.join(d, "head.json"))
    p = run([STAKEGATE, "replay", "--config", cfg, "--pcap", os.path.join(d, "killed.pcap"),
             "--report", os.path.join(d, "killed.json")])
    killed = json.load(open(os.path.join(d, "killed.json")))
    check(f"killed.pcap: cut short or damaged after frame {k} (" in p.stderr and "the rest of the file is ignored" in p.stderr,
          f"a capture cut in its frame {k + 1} is warned about, naming the file and the frame: {p.stderr.strip()[-200:]}")
    for key in ("drops_by_reason", "by_direction", "totals", "sessions"):
        check(killed[key] == head[key], f"cut short: {key} as for the {k} whole frames before the cut")
    check(killed["totals"]["outside"]["packets"] + killed["totals"]["inside"]["packets"] == k,
          f"cut short: all {k} frames before the cut counted")

# Captures without Ethernet headers: each record becomes the Ethernet frame it came from,
# but for the destination MAC (zero: the cooked header does not keep it).
VERDICTS = ("drops_by_reason", "by_direction", "totals", "sessions", "nodes", "graylist")
zero_dst = lambda f: b"\0" * 6 + f[6:]
with TempDir() as d:
    generate(d, "--frame-size", 300, "--duration-ms", 300, "--ipv6-fraction", 0.3, "--vlan-fraction", 0.3, "--block-nodes", 1)
    # A cooked header needs a whole Ethernet header to come from: the scenario's frames cut
    # shorter (malformed) are left out.
    cfg, pcap = os.path.join(d, "config.yaml"), os.path.join(d, "eth.pcap")
    relink_pcap(os.path.join(d, "scenario.pcap"), pcap, 1, lambda f: f if len(f) >= 14 else None)
    eth, _ = replay(cfg, pcap, os.path.join(d, "pass.pcap"), os.path.join(d, "eth.json"))
    check(eth["drops_by_reason"]["malformed"] > 0, "the capture still holds malformed frames")
    want = [zero_dst(f) for f in read_pcap(os.path.join(d, "pass.pcap"))]
    cut_capture(pcap, os.path.join(d, "cut.pcap"), 100)
    eth_cut, _ = replay(cfg, os.path.join(d, "cut.pcap"), report=os.path.join(d, "eth-cut.json"))
    for name, link, conv, src, base in (("LINUX_SLL", 113, sll, pcap, eth), ("LINUX_SLL2", 276, sll2, pcap, eth),
                                        ("LINUX_SLL cut to 100 bytes", 113, sll, os.path.join(d, "cut.pcap"), eth_cut)):
        path = os.path.join(d, f"{link}.pcap")
        relink_pcap(src, path, link, conv)
        got, _ = replay(cfg, path, os.path.join(d, f"pass-{link}.pcap"), os.path.join(d, f"{link}.json"))
        check(all(got[k] == base[k] for k in VERDICTS) and got["totals"]["outside"]["packets"] > 20000,
              f"{name}: the verdicts, counters, sessions and scores of the Ethernet capture "
              f"({got['totals']['outside']['passed']} of {got['totals']['outside']['packets']} passed)")
        if src == pcap:
            check([zero_dst(f) for f in read_pcap(os.path.join(d, f"pass-{link}.pcap"))] == want,
                  f"{name}: --out holds the passed frames as Ethernet frames, VLAN tags kept ({len(want)})")
    # Raw IP holds only IP packets: against the Ethernet capture of the same ones.
    ip_only = os.path.join(d, "ip.pcap")
    relink_pcap(pcap, ip_only, 1, lambda f: f if raw_ip(f) is not None else None)
    relink_pcap(pcap, os.path.join(d, "raw.pcap"), 101, raw_ip)
    base, _ = replay(cfg, ip_only, report=os.path.join(d, "ip.json"))
    got, _ = replay(cfg, os.path.join(d, "raw.pcap"), report=os.path.join(d, "raw.json"))
    check(all(got[k] == base[k] for k in VERDICTS) and got["totals"]["outside"]["packets"] > 1000,
          f"raw IP: the verdicts of the same IP packets with Ethernet headers ({got['totals']['outside']['packets']})")
    relink_pcap(pcap, os.path.join(d, "wifi.pcap"), 105, lambda f: f)
    p = run([STAKEGATE, "replay", "--config", cfg, "--pcap", os.path.join(d, "wifi.pcap")], expect_rc=1)
    check("wifi.pcap: a IEEE802_11" in p.stderr and "link type 105" in p.stderr and "tcpdump -i any" in p.stderr,
          f"a capture of another link type is refused, naming the file and its link type: {p.stderr.strip()[-160:]}")

# The direction told by MAC (--inside-mac): a frame forged with a cluster address from the
# outside is judged (spoofed), as `run` judges it, instead of going out and opening a
# session that lets a forged "reply" through.
INSIDE_MAC, ROUTER_MAC, GW_MAC = "02:00:00:00:00:aa", "02:00:00:00:00:bb", "02:00:00:00:00:01"


def udp_frame(smac, src, dst, sport, dport):
    mac = lambda m: bytes(int(x, 16) for x in m.split(":"))
    ip = lambda a: bytes(int(x) for x in a.split("."))
    udp = struct.pack("!HHHH", sport, dport, 8 + 18, 0) + b"\0" * 18
    iph = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, ip(src), ip(dst))
    return mac(GW_MAC) + mac(smac) + b"\x08\x00" + iph + udp


with TempDir() as d:
    cfg = os.path.join(d, "gw.yaml")
    write_yaml(cfg, one_node_config(d, "net_null0", "net_null1", cluster={"prefixes": ["198.18.255.0/24"]}))
    frames = [udp_frame(INSIDE_MAC, "198.18.255.1", "198.18.9.9", 5353, 53),   # the cluster's query
              udp_frame(ROUTER_MAC, "198.18.9.9", "198.18.255.1", 53, 5353),   # its answer
              udp_frame(ROUTER_MAC, "198.18.255.1", "198.18.9.8", 6000, 53),   # forged: a cluster address from outside
              udp_frame(ROUTER_MAC, "198.18.9.8", "198.18.255.1", 53, 6000)]   # the "reply" it would let in
    write_pcap(os.path.join(d, "dns.pcap"), frames)
    by_prefix, _ = replay(cfg, os.path.join(d, "dns.pcap"), report=os.path.join(d, "prefix.json"))
    check(by_prefix["totals"]["inside"]["packets"] == 2 and by_prefix["totals"]["outside"]["passed"] == 2,
          f"by cluster.prefixes: the forged frame goes out, and its 'reply' passes: {by_prefix['totals']}")
    p = run([STAKEGATE, "replay", "--config", cfg, "--pcap", os.path.join(d, "dns.pcap"), "--inside-mac", INSIDE_MAC,
             "--report", os.path.join(d, "mac.json")])
    by_mac = json.load(open(os.path.join(d, "mac.json")))
    drops = by_mac["drops_by_reason"]
    check(by_mac["totals"]["inside"]["packets"] == 1 and by_mac["totals"]["outside"]["passed"] == 1 and
          drops["spoofed"] == 1 and drops["unregistered"] == 1,
          f"--inside-mac: the real answer passes, the forged frame is spoofed, its 'reply' unregistered: "
          f"{by_mac['totals']} {drops}")
    p = run([STAKEGATE, "replay", "--config", cfg, "--pcap", os.path.join(d, "dns.pcap"), "--inside-mac",
             f"{INSIDE_MAC},02:00:00:00:0z:01"], expect_rc=1)
    check("--inside-mac: '02:00:00:00:0z:01' is not a MAC address" in p.stderr, f"a bad MAC is named: {p.stderr.strip()}")


def arp_frame(smac, op, sender, target):
    mac = lambda m: bytes(int(x, 16) for x in m.split(":"))
    ip = lambda a: bytes(int(x) for x in a.split("."))
    body = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, op, mac(smac), ip(sender), b"\0" * 6, ip(target))
    return b"\xff" * 6 + mac(smac) + b"\x08\x06" + body + b"\0" * 18


# An ARP flood drains the infra budget (one frame deep here). The router's unsolicited
# reply is dropped with it; the cluster's own request (its sender is a cluster address:
# it goes out) lets two answers through.
with TempDir() as d:
    cfg = os.path.join(d, "gw.yaml")
    write_yaml(cfg, one_node_config(d, "net_null0", "net_null1", cluster={"prefixes": ["198.18.255.0/24"]},
                                    infra={"pps": 10, "burst_ms": 100}))
    flood = [arp_frame("02:00:00:00:00:66", 1, "198.18.9.66", "198.18.255.1")] * 20
    answer = arp_frame(ROUTER_MAC, 2, "198.18.9.1", "198.18.255.1")
    write_pcap(os.path.join(d, "arp.pcap"),
               flood + [answer, arp_frame(INSIDE_MAC, 1, "198.18.255.1", "198.18.9.1")] + [answer] * 3)
    rep, _ = replay(cfg, os.path.join(d, "arp.pcap"), os.path.join(d, "pass.pcap"), report=os.path.join(d, "arp.json"))
    passed = read_pcap(os.path.join(d, "pass.pcap"))
    check(rep["totals"]["inside"]["packets"] == 1 and passed == [flood[0]] + [answer] * 2
          and rep["drops_by_reason"]["infra_over_rate"] == 19 + 2,
          f"the flood is held to the budget (1 of 20), the router's unsolicited reply too; of its 3 answers to the "
          f"cluster's request, 2 pass: {len(passed)} passed, {rep['drops_by_reason']['infra_over_rate']} infra_over_rate")


def dhcp4(src, dst, op, xid, mac="02:00:00:00:00:aa"):
    """A DHCP message over UDP (BOOTP op 1 from the client 68 -> 67, op 2 from a server)."""
    from flows import udp
    chaddr = bytes(int(x, 16) for x in mac.split(":"))
    body = struct.pack("!BBBBIHHIIII16s64s128sI", op, 1, 6, 0, xid, 0, 0, 0, 0, 0, 0, chaddr, b"", b"", 0x63825363)
    return udp(src, dst, 68 if op == 1 else 67, 67 if op == 1 else 68, body + b"\xff")


# A node asking for an address by DHCP: its DISCOVER and REQUEST (from 0.0.0.0: the
# client's messages go out, whatever their source) open no session, and the server's
# OFFER and ACK pass as answers to them; an answer to no transaction of the cluster's is
# `unregistered`, as before.
with TempDir() as d:
    cfg = os.path.join(d, "gw.yaml")
    write_yaml(cfg, one_node_config(d, "net_null0", "net_null1", cluster={"prefixes": ["198.18.255.0/24"]}))
    server, bcast = "198.18.9.67", "255.255.255.255"
    offer, ack = dhcp4(server, bcast, 2, 0x5eed), dhcp4(server, "198.18.255.9", 2, 0x5eed)
    forged = dhcp4(server, bcast, 2, 0x5eee)
    write_pcap(os.path.join(d, "dhcp.pcap"), [offer, dhcp4("0.0.0.0", bcast, 1, 0x5eed), offer, forged,
                                              dhcp4("0.0.0.0", bcast, 1, 0x5eed), ack])
    rep, _ = replay(cfg, os.path.join(d, "dhcp.pcap"), os.path.join(d, "pass.pcap"), report=os.path.join(d, "dhcp.json"))
    passed = read_pcap(os.path.join(d, "pass.pcap"))
    check(rep["totals"]["inside"]["packets"] == 2 and passed == [offer, ack]
          and rep["drops_by_reason"]["unregistered"] == 2,
          f"the OFFER and ACK of the cluster's DHCP transaction pass (the same OFFER before the DISCOVER and one "
          f"with another transaction ID do not): {len(passed)} passed, {rep['drops_by_reason']['unregistered']} "
          f"unregistered, {rep['totals']['inside']['packets']} from the inside")

# A node's tunnels to a remote site (GRE over IPv4, IPsec ESP over IPv6): no ports, so the
# session is the two addresses and the protocol. The remote's packets before the node's
# first one, and another protocol between the same addresses, are `unregistered`.
with TempDir() as d:
    from flows import frame
    cfg = os.path.join(d, "gw.yaml")
    write_yaml(cfg, one_node_config(d, "net_null0", "net_null1", cluster={"prefixes": ["198.18.255.0/24", "2001:2:ff::/64"]}))
    gre = lambda src, dst: frame(src, dst, 47, struct.pack("!HH", 0, 0x0800) + bytes(28))
    esp = lambda src, dst: frame(src, dst, 50, struct.pack("!II", 0x1000, 7) + bytes(32))
    node4, site4, node6, site6 = "198.18.255.9", "198.18.9.47", "2001:2:ff::9", "2001:2:9::47"
    back = [gre(site4, node4), esp(site6, node6)]
    write_pcap(os.path.join(d, "tunnel.pcap"), back + [gre(node4, site4), esp(node6, site6)] + back * 3
               + [esp(site4, node4), gre(site6, node6)])
    rep, _ = replay(cfg, os.path.join(d, "tunnel.pcap"), os.path.join(d, "pass.pcap"), report=os.path.join(d, "tunnel.json"))
    passed = read_pcap(os.path.join(d, "pass.pcap"))
    check(rep["totals"]["inside"]["packets"] == 2 and passed == back * 3 and rep["drops_by_reason"]["unregistered"] == 4,
          f"a node's GRE and ESP tunnels get their remote's packets back ({len(passed)} of 6 passed), and only those "
          f"({rep['drops_by_reason']['unregistered']} unregistered: 2 before the node's first, 2 of another protocol)")

# A flood from ever new sources (each within its own bucket) empties the unregistered pool.
# As TCP ACKs with guessed numbers it is looked up against the cluster's connections, finds
# none, and gets exactly what the same flood as UDP gets: the pool's burst and rate, never
# the reserve kept for clients' verified connections.
with TempDir() as d:
    got = {}
    for kind in ("udp", "tcp"):
        out = os.path.join(d, kind)
        exp = generate(out, "--nodes-per-role", 2, "--duration-ms", 300, "--capacity-pps", 20000,
                       "--unregistered-sources", 0, "--unregistered-flood", 2, "--unregistered-flood-sources", 30000,
                       *(["--unregistered-flood-tcp"] if kind == "tcp" else []))
        rep, _ = replay(os.path.join(out, "config.yaml"), os.path.join(out, "scenario.pcap"),
                        report=os.path.join(out, "r.json"))
        refused = rep["drops_by_reason"]["unregistered_over_rate"]
        got[kind] = (exp["unregistered_flood_sent"] - refused, refused, rep["unregistered_reserve"])
    udp, tcp = got["udp"], got["tcp"]
    pool = 0.05 * 20000
    check(tcp == udp and tcp[2] == 0 and tcp[1] > 10000 and tcp[0] <= 0.1 * pool + 0.3 * pool + 1,
          f"forged ACKs from ever new sources get what a UDP flood gets (passed, refused, on the reserve: TCP {tcp}, "
          f"UDP {udp}), at most the pool's burst and rate ({0.4 * pool:.0f})")

finish()
