#!/usr/bin/env python3
"""Seed corpora for the fuzz targets, generated from the project's own formats:
    make_seeds.py OUT_DIR   ->  OUT_DIR/{packet,identity,config,api}/*
Frames of every kind the parser knows (and broken ones), the bundled Flow identity files,
the configs in config/, and a request for every control API RPC."""
import json
import os
import struct
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
out = sys.argv[1]


def put(target, name, data):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def eth(ethertype, vlans=()):
    h = b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01"
    for tpid, vid in vlans:
        h += struct.pack("!HH", tpid, vid)
    return h + struct.pack("!H", ethertype)


def l4(proto, dport, payload=b"x" * 8):
    if proto == 6:
        return struct.pack("!HHIIBBHHH", 40000, dport, 1, 0, 0x50, 0x18, 65535, 0, 0) + payload
    return struct.pack("!HHHH", 40000, dport, 8 + len(payload), 0) + payload


def ipv4(src, proto=6, dport=3569, frag=0, ihl=5, payload=None):
    body = payload if payload is not None else l4(proto, dport)
    opts = b"\x01" * ((ihl - 5) * 4)
    total = 20 + len(opts) + len(body)
    return struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, total, 1, frag, 64, proto, 0, bytes(src), bytes([198, 18, 255, 1])) + opts + body


def ipv6(src_last, nh=17, dport=9000, ext=b""):
    """ext: a hop-by-hop header whose own next-header byte says what follows it."""
    body = l4(ext[0] if ext else nh, dport)
    first_nh = 0 if ext else nh
    return (struct.pack("!IHBB", 0x60000000, len(ext) + len(body), first_nh, 64) + bytes(15) + bytes([src_last])
            + bytes.fromhex("20010002" + "00" * 11 + "ff")) + ext + body


def nd(icmp_type, body, src=b"\xfe\x80" + bytes(13) + b"\x01"):
    """An IPv6 neighbour discovery message (hop limit 255) from fe80::1, the fuzz config's
    guarded router address: `body` after the 4-byte ICMPv6 type, code and checksum."""
    msg = struct.pack("!BBH", icmp_type, 0, 0) + body
    return eth(0x86DD) + struct.pack("!IHBB", 0x60000000, len(msg), 58, 255) + src + bytes.fromhex("ff02" + "00" * 13 + "01") + msg


LLA = b"\x02\x00\x00\x00\x00\x66"  # another MAC than the router's
ROUTER6 = b"\xfe\x80" + bytes(13) + b"\x01"
frames = {
    "v4-tcp-staked": eth(0x0800) + ipv4([198, 18, 1, 1]),
    "v4-udp-unregistered-api": eth(0x0800) + ipv4([203, 0, 113, 7], 17, 9000),
    "v4-port-denied": eth(0x0800) + ipv4([198, 18, 1, 1], 6, 22),
    "v4-blocklisted": eth(0x0800) + ipv4([198, 51, 100, 9]),
    "v4-options": eth(0x0800) + ipv4([198, 18, 1, 1], ihl=8),
    "v4-fragment": eth(0x0800) + ipv4([198, 18, 1, 1], frag=0x0010, payload=b"y" * 16),
    "v4-icmp": eth(0x0800) + ipv4([198, 18, 1, 1], 1, payload=b"\x08\x00" + b"z" * 6),
    "vlan-v4": eth(0x0800, [(0x8100, 100)]) + ipv4([198, 18, 1, 4]),
    "qinq-v4": eth(0x0800, [(0x88a8, 10), (0x8100, 20)]) + ipv4([198, 18, 1, 3]),
    "v6-udp": eth(0x86DD) + ipv6(2, 17, 3569),
    "v6-ext": eth(0x86DD) + ipv6(2, 17, 9000, ext=bytes([17, 0]) + bytes(6)),
    "arp": eth(0x0806) + struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, b"\x02" * 6, bytes([198, 18, 0, 1]), bytes(6), bytes([198, 18, 0, 2])),
    "arp-router-claim": eth(0x0806) + struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 2, LLA, bytes([198, 18, 0, 1]), bytes(6), bytes([198, 18, 255, 1])),
    "nd-na-tlla": nd(136, bytes(4) + ROUTER6 + b"\x02\x01" + LLA),
    "nd-ra-slla": nd(134, bytes(12) + b"\x01\x01" + LLA + b"\x05\x01" + bytes(6)),
    "nd-redirect": nd(137, bytes(4) + ROUTER6 + bytes(16) + b"\x02\x01" + LLA + b"\x04\x00"),
    "igmp-query": eth(0x0800) + struct.pack("!BBHHHBBH4s4s", 0x46, 0, 32, 1, 0, 1, 2, 0, bytes([198, 18, 0, 1]), bytes([224, 0, 0, 1]))
                  + b"\x94\x04\x00\x00" + b"\x11\x64\xee\x9b" + bytes(4),
    # The router's BFD (TTL 255, from its listed MAC and address) and an OSPF hello (TTL 1 to
    # 224.0.0.5): the fuzz config's infra.routing; an outside host's ping (icmp_echo).
    "bfd-router": eth(0x0800) + struct.pack("!BBHHHBBH4s4s", 0x45, 0, 36, 1, 0, 255, 17, 0, bytes([198, 18, 0, 1]),
                                            bytes([198, 18, 255, 1])) + struct.pack("!HHHH", 49152, 3784, 16, 0) + bytes(8),
    "ospf-hello": eth(0x0800) + struct.pack("!BBHHHBBH4s4s", 0x45, 0, 44, 1, 0, 1, 89, 0, bytes([198, 18, 0, 1]),
                                            bytes([224, 0, 0, 5])) + bytes(24),
    "v4-ping-unregistered": eth(0x0800) + ipv4([203, 0, 113, 7], 1, payload=b"\x08\x00" + b"z" * 6),
    "truncated-l4": (eth(0x0800) + ipv4([198, 18, 1, 1]))[:40],
    "bad-version": eth(0x0800) + b"\x55" + ipv4([198, 18, 1, 1])[1:],
    "total-beyond": eth(0x0800) + ipv4([198, 18, 1, 1])[:2] + b"\xff\xff" + ipv4([198, 18, 1, 1])[4:],
    "empty": b"",
}


