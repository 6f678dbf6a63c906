#!/usr/bin/env python3
"""Real TCP and UDP stacks through stakegate: hosts in network namespaces, the gateway
inline on net_af_packet, clients and servers of the kernel's own stacks (docs/testing.md).

    outside hosts (one namespace each)        switch ns              root ns           cluster ns
    con1 exe1 acc1 col1 unr1 unr2 --veth-- [bridge br0]--uplink --veth-- sge<pid>o [stakegate] sge<pid>i --veth-- eth0
                                                                     (outside)            (inside)   198.18.0.100-105

Every address is in 198.18.0.0/24 (the cluster's are cluster.prefixes 198.18.0.96/28);
IPv6 is off everywhere, so each frame is one the test sent (or ARP): the accounting at
the end is exact. test_netns_inline.py runs the cluster's own connections, IPv6 and path
MTU discovery; test_netns_spoof.py forged sources. The namespaces and links are removed
on exit, also on failure or SIGTERM. Needs root; if the namespaces cannot be made it
fails (it never skips).
"""
import hashlib
import json
import os
import subprocess
import sys
import time

from common import STAKEGATECTL, check, metric_values, scrape, write_yaml
from netlab import LabError, af_packet_dataplane, run_inline

NET = "198.18.0"
# name: (role or None, address, stake). None: not in the identity table.
HOSTS = {
    "con1": ("consensus", f"{NET}.11", 1000),
    "exe1": ("execution", f"{NET}.12", 1000),
    "acc1": ("access", f"{NET}.13", 1000),
    "col1": ("collection", f"{NET}.14", 100),    # the staked attacker: a small stake, min_pps
    "unr1": (None, f"{NET}.21", 0),               # an unregistered client of the public API
    "unr2": (None, f"{NET}.22", 0),               # an unregistered attacker
}
# Staked nodes with no host here (the rest of the network): they set the weight sums W_r.
ABSENT = {
    "con-x": ("consensus", "198.18.1.1", 1000),
    "exe-x": ("execution", "198.18.1.2", 1500),
    "col-x": ("collection", "198.18.1.3", 2900),
    "ver-x": ("verification", "198.18.1.4", 1000),
    "acc-x": ("access", "198.18.1.5", 1000),
}
CLUSTER_PREFIX = f"{NET}.96/28"
CLUSTER = {"api": f"{NET}.100", "con": f"{NET}.101", "exe": f"{NET}.102", "acc": f"{NET}.103",
           "sink": f"{NET}.104", "sessions": f"{NET}.105"}
CAPACITY = 20000
ROLES = {  # share, min_pps, burst_ms, ports
    "consensus": (0.25, 200, 100, [3569]),
    "execution": (0.25, 200, 100, [3569]),
    "collection": (0.15, 200, 100, [3569]),
    "verification": (0.15, 200, 100, [3569]),
    "access": (0.10, 200, 100, [3569, 9000]),
}
UNREG_SHARE, UNREG_PER_SOURCE, UNREG_BURST_MS = 0.05, 50, 500
SESSIONS_SHARE = 0.05  # with the roles' and the unregistered share: 1.0
REQUEST_FRACTION, REQUEST_MIN_PPS = 0.05, 10
# The honest iperf3 streams (Mbit/s), each well inside its node's rate.
IPERF = {"con1": ("con", 12), "exe1": ("exe", 8), "acc1": ("acc", 4)}
FLOOD_S = 5.0
# A large response from the public API (a block range, a streamed subscription): its client
# acknowledges it at several hundred packets a second, far over UNREG_PER_SOURCE.
DOWNLOAD_BYTES = 4 << 20


def node_id(name):
    return hashlib.sha256(f"stakegate-e2e-{name}".encode()).hexdigest()


def expected_rate(name):
    role, _, stake = {**HOSTS, **ABSENT}[name]
    share, min_pps, _, _ = ROLES[role]
    total = sum(s for r, _, s in list(HOSTS.values()) + list(ABSENT.values()) if r == role)
    return max(min_pps, share * CAPACITY * stake / total)


def request_rate(name):
    return max(REQUEST_MIN_PPS, REQUEST_FRACTION * expected_rate(name))


