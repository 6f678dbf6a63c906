#!/usr/bin/env python3
"""Peer score, graylist and evidence bundles, deterministic in replay (docs/operations.md,
"Peer score and graylist" and "Reporting an errant node").

A five-minute capture: node A floods at 10x its rate over its own connection for 3 s,
then sends at half its rate; node B sends within its rate the whole time, in bursts as
large as its burst. A spoofer forges B's address for 10 s at 10x B's rate (UDP to
allowed and denied ports, SYNs, and ACKs on B's real 4-tuple with guessed sequence
numbers) and A's address for 2 s while A's case is open. Checked: A is graylisted within
the documented bound, its bundle holds report.json, a sample.pcapng that tshark reads
with only A's packets, each marked verified or not, and a flip.md naming A and its keys
that counts verified and unverified traffic apart; A recovers within the documented
time; B is never graylisted, gets no case and loses none of its own packets, and the
forged ones are counted. The honest capture alone graylists nobody and writes no bundle.
"""
import json
import math
import os
import random
import struct
import subprocess

from common import STAKEGATE, TempDir, check, finish, run, write_yaml
from flows import SYN, TcpConn, tcp, udp

RATE = 300.0          # pps of A and of B: consensus 0.30 x 2,000 pps, two equal weights
BURST = RATE * 0.1    # burst_ms 100
GRAYLIST, RECOVER, FLOOR, HALF_LIFE, OVER_RATE = -100.0, -50.0, -1000.0, 60.0, 10.0
T0 = 1_800_000_000    # capture start (Unix seconds)

A = ("a1" * 32, "198.18.3.1")
B = ("b2" * 32, "198.18.3.2")
KEYS = {A[0]: ("aa" * 64, "ab" * 96), B[0]: ("ba" * 64, "bb" * 96)}


