"""Live changes under full-speed traffic (net_pcap infinite_rx -> net_null):
- 1,000 identity swaps alternating tables A and B: no crash, no leak, counters only
  grow, replaced snapshots are reclaimed, and every packet's verdict agrees with A or B;
- blocking a node through stakegatectl drops its next packets as `blocklisted` within one
  burst; unblocking restores it; both show in /metrics."""
import json
import time

from common import (STAKEGATECTL, Gateway, TempDir, check, finish, free_port, ipv4_frame, metric_values, node_infos,
                    run, scrape, write_pcap, write_yaml)

X, Y, W, U = "198.18.3.1", "198.18.3.2", "198.18.3.3", "198.18.3.4"
IDX, IDY, IDW = ("%064x" % 0xa1, "%064x" % 0xb2, "%064x" % 0xc3)
A = node_infos([(IDX, "consensus", X + ":3569", 100), (IDW, "consensus", W + ":3569", 100)])
B = node_infos([(IDY, "consensus", Y + ":3569", 100), (IDW, "consensus", W + ":3569", 100)])

with TempDir() as d:
    open(f"{d}/a.json", "w").write(A)
    open(f"{d}/b.json", "w").write(B)
    write_pcap(f"{d}/in.pcap", [ipv4_frame(s) for s in (X, Y, W, U)])
    mport = free_port()
    cfg = f"{d}/gw.yaml"
    write_yaml(cfg, {
        "dataplane": {"eal": ["--no-huge", "-m", "512", "--no-pci", "--no-shconf"],
                      "outside": {"vdev": f"net_pcap0,rx_pcap={d}/in.pcap,infinite_rx=1"},
                      "inside": {"vdev": "net_null1,no-rx=1"}, "stats_interval_s": 1},
        "capacity": {"pps": 1e10},  # far above the offered load: no packet is over rate
        "identity": {"flow_node_infos": "a.json"},
        "roles": {"consensus": {"share": 0.9, "ports": [3569]}},
        "unregistered": {"share": 0.05, "per_source_pps": 50, "ports": [9000]},
        "control": {"socket": f"{d}/ctl.sock", "metrics": f"127.0.0.1:{mport}"}})

    gw = Gateway(cfg, f"{d}/ctl.sock", ["--report", f"{d}/report.json"])
    api = gw.api()
    time.sleep(1)
    rss0 = gw.rss_kb()
    prev = metric_values(scrape(mport))
    monotonic = True
    t0 = time.time()
    for i in range(1000):
        s, r = api.call("ReplaceIdentities", B if i % 2 == 0 else A)
        if s != 200:
            check(False, f"swap {i}: HTTP {s} {r}")
            break
        if i % 100 == 99:
            cur = metric_values(scrape(mport))
            monotonic &= all(cur[k] >= prev[k] for k in prev if k.startswith(("stakegate_packets_total", "stakegate_drops_total", "stakegate_bytes_total")))
            prev = cur
    took = time.time() - t0
    s, st = api.call("Status")
    check(st["identity_generation"] == "1001", f"1,000 swaps applied in {took:.1f} s (generation {st['identity_generation']})")
    check(monotonic, "every counter only grew across the swaps (10 scrapes)")
    time.sleep(0.3)
    s, st = api.call("Status")
    check(st["snapshots_pending_reclaim"] == 0, "every replaced snapshot was reclaimed")
    rss1 = gw.rss_kb()
    check(rss1 - rss0 < 20000, f"resident memory {rss0} -> {rss1} KiB over 1,000 swaps")

    # Block W (in both tables, always passing) through stakegatectl, while traffic flows.
    ctl = [STAKEGATECTL, "--socket", f"{d}/ctl.sock", "--json"]
    run(ctl + ["block", IDW, "--reason", "test"])
    # (Its frames open no connection: they pass through its request channel, which at this
    # capacity is far above what they offer.)
    def passed(c):
        return int(c["passed"]) + int(c["request_passed"])
    p0 = passed(json.loads(run(ctl + ["node", IDW]).stdout)["counters"])
    time.sleep(0.5)
    n1 = json.loads(run(ctl + ["node", IDW]).stdout)["counters"]
    check(passed(n1) - p0 <= 32, f"blocked node passed {passed(n1) - p0} packets after the block returned (<= one burst)")
    check(int(n1["blocklisted"]) > 1000, f"its packets drop as blocklisted ({n1['blocklisted']})")
    m = metric_values(scrape(mport))
    check(m['stakegate_drops_total{role="consensus",reason="blocklisted"}'] > 0, "blocklisted drops show in /metrics")
    run(ctl + ["unblock", IDW])
    time.sleep(0.3)
    n2 = json.loads(run(ctl + ["node", IDW]).stdout)["counters"]
    check(passed(n2) > passed(n1) + 1000, "unblocked: it passes again")
    m2 = metric_values(scrape(mport))
    key = 'stakegate_packets_total{direction="outside",role="consensus",verdict="pass"}'
    check(m2[key] > m[key], "passes resume in /metrics")
    check(m2["stakegate_identity_generation"] == 1003, "generation counts the block and the unblock")

    # DPDK telemetry, as dpdk-telemetry.py reads it: the v2 socket of this gateway's file prefix.
    import socket
    tel = f"/var/run/dpdk/stakegate-{gw.proc.pid}/dpdk_telemetry.v2"
    t = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    t.connect(tel)
    json.loads(t.recv(16384))  # greeting
    t.send(b"/stakegate/stats")
    stats = json.loads(t.recv(16384))["/stakegate/stats"]
    t.close()
    s, st = api.call("Status")
    check(stats["identity_generation"] == 1003 and 0 < stats["outside_packets"] <= int(st["outside_packets"]),
          f"DPDK telemetry /stakegate/stats: generation {stats['identity_generation']}, {stats['outside_packets']} packets")

    rc, out, err = gw.stop()
    check(rc == 0, "clean exit after the swaps")
    rep = json.load(open(f"{d}/report.json"))
    total = rep["totals"]["outside"]["packets"]
    drops = rep["drops_by_reason"]
    staked_pass = rep["by_direction"]["outside"]["consensus"]["packets"].get("pass", 0)
    unreg = rep["by_direction"]["outside"]["unregistered"]["packets"].get("unregistered", 0)
    blocked = drops["blocklisted"]
    check(staked_pass + unreg + blocked == total, f"each of {total} packets passed as a node, or dropped as unregistered or blocklisted")
    check(all(drops[r] == 0 for r in ("malformed", "ejected", "port_denied", "over_rate", "unregistered_over_rate",
                                      "request_over_rate", "spoofed", "l2_denied")),
          f"no other verdict: {drops}")
    w = next(n for n in rep["nodes"] if n["node_id"] == IDW)
    quarter = total / 4
    w_passed = w["passed"] + w["request_channel"]["passed"]
    check(abs(w_passed + w["dropped"]["blocklisted"] - quarter) <= 4,
          f"W (in both tables) never dropped as unregistered: {w_passed} + {w['dropped']['blocklisted']} of ~{quarter:.0f}")
    check(unreg >= quarter - 4, f"U (in neither table) never passed: unregistered drops {unreg} >= {quarter:.0f}")
    check(staked_pass > quarter, "X and Y passed while their table ran")

finish()