def tcp_frame(src, dst, sport, dport, seq, ack, flags, payload=b"", inside=False):
    """An IPv4 TCP frame; `inside`: from the cluster (the fuzz target's frame flag, bit 6
    of the second byte)."""
    seg = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 0x50, flags, 65535, 0, 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(seg), 1, 0x4000, 64, 6, 0, bytes(src), bytes(dst))
    h = eth(0x0800)
    return (h[:1] + b"\x40" + h[2:] if inside else h) + ip + seg


CL = [198, 18, 255, 1]
# Connections the cluster accepts (an unregistered client of 9000, a staked peer on 3569)
# and one it opens, each with its handshake, so that the fuzzer starts from live sessions.
for name, peer, port in (("accepted-unregistered", [203, 0, 113, 7], 9000), ("accepted-staked", [198, 18, 1, 1], 3569)):
    put("packet", "handshake-" + name, b"SGFB".join([
        tcp_frame(peer, CL, 40000, port, 1000, 0, 0x02),
        tcp_frame(CL, peer, port, 40000, 500000, 1001, 0x12, inside=True),
        tcp_frame(peer, CL, 40000, port, 1001, 500001, 0x10),
        tcp_frame(peer, CL, 40000, port, 1001, 500001, 0x18, b"GET / HTTP/1.1\r\n\r\n"),
        tcp_frame(peer, CL, 40019, port, 1019, 500001, 0x18, b"x" * 32),
        tcp_frame(peer, CL, 40000, port, 1019, 500001, 0x11)]))
put("packet", "handshake-opened", b"SGFB".join([
    tcp_frame(CL, [198, 18, 1, 1], 41000, 3569, 700000, 0, 0x02, inside=True),
    tcp_frame([198, 18, 1, 1], CL, 3569, 41000, 9000, 700001, 0x12),
    tcp_frame(CL, [198, 18, 1, 1], 41000, 3569, 700001, 9001, 0x18, b"y" * 64, inside=True),
    tcp_frame([198, 18, 1, 1], CL, 3569, 41000, 9001, 700065, 0x10)]))
for name, f in frames.items():
    put("packet", name, f)
put("packet", "burst-mixed", b"SGFB".join(frames.values()))
put("packet", "burst-flood", b"SGFB".join([frames["v4-tcp-staked"]] * 32))
# An unregistered sender's fragments ahead of their first (held, then released by it), and
# an orphan (held until its time is up).
put("packet", "fragments-reordered", b"SGFB".join([
    eth(0x0800) + ipv4([203, 0, 113, 7], 17, 9000, frag=0x0010, payload=b"y" * 16),
    eth(0x0800) + ipv4([203, 0, 113, 8], 17, 9000, frag=0x0010, payload=b"o" * 16),
    eth(0x0800) + ipv4([203, 0, 113, 7], 17, 9000, frag=0x2000)]))