def write_capture(path, packets):
    """packets: (seconds since T0, frame), in any order."""
    packets.sort(key=lambda p: p[0])
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xa1b23c4d, 2, 4, 0, 0, 65535, 1))  # nanosecond pcap
        for t, fr in packets:
            ns = int(round(t * 1e9))
            f.write(struct.pack("<IIII", T0 + ns // 10**9, ns % 10**9, len(fr), len(fr)) + fr)


CLUSTER = "198.18.255.1"


def connect(node, start=0.0):
    """The node dials the cluster: its connection and the handshake's frames (the cluster's
    SYN-ACK from a cluster address, which replay takes as the inside)."""
    c = TcpConn(node[1], CLUSTER)
    return c, [(start + k * 1e-5, f) for k, (_, f) in enumerate(c.accept())]


def honest_b(seconds, spoof_s=0.0):
    """B: a burst of exactly BURST packets every 100 ms, i.e. exactly its rate (after its
    handshake, whose first ACK is the first packet of its first burst); with `spoof_s`, a
    spoofer forging B's address at 10x its rate for that long from t = 10 s. Returns the
    frames and how many of them B sent after its SYN (all on its verified connection)."""
    c, frames = connect(B)
    burst = [(k * 0.1 + 1e-4, None) for k in range(int(seconds * 10)) for _ in range(int(BURST))]
    own = frames + [(t, c.remote_data()) for t, _ in burst[1:]]
    return own + spoofed(B[1], c, 10.0, spoof_s, 10 * RATE, seed=7), len(own) - 2


def steady(conn, start, seconds, pps):
    return [(start + i / pps, conn.remote_data()) for i in range(int(seconds * pps))]


def spoofed(addr, conn, start, seconds, pps, seed):
    """What a host that does not own `addr` sends with it: UDP to the node port and to a
    denied one, SYNs, and ACKs on the node's real connection with guessed numbers."""
    rng = random.Random(seed)
    out = []
    for i in range(int(seconds * pps)):
        kind, sport = i % 4, rng.randrange(1024, 65536)
        if kind == 0:
            f = udp(addr, CLUSTER, sport, 3569, b"\xa5" * 32)
        elif kind == 1:
            f = udp(addr, CLUSTER, sport, 9999, b"\xa5" * 32)
        elif kind == 2:
            f = tcp(addr, CLUSTER, sport, 3569, rng.getrandbits(32), 0, SYN)
        else:
            f = conn.forged(rng.getrandbits(32), rng.getrandbits(32))
        out.append((start + i / pps, f))
    return out


def config(d, evidence_dir):
    nodes = [{"Role": "consensus", "Address": f"{ip}:3569", "NodeID": nid, "Weight": 100,
              "NetworkPubKey": KEYS[nid][0], "StakingPubKey": KEYS[nid][1]} for nid, ip in (A, B)]
    with open(os.path.join(d, "node-infos.pub.json"), "w") as f:
        json.dump(nodes, f)
    return write_yaml(os.path.join(d, "stakegate.yaml"), {
        "dataplane": {"eal": ["--no-huge"], "outside": {"vdev": "net_null0"}, "inside": {"vdev": "net_null1"}},
        "capacity": {"pps": 2000},
        "cluster": {"prefixes": ["198.18.255.0/24"]},
        "identity": {"flow_node_infos": "node-infos.pub.json"},
        "roles": {"consensus": {"share": 0.30, "min_pps": 10, "burst_ms": 100, "ports": [3569]}},
        "unregistered": {"share": 0.05},
        "scoring": {"graylist": GRAYLIST, "recover": RECOVER, "floor": FLOOR, "half_life_s": HALF_LIFE, "penalty_factor": 0.1},
        "evidence": {"dir": evidence_dir, "window_s": 60, "max_samples": 500, "snaplen": 128},
        "operator": {"name": "Example Operator", "contact": "ops@example.org", "node_id": "cc" * 32, "role": "execution",
                     "address": "198.18.9.9:3569", "network_key": "cd" * 64, "staking_key": "ce" * 96}})


with TempDir() as d:
    # --- the flood capture ---------------------------------------------------------
    ev = os.path.join(d, "evidence")
    cfg = config(d, ev)
    a, handshake = connect(A)
    flood = steady(a, 1e-4, 3, 10 * RATE)          # 10x for 3 s
    after = steady(a, 3, 297, RATE / 2)            # then half its rate
    SPOOF_B_S, SPOOF_A = 10.0, (5.0, 2.0, 1000)    # B's address forged for 10 s; A's 2 s at 1,000 pps
    b_frames, b_own = honest_b(300, SPOOF_B_S)
    forged_a = spoofed(A[1], a, SPOOF_A[0], SPOOF_A[1], SPOOF_A[2], seed=9)
    write_capture(os.path.join(d, "flood.pcap"), handshake + flood + after + b_frames + forged_a)
    p = run([STAKEGATE, "replay", "--config", cfg, "--pcap", os.path.join(d, "flood.pcap"),
             "--report", os.path.join(d, "r.json")])
    rep = json.load(open(os.path.join(d, "r.json")))
    g = rep["graylist"]
    check(g["entries"] == 1 and len(g["events"]) == 1 and g["events"][0]["node_ids"] == [A[0]],
          f"only A is graylisted ({g['entries']} entries)")
    e = g["events"][0]
    entered = e["entered_unix"] - T0
    # At k x its rate: its burst lasts burst_ms / (k - 1), then it loses (k - 1) seconds'
    # worth of its rate per second, OVER_RATE points each.
    bound = 0.1 / 9 + abs(GRAYLIST) / (OVER_RATE * 9)
    check(bound * 0.95 <= entered <= bound * 1.02 + 0.002,
          f"A graylisted {entered:.3f} s after it started flooding (documented bound {bound:.3f} s)")
    recovered = e["recovered_unix"] - T0 if e["recovered_unix"] else None
    worst = HALF_LIFE * math.log2(FLOOR / RECOVER)
    check(recovered is not None and HALF_LIFE * math.log2(GRAYLIST / RECOVER) <= recovered - 3 <= worst,
          f"A recovered {recovered and recovered - 3:.1f} s after it stopped flooding "
          f"(between {HALF_LIFE * math.log2(GRAYLIST / RECOVER):.0f} s and the documented {worst:.0f} s)")
    check("graylisted: " in p.stderr and "recovered from the graylist" in p.stderr,
          "entry and recovery are logged")
    check(p.stderr.count("graylisted: ") == 1, "the entry is logged once, not per packet")
    nodes = {n["node_id"]: n for n in rep["nodes"]}
    nb = nodes[B[0]]
    check(nb["passed"] == b_own and nb["dropped"]["over_rate"] == 0,
          f"honest B kept all {b_own} packets of its connection ({nb['passed']} passed, "
          f"{nb['dropped']['over_rate']} over_rate) while its address was forged at 10x its rate")
    forged_b = int(SPOOF_B_S * 10 * RATE)
    req = nb["request_channel"]
    check(req["passed"] + req["request_over_rate"] + nb["dropped"]["port_denied"] == forged_b + 1
          and req["request_over_rate"] > 0.9 * forged_b * 0.75 and nb["dropped"]["port_denied"] == forged_b // 4,
          f"the {forged_b} forged packets (and B's SYN) are counted off its allowance: request channel passed "
          f"{req['passed']}, request_over_rate {req['request_over_rate']}, port_denied {nb['dropped']['port_denied']}")

    cases = rep["evidence"]
    check(len(cases) == 1 and cases[0]["node_id"] == A[0] and cases[0]["reason"] == "graylist" and not cases[0]["error"],
          f"one graylist case, for A: {cases}")
    case_dir = cases[0]["dir"] if cases else d
    check(sorted(os.listdir(case_dir)) == ["flip.md", "report.json", "sample.pcapng"], "the bundle has its three files")
    r = json.load(open(os.path.join(case_dir, "report.json")))
    check(r["errant"]["nodes"][0]["network_key"] == KEYS[A[0]][0] and r["errant"]["nodes"][0]["staking_key"] == KEYS[A[0]][1],
          "report.json: the errant node's keys")
    check(r["reporter"]["node_id"] == "cc" * 32 and r["reporter"]["staking_key"] == "ce" * 96, "report.json: the reporter")
    check(abs(r["window"]["start_unix"] - e["entered_unix"]) < 1e-6 and abs(r["window"]["duration_s"] - 60) < 0.01,
          f"report.json: the window opens at the graylisting and lasts 60 s ({r['window']['duration_s']:.3f} s)")
    check(abs(r["rate"]["allowed_pps"] - RATE) < 1e-6 and abs(r["rate"]["graylisted_pps"] - RATE * 0.1) < 1e-6,
          "report.json: allowed and graylisted rates")
    # In the window: ~1.9 s more at 10x, then 57 s at 0.5x.
    offered = (1.878 * 10 * RATE + 57 * RATE / 2) / 60
    check(abs(r["rate"]["offered_pps"] - offered) / offered < 0.05, f"report.json: offered {r['rate']['offered_pps']:.1f} pps (~{offered:.1f})")
    check(r["top_destination_ports"] == [{"proto": "tcp", "port": 3569, "samples": 500}], f"top ports: {r['top_destination_ports']}")
    check(r["sample"]["verified"] == 500 and r["sample"]["unverified"] == 125,
          f"report.json: 500 verified samples and 125 unverified (a quarter at most): {r['sample']}")
    cu = r["counters"]["unverified"]
    check(cu["request_over_rate"] + cu["passed"] + cu["port_denied"] == int(SPOOF_A[1] * SPOOF_A[2])
          and r["counters"]["verified"]["over_rate"] > 0,
          f"report.json counts the forged packets apart from the verified ones: {r['counters']}")
    check("forge" in r["attribution"]["unverified"] and "acknowledged" in r["attribution"]["method"]
          and r["attribution"]["verified_misbehaviour"], f"report.json names the attribution method: {r['attribution']}")

    out = subprocess.run(["tshark", "-r", os.path.join(case_dir, "sample.pcapng"), "-T", "fields", "-e", "ip.src",
                          "-e", "frame.cap_len", "-e", "frame.len", "-e", "frame.comment", "-e", "tcp.srcport"],
                         capture_output=True, text=True)
    rows = [l.split("\t") for l in out.stdout.splitlines()]
    check(out.returncode == 0 and len(rows) == 625, f"tshark reads sample.pcapng: {len(rows)} packets (500 + 125)")
    check(all(r_[0] == A[1] for r_ in rows), "every sampled packet is A's")
    verified_rows = [r_ for r_ in rows if "; verified connection;" in r_[3]]
    check(len(verified_rows) == 500 and all(r_[4] == "40000" and r_[1] == r_[2] == "80" and "over_rate" in r_[3]
                                             and "198.18.3.1:40000 > 198.18.255.1:3569 [ACK]" in r_[3]
                                             and "ttl 64" in r_[3] and "src mac 02:00:00:00:00:01" in r_[3]
                                             for r_ in verified_rows),
          "the 500 verified samples: A's connection, the whole 80-byte frame, commented with drop reason, 5-tuple, "
          "flags, TTL and source MAC")
    check(all("unverified (the source address may be forged)" in r_[3] for r_ in rows if r_ not in verified_rows),
          "the other samples are marked unverified")

    flip = open(os.path.join(case_dir, "flip.md")).read()
    for what, value in (("errant NodeID", A[0]), ("errant networking key", KEYS[A[0]][0]), ("errant staking key", KEYS[A[0]][1]),
                        ("errant address", "198.18.3.1:3569"), ("reporting NodeID", "cc" * 32), ("reporter contact", "ops@example.org")):
        check(value in flip, f"flip.md has the {what}")
    check(B[0] not in flip, "flip.md does not mention the honest node")
    check("Verified traffic (attributable to this node)" in flip and "may not have been sent by this node" in flip
          and "No verified misbehaviour" not in flip, "flip.md counts verified and unverified traffic apart")
    for section in ("## Contact attempts", "## Co-signers", "## Evidence summary"):
        check(section in flip, f"flip.md has '{section}'")

    # --- evidence that cannot be written: reported, and the data path is unchanged ----
    def replay_into(evidence_dir, name):
        c = config(d, evidence_dir)
        out = os.path.join(d, name + ".json")
        p2 = run([STAKEGATE, "replay", "--config", c, "--pcap", os.path.join(d, "flood.pcap"), "--report", out])
        return json.load(open(out)), p2.stderr

    open(os.path.join(d, "a-file"), "w").close()
    bad, err = replay_into(os.path.join(d, "a-file", "evidence"), "bad")
    check(bad["nodes"] == rep["nodes"] and bad["by_direction"] == rep["by_direction"] and bad["graylist"] == rep["graylist"],
          "an unwritable evidence folder changes no verdict, counter or graylist event")
    check(len(bad["evidence"]) == 1 and "cannot create" in bad["evidence"][0]["error"] and "cannot create" in err,
          f"...and is reported in the log and the report: {bad['evidence'][0]['error'] if bad['evidence'] else None}")
    full = os.path.join(d, "full")
    os.makedirs(full)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", full]).returncode != 0:
        check(False, "cannot mount a 16 KiB tmpfs to play a full disk (this test runs as root)")
    else:
        try:
            full_rep, err = replay_into(os.path.join(full, "evidence"), "full")
        finally:
            subprocess.run(["umount", full])
        check(full_rep["nodes"] == rep["nodes"] and full_rep["by_direction"] == rep["by_direction"],
              "a full disk changes no verdict or counter")
        check(len(full_rep["evidence"]) == 1 and "sample.pcapng failed" in full_rep["evidence"][0]["error"]
              and "sample.pcapng failed" in err,
              f"...and the failed write is reported: {full_rep['evidence'][0]['error'] if full_rep['evidence'] else None}")

    # --- the honest capture: nobody graylisted, no bundle -----------------------------
    ev2 = os.path.join(d, "evidence-honest")
    cfg2 = config(d, ev2)
    a, handshake = connect(A)
    write_capture(os.path.join(d, "honest.pcap"), handshake + steady(a, 1e-4, 60, RATE / 2) + honest_b(60)[0])
    run([STAKEGATE, "replay", "--config", cfg2, "--pcap", os.path.join(d, "honest.pcap"), "--report", os.path.join(d, "h.json")])
    h = json.load(open(os.path.join(d, "h.json")))
    check(h["graylist"]["entries"] == 0 and h["evidence"] == [] and not os.path.exists(ev2),
          "honest capture (bursts up to the burst): nobody graylisted, no evidence written")

finish()