def write_identities(d, exclude=()):
    nodes = [{"Role": r, "Address": f"{a}:3569", "NodeID": node_id(n), "Weight": 100}
             for n, (r, a, _) in list(HOSTS.items()) + list(ABSENT.items()) if r and n not in exclude]
    path = os.path.join(d, "nodes-without-" + "-".join(exclude) + ".json" if exclude else "node-infos.pub.json")
    with open(path, "w") as f:
        json.dump(nodes, f)
    return path


def write_config(d, lab, metrics_port):
    write_identities(d)
    with open(os.path.join(d, "stakes.json"), "w") as f:
        json.dump({node_id(n): s for n, (r, _, s) in list(HOSTS.items()) + list(ABSENT.items()) if r}, f)
    return write_yaml(os.path.join(d, "stakegate.yaml"), {
        "dataplane": af_packet_dataplane(lab),
        "capacity": {"pps": CAPACITY},
        "identity": {"flow_node_infos": "node-infos.pub.json", "stake_file": "stakes.json"},
        "roles": {r: {"share": s, "min_pps": m, "burst_ms": b, "ports": p} for r, (s, m, b, p) in ROLES.items()},
        "unregistered": {"share": UNREG_SHARE, "per_source_pps": UNREG_PER_SOURCE, "burst_ms": UNREG_BURST_MS, "ports": [9000]},
        "cluster": {"prefixes": [CLUSTER_PREFIX]},
        "sessions": {"share": SESSIONS_SHARE},
        "request_channel": {"fraction": REQUEST_FRACTION, "min_pps": REQUEST_MIN_PPS},
        "control": {"socket": f"{d}/control.sock", "metrics": f"127.0.0.1:{metrics_port}"},
        "evidence": {"dir": f"{d}/evidence", "window_s": 3, "max_samples": 200},
        "operator": {"name": "e2e test operator", "node_id": node_id("con-x"), "role": "consensus", "address": "198.18.1.1:3569"}})


def build_topology(lab):
    lab.switched({name: [f"{ip}/24"] for name, (_, ip, _) in HOSTS.items()}, [f"{ip}/24" for ip in CLUSTER.values()])