for name, path in (("node-infos-shared", "tests/data/flow/node-infos.pub.json"), ("node-infos-demo", "config/demo/node-infos.pub.json")):
    put("identity", name, b"\x00" + open(os.path.join(ROOT, path), "rb").read())
for f in os.listdir(os.path.join(ROOT, "tests/data/flow")):
    if "snapshot" in f:
        put("identity", "snapshot-" + f, b"\x01" + open(os.path.join(ROOT, "tests/data/flow", f), "rb").read())
put("identity", "stakes-demo", b"\x02" + open(os.path.join(ROOT, "config/demo/stakes.json"), "rb").read())
put("identity", "node-infos-min", b"\x00" + json.dumps([{"Role": "consensus", "Address": "198.18.1.1:3569", "NodeID": "ab" * 32, "Weight": 100}]).encode())

put("config", "demo", open(os.path.join(ROOT, "config/demo/stakegate.yaml"), "rb").read())
put("config", "default", open(os.path.join(ROOT, "config/stakegate.yaml"), "rb").read())
put("config", "inline", """dataplane: {eal: [--no-huge], outside: {vdev: net_null0}, inside: {vdev: net_null1}, workers: 2}
capacity: {pps: 100000, bps: 1000000000}
identity:
  nodes:
    - {node_id: "aa00000000000000000000000000000000000000000000000000000000000001", role: consensus, address: "198.18.1.1:3569", weight: 100}
    - {node_id: "aa00000000000000000000000000000000000000000000000000000000000002", role: access, address: "[2001:2::3]:3569", weight: 300}
  hosts: {node.example: 198.18.1.9}
roles:
  consensus: {share: 0.5, min_pps: 100, ports: [3569]}
  access: {share: 0.2, min_pps: 100, burst_ms: 250, ports: [3569, 9000]}
unregistered: {share: 0.05, per_source_pps: 10, ports: [9000], table_size: 1024, icmp_echo: true}
blocklist: [{cidr: 198.51.100.0/24, reason: scan}, {node_id: "aa00000000000000000000000000000000000000000000000000000000000002"}]
scoring: {graylist: -100, recover: -50, floor: -1000, penalty_factor: 0.1, half_life_s: 60, penalties: {over_rate: 10, port_denied: 2}}
evidence: {dir: /tmp/ev, window_s: 60, max_samples: 100, snaplen: 128, retention_cases: 5, retention_mb: 10}
operator: {name: op, node_id: "bb00000000000000000000000000000000000000000000000000000000000001", role: execution}
control: {socket: null, metrics: null}
limits: {sources: 1024}
cluster: {prefixes: [198.18.255.0/24]}
infra: {neighbours: ["02:00:00:00:00:02", {mac: "02:00:00:00:00:01", addresses: [198.18.0.1, "fe80::1"]}], ra_guard: true,
        routing: [bgp, bfd, ospf], routing_pps: 500}
""")

ID = "aa00000000000000000000000000000000000000000000000000000000000001"
bodies = {
    "Status": "", "GetIdentities": "", "ListBlocklist": "", "Top": '{"limit": 3}', "Reload": "", "ListEvidence": "",
    "ReplaceIdentities": json.dumps([{"Role": "consensus", "Address": "198.18.1.7:3569", "NodeID": "cc" * 32, "Weight": 100}]),
    "Block": json.dumps({"cidr": "198.51.100.0/24", "reason": "scan", "expires_in_s": 60}),
    "Unblock": json.dumps({"node_id": ID}),
    "GetRoleQos": '{"role": "access"}',
    "SetRoleQos": '{"role": "access", "share": 0.1, "ports": [3569, 9000]}',
    "GetNode": json.dumps({"node_id": ID}),
    "ListNodes": '{"graylisted_only": true, "limit": 5}',
    "OpenEvidence": json.dumps({"node_id": ID}),
}
rpcs = ["Status", "GetIdentities", "ReplaceIdentities", "Block", "Unblock", "ListBlocklist", "GetRoleQos", "SetRoleQos",
        "GetNode", "Top", "Reload", "ListNodes", "OpenEvidence", "ListEvidence", "Nope"]
for i, rpc in enumerate(rpcs):
    put("api", rpc, bytes([0, i << 1, 0]) + bodies.get(rpc, "").encode())
put("api", "raw-path", bytes([1, 1, 0]) + b"/v1/Block?x=1\n" + bodies["Block"].encode())
put("api", "binary-block", bytes([0, 3 << 1, 1]) + b"\x0a\x0f198.51.100.0/24")