class Run:
    def __init__(self, lab, d, gw):
        self.lab, self.d, self.gw = lab, d, gw
        self.api = gw.api()

    def ns(self, name):
        return self.lab.ns(name)

    def node(self, name):
        s, r = self.api.call("GetNode", {"node_id": node_id(name)})
        if s != 200:
            return None
        r["counters"] = {k: int(v) for k, v in r["counters"].items()}
        return r

    def top_drops(self, role, reason):
        s, r = self.api.call("Top", {"limit": 1})
        for entry in r["roles"]:
            if entry["role"] == role:
                return int(entry["dropped"].get(reason, 0))
        return 0

    def ctl(self, *args):
        p = subprocess.run([STAKEGATECTL, "--socket", self.gw.socket, *args], capture_output=True, text=True, timeout=30)
        check(p.returncode == 0, f"stakegatectl {' '.join(args)}" + ("" if p.returncode == 0 else f": {p.stderr.strip()}"))
        return p

    def session(self, host, to, **kw):
        args = ["tcp-session", "--to", to]
        for k, v in kw.items():
            args += ["--" + k.replace("_", "-"), v]
        return self.lab.prog(self.ns(host), *args)

    def download(self, host, url):
        """(sha256 of the body or curl's error, seconds)"""
        t0 = time.monotonic()
        p = subprocess.run(["ip", "netns", "exec", self.ns(host), "curl", "-sS", "--max-time", "20", "-o", "-", url],
                           capture_output=True, timeout=30)
        took = time.monotonic() - t0
        return (hashlib.sha256(p.stdout).hexdigest() if p.returncode == 0 else
                f"curl exited {p.returncode}: {p.stderr.decode().strip()}"), took

    def curl(self, host, url):
        p = subprocess.run(["ip", "netns", "exec", self.ns(host), "curl", "-sS", "--max-time", "3", "-o", "-",
                            "-w", "\n%{http_code}", url], capture_output=True, text=True, timeout=10)
        body, _, code = p.stdout.rpartition("\n")
        return code, body

    def wait_acked_beyond(self, prog, value, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if prog.acked() > value:
                return True
            time.sleep(0.02)
        return False


def start_services(run):
    lab, cl = run.lab, run.ns("cl")
    services = {}
    www = os.path.join(run.d, "www")
    os.makedirs(www)
    with open(os.path.join(www, "index.html"), "w") as f:
        f.write("flow access api stand-in\n")
    block = os.urandom(DOWNLOAD_BYTES)
    with open(os.path.join(www, "blocks.bin"), "wb") as f:
        f.write(block)
    run.blocks_sha256 = hashlib.sha256(block).hexdigest()
    services["http"] = lab.spawn(cl, [sys.executable, "-m", "http.server", "9000", "--bind", CLUSTER["api"],
                                      "--directory", www], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for key in ("con", "exe", "acc"):
        services["iperf-" + key] = lab.spawn(cl, ["iperf3", "-s", "-B", CLUSTER[key], "-p", "3569"],
                                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    services["sessions"] = lab.prog(cl, "tcp-server", "--bind", f"{CLUSTER['sessions']}:3569")
    services["sink3569"] = lab.prog(cl, "udp-sink", "--bind", f"{CLUSTER['sink']}:3569")
    services["sink9000"] = lab.prog(cl, "udp-sink", "--bind", f"{CLUSTER['api']}:9000")
    services["tap_in"] = lab.prog(cl, "tap", "--iface", "eth0", "--direction", "in")
    services["tap_out"] = lab.prog(run.ns("sw"), "tap", "--iface", "uplink", "--direction", "out")
    for k in ("sessions", "sink3569", "sink9000", "tap_in", "tap_out"):
        services[k].wait_event("ready")
    # http.server and iperf3 print nothing useful when ready: wait until they listen.
    deadline = time.time() + 10
    while time.time() < deadline:
        listening = subprocess.run(["ip", "netns", "exec", cl, "ss", "-Htln"], capture_output=True, text=True).stdout
        if all(f"{CLUSTER[k]}:{p}" in listening for k, p in (("api", 9000), ("con", 3569), ("exe", 3569), ("acc", 3569))):
            return services
        time.sleep(0.05)
    raise LabError(f"the HTTP and iperf3 services in the cluster namespace did not start listening:\n{listening}")


def phase_reachability(run):
    print("\n== reachability: ARP, staked sessions, unregistered limits", flush=True)
    cl_mac = run.lab.mac(run.ns("cl"), "eth0")
    for host in ("con1", "unr1"):
        r = run.lab.prog(run.ns(host), "arp-probe", "--iface", "eth0", "--src", HOSTS[host][1], "--target",
                         CLUSTER["sessions"]).result()
        check(r.get("mac") == cl_mac, f"ARP from {host}: {CLUSTER['sessions']} is at {r.get('mac')} (cluster eth0 {cl_mac})")
    host_mac = run.lab.mac(run.ns("col1"), "eth0")
    r = run.lab.prog(run.ns("cl"), "arp-probe", "--iface", "eth0", "--src", CLUSTER["api"], "--target",
                     HOSTS["col1"][1]).result()
    check(r.get("mac") == host_mac, f"ARP from the cluster: {HOSTS['col1'][1]} is at {r.get('mac')} (col1 {host_mac})")

    sessions = {h: run.session(h, f"{CLUSTER['sessions']}:3569", chunks=256) for h in ("con1", "exe1", "acc1", "col1")}
    for h, p in sessions.items():
        r = p.result()
        ok = r.get("result") == "done" and r.get("digest_ok") is True
        check(ok, f"staked {h} ({HOSTS[h][0]}): TCP session to 3569 " +
              (f"carried {r['bytes']} bytes in {r['t']} s, the server's digest matches" if ok else f"failed: {r}"))
    for h in ("con1", "exe1", "acc1", "col1"):
        n = run.node(h)
        got = n["rate_pps"] if n else float("nan")
        check(abs(got - expected_rate(h)) < 0.01,
              f"{h}: gateway rate {got:.0f} pps = max(min_pps, share x capacity x w / W) = {expected_rate(h):.0f}")

    r = run.session("unr1", f"{CLUSTER['sessions']}:3569", connect_timeout=1.5).result()
    check(r.get("result") == "connect_failed", f"unregistered unr1 cannot connect to 3569 ({r.get('result')}, {r.get('error')})")
    # Its first connection: a new source starts with one packet (its SYN) and a reserve of
    # 2.5 for its verified connections, and on this path its ACK follows the SYN-ACK long
    # before a packet refills (20 ms). The ACK acknowledges the cluster's SYN-ACK, so it and
    # the request take the reserve, and a segment that finds the reserve spent proves the
    # address: the full depth, once. Nothing of the request is dropped and it waits no
    # retransmission timeout (docs/tuning.md, section 5). (Whether a proof is needed depends
    # on the machine's timing: 0 or 1.)
    over_rate = 'stakegate_drops_total{role="unregistered",reason="unregistered_over_rate"}'
    proven = "stakegate_unregistered_proven_total"
    m0 = metric_values(scrape(run.metrics_port))
    t0 = time.monotonic()
    code, body = run.curl("unr1", f"http://{CLUSTER['api']}:9000/index.html")
    took = time.monotonic() - t0
    m1 = metric_values(scrape(run.metrics_port))
    check(code == "200" and body == "flow access api stand-in\n", f"unregistered unr1 reaches the public API on 9000 (HTTP {code})")
    dropped, proofs = m1.get(over_rate, 0) - m0.get(over_rate, 0), m1.get(proven, 0) - m0.get(proven, 0)
    check(dropped == 0 and proofs in (0, 1),
          f"unr1's first connection: none of its packets over rate ({dropped:.0f}), answered in "
          f"{took * 1000:.0f} ms (its proof after the reserve: {proven} +{proofs:.0f})")
    # Beyond its per-source rate the client's acknowledgements are dropped (and counted), but
    # each one acknowledges all the data before it: the download goes on (docs/tuning.md).
    before = metric_values(scrape(run.metrics_port)).get(over_rate, 0)
    got, took = run.download("unr1", f"http://{CLUSTER['api']}:9000/blocks.bin")
    acks_dropped = metric_values(scrape(run.metrics_port)).get(over_rate, 0) - before
    check(got == run.blocks_sha256,
          f"unregistered unr1 downloads a {DOWNLOAD_BYTES >> 20} MiB response from 9000 intact in {took:.1f} s "
          f"({acks_dropped:.0f} of its packets over {UNREG_PER_SOURCE} pps dropped as unregistered_over_rate)"
          + ("" if got == run.blocks_sha256 else f": {got}"))
    m = metric_values(scrape(run.metrics_port))
    l2 = m.get('stakegate_packets_total{direction="outside",role="l2",verdict="pass"}', 0)
    check(l2 >= 3, f"gateway passed {l2:.0f} non-IP frames (ARP) from the outside")
    unreg = m.get('stakegate_drops_total{role="unregistered",reason="unregistered"}', 0)
    check(unreg >= 1, f"gateway dropped unr1's SYNs to 3569 as `unregistered` ({unreg:.0f})")


def phase_floods(run):
    print(f"\n== floods for {FLOOD_S:.0f} s: staked attacker at 20x its rate over its own connection and over UDP, "
          "unregistered attacker at 100x its per-source rate, honest iperf3 streams", flush=True)
    lab = run.lab
    honest_before = {h: run.node(h) for h in IPERF}
    before, t_before = run.node("col1"), time.monotonic()
    # Each also paced by the kernel at 90 % of its node's rate (--fq-rate): after a stall,
    # iperf3's own -b catches up with a burst at line rate, which on a busy machine goes past
    # the node's 100 ms of burst and is rightly policed (test_netns_spoof.py saw it).
    iperfs = {h: lab.spawn(run.ns(h), ["iperf3", "-c", CLUSTER[dst], "-p", "3569", "-t", "6", "-b", f"{mbit}M",
                                       "--fq-rate", f"{0.9 * expected_rate(h) * 1448 * 8 / 1e6:.2f}M",
                                       "-l", "16K", "--connect-timeout", "2000", "--json"])
              for h, (dst, mbit) in IPERF.items()}
    rate = expected_rate("col1")
    # Copies of its own data segment on a connection it holds: attributable to col1. (It
    # connects first: its SYN goes through the request channel its UDP flood fills.)
    own = lab.prog(run.ns("col1"), "own-flood", "--iface", "eth0", "--to", f"{CLUSTER['sessions']}:3569",
                   "--pps", 20 * rate, "--seconds", FLOOD_S)
    own.wait_event("flooding")
    floods = {
        "col1": own,
        # UDP from col1's address: anyone could have sent it, so only its request channel.
        "col1-udp": lab.prog(run.ns("col1"), "udp-flood", "--to", f"{CLUSTER['sink']}:3569", "--pps", 20 * rate,
                             "--seconds", FLOOD_S),
        "unr2-api": lab.prog(run.ns("unr2"), "udp-flood", "--to", f"{CLUSTER['api']}:9000", "--pps", 100 * UNREG_PER_SOURCE,
                             "--seconds", FLOOD_S),
        "unr2-3569": lab.prog(run.ns("unr2"), "udp-flood", "--to", f"{CLUSTER['sink']}:3569", "--pps", 1000, "--seconds", FLOOD_S),
    }
    codes = []
    for _ in range(5):  # an honest unregistered client of the public API, during the unregistered flood
        time.sleep(0.6)
        codes.append(run.curl("unr1", f"http://{CLUSTER['api']}:9000/index.html")[0])
    done = {k: p.result() for k, p in floods.items()}
    check(done["col1"].get("result") == "done", f"col1 flooded over its own connection: {done['col1']}")
    sent = {k: r.get("sent", 0) for k, r in done.items()}
    col1_s, unr2_s = max(FLOOD_S, done["col1-udp"]["seconds"]), max(FLOOD_S, done["unr2-api"]["seconds"])
    time.sleep(0.2)
    after, t_after = run.node("col1"), time.monotonic()
    results = {}
    for h, p in iperfs.items():
        out, err = p.communicate(timeout=20)
        try:
            results[h] = json.loads(out)
        except ValueError:
            results[h] = {"error": f"iperf3 exited {p.returncode}: {err.strip() or out.strip()}"}
    honest_after = {h: run.node(h) for h in IPERF}

    for h, r in results.items():
        if "error" in r:
            check(False, f"honest {h} iperf3: {r['error']}")
            continue
        got = r["end"]["sum_received"]["bits_per_second"] / 1e6
        want = IPERF[h][1]
        passed = honest_after[h]["counters"]["passed"] - honest_before[h]["counters"]["passed"]
        dropped = sum(honest_after[h]["counters"][k] - honest_before[h]["counters"][k] for k in honest_after[h]["counters"] if k != "passed")
        check(got >= 0.95 * want, f"honest {h}: iperf3 TCP {got:.2f} Mbit/s received of {want} offered (>= 95 %)")
        check(dropped <= 0.01 * (passed + dropped), f"honest {h}: {dropped} of {passed + dropped} packets dropped (<= 1 %)")

    dt = t_after - t_before
    passed = after["counters"]["passed"] - before["counters"]["passed"]
    over = after["counters"]["over_rate"] - before["counters"]["over_rate"]
    burst = after["burst"]
    check(passed <= rate * dt + burst + 2, f"attacker col1 held to its rate: passed {passed} in {dt:.2f} s "
          f"<= {rate:.0f} pps x {dt:.2f} s + burst {burst:.0f}")
    check(over >= 0.9 * (sent["col1"] - rate * dt - burst),
          f"attacker col1: {over} over_rate drops of the {sent['col1']} segments it flooded over its connection")
    req_over = after["counters"]["request_over_rate"] - before["counters"]["request_over_rate"]
    req = request_rate("col1")
    check(req_over >= 0.9 * (sent["col1-udp"] - req * dt - 1),
          f"attacker col1: {req_over} request_over_rate drops of its {sent['col1-udp']} UDP datagrams "
          f"(its request channel: {req:.0f} pps)")
    # Peer score: at 20x its rate on its verified connection it loses 19 seconds' worth of
    # its rate per second, 190 points a second at the default over_rate penalty (10):
    # graylisted (-100) in about 0.6 s, then held to penalty_factor (0.1) of its rate.
    check(after["graylisted"] and after["score"] < -100, f"attacker col1 is graylisted (score {after['score']:.0f})")
    check(passed <= rate * 1.0 + burst + 0.1 * rate * dt + 2,
          f"graylisted, col1 passed {passed} <= about 1 s at its rate + {dt:.1f} s at a tenth of it")
    s, listed = run.api.call("ListNodes", {"graylisted_only": True})
    names = sorted(n["node_id"] for n in listed["nodes"])
    check(names == [node_id("col1")], f"ListNodes graylisted_only: only col1 ({len(names)} listed)")
    gray_metric = metric_values(scrape(run.metrics_port)).get("stakegate_graylisted_nodes", -1)
    check(gray_metric == 1, f"stakegate_graylisted_nodes = {gray_metric:.0f}")
    for h in IPERF:
        check(not honest_after[h]["graylisted"], f"honest {h} is not graylisted (score {honest_after[h]['score']:.2f})")

    # What arrived, counted by the receivers in the cluster (independently of the gateway).
    got3569 = run.services["sink3569"].stop()["by_source"]
    got9000 = run.services["sink9000"].stop()["by_source"]
    col1_udp = got3569.get(HOSTS["col1"][1], 0)
    check(col1_udp <= req * col1_s + 2,
          f"attacker col1: {col1_udp} of its {sent['col1-udp']} UDP datagrams reached 3569 "
          f"(<= its request channel {req:.0f} pps x {FLOOD_S:.0f} s + burst)")
    unr_burst = UNREG_PER_SOURCE * UNREG_BURST_MS / 1000
    unr2_api = got9000.get(HOSTS["unr2"][1], 0)
    check(0.8 * UNREG_PER_SOURCE * FLOOD_S <= unr2_api <= UNREG_PER_SOURCE * unr2_s + unr_burst + 2,
          f"unregistered attacker unr2: {unr2_api} of {sent['unr2-api']} datagrams reached the API port 9000 "
          f"(its per-source rate {UNREG_PER_SOURCE} pps x {FLOOD_S:.0f} s + burst {unr_burst:.0f})")
    check(got3569.get(HOSTS["unr2"][1], 0) == 0, f"unregistered attacker unr2: none of its {sent['unr2-3569']} datagrams to 3569 arrived")
    check(codes == ["200"] * 5, f"honest unregistered unr1: public API answered {codes} during the unregistered flood")
    run.sent_udp = sent


def phase_evidence(run):
    """The attacker's evidence case (3 s window in this config) has been written by now."""
    print("\n== evidence bundle of the graylisted attacker", flush=True)
    deadline = time.time() + 10
    cases = []
    while time.time() < deadline:
        cases = [c for c in run.api.call("ListEvidence")[1]["cases"] if c["node_id"] == node_id("col1")]
        if cases and not cases[0]["open"]:
            break
        time.sleep(0.2)
    check(len(cases) == 1 and cases[0]["reason"] == "graylist" and not cases[0]["open"] and not cases[0]["error"],
          f"one closed graylist case for col1: {cases}")
    if not cases:
        return
    d = cases[0]["dir"]
    report = json.load(open(os.path.join(d, "report.json")))
    check(report["errant"]["nodes"][0]["node_id"] == node_id("col1") and report["errant"]["source_addresses"] == [HOSTS["col1"][1]],
          "report.json names col1 and its address")
    check(report["counters"]["verified"]["over_rate"] > 0 and report["rate"]["offered_over_allowed"] > 5,
          f"report.json: offered {report['rate']['offered_over_allowed']:.1f} x the allowed rate on its verified "
          f"connection, {report['counters']['verified']['over_rate']} over_rate drops in the window")
    check(report["reporter"]["node_id"] == node_id("con-x"), "report.json carries the operator's own node as reporter")
    ports = [(p["proto"], p["port"]) for p in report["top_destination_ports"]]
    check(ports and ports[0] == ("tcp", 3569), f"top destination port of the sample: {ports[:2]}")
    rows = [l.split("\t") for l in subprocess.run(
        ["tshark", "-r", os.path.join(d, "sample.pcapng"), "-T", "fields", "-e", "ip.src", "-e", "frame.comment"],
        capture_output=True, text=True).stdout.splitlines()]
    check(len(rows) == report["sample"]["packets"] > 0 and {r[0] for r in rows} == {HOSTS["col1"][1]},
          f"sample.pcapng opens in tshark: {len(rows)} packets, all from col1")
    verified = sum("; verified connection;" in r[1] for r in rows)
    check(verified == report["sample"]["verified"] > 0 and verified >= 0.8 * len(rows),
          f"{verified} of the samples are marked verified (col1's own connection), as report.json counts")
    flip = open(os.path.join(d, "flip.md")).read()
    check(node_id("col1") in flip and node_id("con-x") in flip, "flip.md names the errant and the reporting node")


def cut_and_restore(run, host, cut, restore, what):
    """A session from `host` runs; `cut` must stop it mid-flow (and refuse a new connection),
    `restore` must let the same session resume and complete."""
    p = run.session(host, f"{CLUSTER['sessions']}:3569", chunks=400, interval=0.01, deadline=30)
    p.wait_event("connected")
    check(run.wait_acked_beyond(p, 64 * 1024, 5), f"{what}: {host}'s session carries data before")
    cut()
    time.sleep(0.3)  # segments already past the gateway are still acknowledged
    a1 = p.acked()
    fresh = run.session(host, f"{CLUSTER['sessions']}:3569", connect_timeout=1.2).result()
    a2 = p.acked()
    check(a2 == a1 and p.proc.poll() is None, f"{what}: {host}'s session stalls mid-flow (acked {a1} -> {a2} bytes over 1.2 s)")
    check(fresh.get("result") == "connect_failed", f"{what}: a new connection from {host} is refused ({fresh.get('result')})")
    restore()
    check(run.wait_acked_beyond(p, a2, 10), f"{what} undone: {host}'s same session resumes")
    r = p.result(timeout=40)
    check(r.get("result") == "done" and r.get("digest_ok") is True,
          f"{what} undone: {host}'s session completes, {r.get('bytes')} bytes, digest matches ({r.get('result')})")
    fresh = run.session(host, f"{CLUSTER['sessions']}:3569", chunks=16).result()
    check(fresh.get("result") == "done", f"{what} undone: {host} connects again")


def phase_swap_and_block(run):
    print("\n== identity swap removes exe1 mid-flow, reload restores it", flush=True)
    stakes = os.path.join(run.d, "stakes.json")
    without = write_identities(run.d, exclude=("exe1",))
    unreg_before = run.top_drops("unregistered", "unregistered")

    def swap_out():
        run.ctl("identities", "replace", without, "--stakes", stakes)
        check(run.node("exe1") is None, "after the swap the gateway no longer knows exe1")

    def reload():
        run.ctl("reload")  # the config file still lists exe1 (as at the next epoch)
        check(run.node("exe1") is not None, "after the reload exe1 is back in the table")

    cut_and_restore(run, "exe1", swap_out, reload, "identity swap")
    unreg = run.top_drops("unregistered", "unregistered") - unreg_before
    check(unreg > 0, f"while removed, exe1's packets dropped as `unregistered` ({unreg})")
    run.exe1_unregistered = unreg  # nobody else sends to 3569 meanwhile: these are all exe1's

    print("\n== blocklist: block con1 through the control API mid-flow, then unblock", flush=True)
    before = run.node("con1")["counters"]["blocklisted"]
    con1 = node_id("con1")
    cut_and_restore(run, "con1", lambda: run.ctl("block", con1, "--reason", "e2e: mid-flow block"),
                    lambda: run.ctl("unblock", con1), "block")
    blocked = run.node("con1")["counters"]["blocklisted"] - before
    check(blocked > 0, f"con1's packets dropped as `blocklisted` while blocked ({blocked})")


REASONS = ("blocklisted", "ejected", "port_denied", "over_rate", "request_over_rate", "session_over_rate")


def phase_accounting(run):
    """What each host sent (counted on the switch's uplink), what arrived (on the cluster's
    interface) and what the gateway says it passed and dropped, side by side."""
    print("\n== accounting", flush=True)
    time.sleep(0.3)  # let the last frames land
    sent = run.services["tap_out"].stop()
    arrived = run.services["tap_in"].stop()
    for name, t in (("switch uplink", sent), ("cluster eth0", arrived)):
        check(t["socket_drops"] == 0, f"the {name} tap lost no frames ({t['socket_drops']})")
    st = run.api.call("Status")[1]
    s, top = run.api.call("Top", {"limit": 1})
    m = metric_values(scrape(run.metrics_port))
    tx_dropped = sum(v for k, v in m.items() if k.startswith("stakegate_port_tx_dropped_total"))
    rx_missed = sum(v for k, v in m.items() if k.startswith("stakegate_port_rx_missed_total"))

    per_host = []
    print(f"{'host':5} {'role':13} {'rate pps':>9} {'sent':>7} {'arrived':>8} {'gw passed':>10}  gateway drops by reason")
    for h, (role, ip, _) in HOSTS.items():
        n = run.node(h) if role else None
        rate = f"{n['rate_pps']:.0f}" if n else f"{UNREG_PER_SOURCE}/src"
        passed_n = sum(n["counters"][k] for k in ("passed", "request_passed", "session_passed")) if n else 0
        passed = str(passed_n) if n else "-"
        drops = ", ".join(f"{k} {n['counters'][k]}" for k in REASONS if n["counters"][k]) if n else "(see unregistered below)"
        # exe1 was out of the table for a while: its packets then counted as unregistered.
        removed = run.exe1_unregistered if h == "exe1" else 0
        if removed:
            drops += f"{', ' if drops else ''}unregistered {removed} (while out of the table)"
        print(f"{h:5} {role or 'unregistered':13} {rate:>9} {sent['by_source'].get(ip, 0):>7} "
              f"{arrived['by_source'].get(ip, 0):>8} {passed:>10}  {drops or '-'}")
        if n:
            seen = passed_n + sum(n["counters"][k] for k in REASONS) + removed
            per_host.append((seen == sent["by_source"].get(ip, 0) and passed_n == arrived["by_source"].get(ip, 0),
                             f"{h}: the gateway saw every frame it sent ({seen}) and all it passed arrived "
                             f"({passed_n})"))
    for r in top["roles"]:
        if r["role"] == "unregistered":
            drops = ", ".join(f"{k} {v}" for k, v in r["dropped"].items() if int(v))
            print(f"{'':5} {'unregistered':13} {'(all)':>9} {'':>7} {'':>8} {r['passed']:>10}  {drops}")
        if r["role"] == "l2":
            print(f"{'':5} {'non-IP (ARP)':13} {'':>9} {sent['non_ip']:>7} {arrived['non_ip']:>8} {r['passed']:>10}")
    total_sent = sum(sent["by_source"].values()) + sent["non_ip"]
    total_arrived = sum(arrived["by_source"].values()) + arrived["non_ip"]
    print("gateway drops by reason:", {k: int(v) for k, v in st["drops_by_reason"].items() if int(v)})
    print(f"total: sent {total_sent}, gateway received {st['outside_packets']} and passed {st['outside_passed']}, "
          f"arrived {total_arrived}; tx dropped {tx_dropped:.0f}, rx missed {rx_missed:.0f}")
    for ok, what in per_host:
        check(ok, what)
    check(int(st["outside_packets"]) == total_sent, f"the gateway counted every frame from the outside "
          f"({st['outside_packets']} of {total_sent})")
    check(int(st["outside_passed"]) - tx_dropped == total_arrived, f"every frame it passed arrived inside "
          f"({int(st['outside_passed']) - tx_dropped:.0f} passed, {total_arrived} arrived)")


def phases(lab, d, gw, metrics_port):
    run = Run(lab, d, gw)
    run.metrics_port = metrics_port
    run.services = start_services(run)
    phase_reachability(run)
    phase_floods(run)
    phase_evidence(run)
    phase_swap_and_block(run)
    phase_accounting(run)


if __name__ == "__main__":
    run_inline(build_topology, write_config, phases)
