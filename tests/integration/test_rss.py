#!/usr/bin/env python3
"""Several workers, as on a NIC with RSS (docs/architecture.md "Steering").

The virtual devices here have no RSS, so a model preloaded into the real binary
(tests/nicsim/rss_sim.cc) reports a NIC's capabilities and what it applied, and the test
steers the traffic as that NIC would: each frame goes to the rx_pcap queue the Toeplitz
hash of its remote address picks (rss.py: the key the gateway gave the ports, checked),
outside on the source address, inside on the destination.

1. Per-source rates with 2 workers and RSS on: twelve staked nodes flood over verified
   connections (net_pcap, endless); each passes its configured rate (not half, not twice).
2. `rss: false`: the same traffic, each worker enforcing rate / 2: the documented split,
   a warning at start and stakegate_rate_split_workers 2.
3. Refusals: a device that cannot hash on the source address alone; one that applied
   RSS with L4 ports anyway (read back); without RSS at all (the real net_pcap).
4. A request and its answer on different workers: the cluster's first neighbour
   solicitation for its router goes to a solicited-node multicast group, the router's
   advertisement comes from its own address, and the two hash to different queues. The
   answer still passes as one (stakegate_neighbour_answers_total): the workers share the
   table of the cluster's requests.
5. A router's ICMP error and the session it quotes on different workers: the error hashes
   by the router's address, the cluster's connection by the remote's. The worker that gets
   the error hands it to the one holding the session, and it passes as infrastructure
   (stakegate_handoffs_total); without the handoff it would be `unregistered`, and path MTU
   discovery through a router hashing elsewhere would fail.
6. IPv6 /64s on one worker: a NIC that can hash IPv6 addresses on their first 64 bits
   (RTE_ETH_RSS_L3_PRE64) is asked to on both ports, and the log says so; without it the
   log warns. With it, an unregistered client spreading its datagrams over 32 addresses of
   its /64 passes its per-source rate once (its bucket is the /64), and a router's Packet
   Too Big about the cluster's connection to an IPv6 remote is handed to the worker the
   remote's /64 hashes to, which holds the session: a worker hashing the whole address
   would pick another one and the error would be dropped.
"""
import ipaddress
import os
import struct
import subprocess
import time

from common import STAKEGATE, STAKEGATECTL, TempDir, check, finish, free_port, metric_values, read_pcap, scrape, write_pcap, write_yaml
from common import UnixHTTPConnection
from flows import SYN, TcpConn, frame, tcp, udp
import rss

RSSSIM = os.environ["STAKEGATE_RSSSIM"]
CLUSTER = "198.18.255.1"
NODES = [f"198.18.10.{i}" for i in range(1, 13)]
CAPACITY, SHARE = 24000, 0.5
RATE = SHARE * CAPACITY / len(NODES)     # 1,000 pps each: equal weights
# A NIC that can hash on one address alone (ice, mlx5 report this set).
RSS_IP = 0x4 | 0x8 | 0x80 | 0x100 | 0x200 | 0x2000  # IPV4 FRAG_IPV4 NONFRAG_IPV4_OTHER IPV6 FRAG_IPV6 NONFRAG_IPV6_OTHER
RSS_L4 = 0x10 | 0x20 | 0x400 | 0x800                 # NONFRAG_IPV4_TCP/UDP, NONFRAG_IPV6_TCP/UDP
L3_SRC_ONLY, L3_DST_ONLY = 1 << 63, 1 << 62
L3_PRE64 = 1 << 53
MODERN = RSS_IP | RSS_L4 | L3_SRC_ONLY | L3_DST_ONLY
OLDER = RSS_IP | RSS_L4


def node_id(i):
    return f"{i + 1:02x}" * 32


def write_captures(d, queues=2):
    """Per-queue captures: each node's connection (its SYN, the ACK that verifies it, data),
    outside on the queue of its source, the cluster's SYN-ACK inside on the queue of its
    destination: both on the same worker."""
    out, inside = [[] for _ in range(queues)], [[] for _ in range(queues)]
    for i, addr in enumerate(NODES):
        q = rss.queue_of(addr, queues)
        c = TcpConn(addr, CLUSTER, rport=40000 + i)
        out[q].append(c.remote_syn())
        inside[q].append(c.local_syn_ack())
        out[q] += [c.remote_data(size=64) for _ in range(40)]
    paths = {}
    for q in range(queues):
        paths[f"out{q}"] = os.path.join(d, f"out{q}.pcap")
        paths[f"in{q}"] = os.path.join(d, f"in{q}.pcap")
        write_pcap(paths[f"out{q}"], out[q])
        write_pcap(paths[f"in{q}"], inside[q])
    return paths, [len([a for a in NODES if rss.queue_of(a, queues) == q]) for q in range(queues)]


CLUSTER6 = "2001:db8:ff::1"


def solicited_node(address):
    """The solicited-node multicast group of an IPv6 address (ff02::1:ffXX:XXXX)."""
    return str(ipaddress.ip_address(int(ipaddress.ip_address("ff02::1:ff00:0")) | int(ipaddress.ip_address(address)) & 0xFFFFFF))


def neighbour(src, dst, target, kind, mac):
    """A neighbour solicitation (135) or advertisement (136, solicited and override), hop
    limit 255, with its link-layer address option."""
    flags = 0 if kind == 135 else 0x60000000
    body = struct.pack("!BBHI", kind, 0, 0, flags) + ipaddress.ip_address(target).packed
    body += bytes([1 if kind == 135 else 2, 1]) + mac
    return frame(src, dst, 58, body, ttl=255, src_mac=mac)


def extend_captures(d, paths, label, first=(), last=()):
    """The captures `paths` again, as `label`-QUEUE.pcap, with (queue, frames) pairs put
    before (`first`) or after (`last`) each queue's frames."""
    frames = {k: read_pcap(v) for k, v in paths.items()}
    for k, fs in first:
        frames[k][:0] = fs
    for k, fs in last:
        frames[k] += fs
    out = {}
    for k, v in frames.items():
        out[k] = os.path.join(d, f"{label}-{k}.pcap")
        write_pcap(out[k], v)
    return out


def write_nd_captures(d, paths, queues=2):
    """The captures of phase 1, plus the cluster's solicitation for a router whose address
    and solicited-node group hash to different queues (first on its inside queue), and the
    router's answer on the outside queue of its address (replayed endlessly with the rest)."""
    router = next(a for a in (f"2001:db8:fe::{i:x}" for i in range(1, 200))
                  if rss.queue_of(a, queues) != rss.queue_of(solicited_node(a), queues))
    q_ask, q_answer = rss.queue_of(solicited_node(router), queues), rss.queue_of(router, queues)
    nd = extend_captures(d, paths, "nd",
                         first=[(f"in{q_ask}", [neighbour(CLUSTER6, solicited_node(router), router, 135, b"\x02\0\0\0\0\x02")])],
                         last=[(f"out{q_answer}", [neighbour(router, CLUSTER6, router, 136, b"\x02\0\0\0\0\x01")])])
    return nd, router, q_ask, q_answer


def write_icmp_captures(d, paths, queues=2):
    """The captures of phase 1, plus the cluster's SYN to a remote (inside, on the remote's
    queue) and a router's "fragmentation needed" quoting it (outside, on the router's queue,
    another one; replayed endlessly with the rest)."""
    remote = "198.18.60.1"
    router = next(a for a in (f"198.18.61.{i}" for i in range(1, 200)) if rss.queue_of(a, queues) != rss.queue_of(remote, queues))
    q_session, q_error = rss.queue_of(remote, queues), rss.queue_of(router, queues)
    syn = tcp(CLUSTER, remote, 41000, 443, 5000, 0, SYN)
    icmp = struct.pack("!BBHHH", 3, 4, 0, 0, 1280) + syn[14:14 + 28]
    out = extend_captures(d, paths, "icmp", first=[(f"in{q_session}", [syn])],
                          last=[(f"out{q_error}", [frame(router, CLUSTER, 1, icmp)])])
    return out, router, q_session, q_error


PER_SOURCE = 50


def write_prefix_captures(d, paths, queues=2):
    """The captures of phase 1, plus (steered as a NIC hashing IPv6 on the /64 would) an
    unregistered client's UDP datagrams to the public port from 32 addresses of its /64,
    and the cluster's SYN to an IPv6 remote (inside, on the remote's queue) with a router's
    Packet Too Big quoting it (outside, on the router's queue, another one). The remote is
    picked so that hashing its whole address gives yet another queue than its /64."""
    client = [f"2001:db8:77:1:{i:x}::{3 * i + 1:x}" for i in range(32)]
    remote = next(a for a in (f"2001:db8:60:{i:x}::1" for i in range(1, 400))
                  if rss.queue_of(a, queues, prefix64=True) != rss.queue_of(a, queues))
    router = next(a for a in (f"2001:db8:61:{i:x}::1" for i in range(1, 400))
                  if rss.queue_of(a, queues, prefix64=True) != rss.queue_of(remote, queues, prefix64=True))
    q_session, q_error = rss.queue_of(remote, queues, prefix64=True), rss.queue_of(router, queues, prefix64=True)
    syn = tcp(CLUSTER6, remote, 41000, 443, 5000, 0, SYN)
    ptb = struct.pack("!BBHI", 2, 0, 0, 1280) + syn[14:14 + 60]
    q_client = rss.queue_of(client[0], queues, prefix64=True)
    out = extend_captures(d, paths, "pre64", first=[(f"in{q_session}", [syn])],
                          last=[(f"out{q_client}", [udp(a, CLUSTER6, 5000, 9000) for a in client]),
                                (f"out{q_error}", [frame(router, CLUSTER6, 58, ptb)])])
    return out, remote, router, q_session, q_error


def write_config(d, paths, metrics_port, rss_on=True, name="stakegate.yaml", endless=True):
    nodes = [{"node_id": node_id(i), "role": "consensus", "address": f"{a}:3569"} for i, a in enumerate(NODES)]
    return write_yaml(os.path.join(d, name), {
        "dataplane": {"eal": ["--no-huge", "-m", "1024", "--no-pci", "--no-shconf"],
                      "outside": {"vdev": f"net_pcap0,rx_pcap={paths['out0']},rx_pcap={paths['out1']}"
                                          + (",infinite_rx=1" if endless else "")},
                      "inside": {"vdev": f"net_pcap1,rx_pcap={paths['in0']},rx_pcap={paths['in1']},"
                                         "tx_pcap=/dev/null,tx_pcap=/dev/null"},
                      "workers": 2, "rss": rss_on, "mbufs": 32767, "stats_interval_s": 1},
        "capacity": {"pps": CAPACITY},
        "cluster": {"prefixes": ["198.18.255.0/24", "2001:db8:ff::/64"]},
        "identity": {"nodes": nodes},
        "roles": {"consensus": {"share": SHARE, "burst_ms": 100, "ports": [3569]}},
        "unregistered": {"share": 0.05, "per_source_pps": PER_SOURCE, "ports": [9000]},
        "scoring": {"enabled": False},
        "control": {"socket": f"{d}/ctl.sock", "metrics": f"127.0.0.1:{metrics_port}"}})


def start(cfg, env_extra, log):
    env = dict(os.environ, **env_extra)
    return subprocess.Popen([STAKEGATE, "run", "--config", cfg], stdout=log, stderr=subprocess.STDOUT, env=env, text=True)


def api_call(sock, rpc, body=None):
    status, r = UnixHTTPConnection(sock).call(rpc, body or {})
    return r


def wait_ready(p, sock, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if p.poll() is not None:
            return False
        if os.path.exists(sock):
            try:
                api_call(sock, "Status")
                return True
            except OSError:
                pass
        time.sleep(0.1)
    return False


def passed_by_node(sock):
    nodes = api_call(sock, "ListNodes", {"limit": 100})["nodes"]
    return {n["node_id"]: int(n["counters"].get("passed", 0)) for n in nodes}, time.monotonic()


def measure(d, cfg, env_extra, metrics_port, label):
    """Per-node passed rate over 3 s of endless flooding, after the first second."""
    log_path = os.path.join(d, label + ".log")
    with open(log_path, "w") as log:
        p = start(cfg, env_extra, log)
        try:
            ok = wait_ready(p, f"{d}/ctl.sock")
            check(ok, f"[{label}] the gateway starts with 2 workers")
            if not ok:
                return None, open(log_path).read(), {}
            time.sleep(1.0)
            a, t1 = passed_by_node(f"{d}/ctl.sock")
            time.sleep(3.0)
            b, t2 = passed_by_node(f"{d}/ctl.sock")
            m = metric_values(scrape(metrics_port))
        finally:
            p.terminate()
            p.wait(timeout=30)
    rates = {k: (b[k] - a.get(k, 0)) / (t2 - t1) for k in b}
    return rates, open(log_path).read(), m


def write_one_queue_captures(d):
    """What a NIC that does not spread its queues delivers: every node's connection on
    queue 0 (and one frame on queue 1, which net_pcap needs)."""
    out, inside = [], []
    for i, addr in enumerate(NODES):
        c = TcpConn(addr, CLUSTER, rport=41000 + i)
        out.append(c.remote_syn())
        inside.append(c.local_syn_ack())
        out += [c.remote_data(size=64) for _ in range(100)]
    paths = {k: os.path.join(d, f"one-{k}.pcap") for k in ("out0", "out1", "in0", "in1")}
    for k, frames in (("out0", out), ("out1", out[-1:]), ("in0", inside), ("in1", inside[:1])):
        write_pcap(paths[k], frames)
    return paths, len(out)


def observe(d, cfg, metrics_port, label, seconds=2.5):
    """The log, Status, `stakegatectl status` and the metrics of a gateway run for `seconds`."""
    log_path = os.path.join(d, label + ".log")
    with open(log_path, "w") as log:
        p = start(cfg, {}, log)
        try:
            if not wait_ready(p, f"{d}/ctl.sock"):
                check(False, f"[{label}] the gateway starts with 2 workers")
                return open(log_path).read(), {}, "", {}
            time.sleep(seconds)
            status = api_call(f"{d}/ctl.sock", "Status")
            ctl = subprocess.run([STAKEGATECTL, "--socket", f"{d}/ctl.sock", "status"], capture_output=True, text=True,
                                 timeout=30).stdout
            m = metric_values(scrape(metrics_port))
        finally:
            p.terminate()
            p.wait(timeout=30)
    return open(log_path).read(), status, ctl, m


def refused(d, cfg, env_extra, label):
    p = subprocess.run([STAKEGATE, "run", "--config", cfg], capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, **env_extra))
    return p.returncode, p.stdout + p.stderr


with TempDir() as d:
    paths, per_queue = write_captures(d)
    check(min(per_queue) >= 3, f"the Toeplitz hash spreads the nodes over both queues: {per_queue}")

    print("\n== 2 workers, RSS on the source address (modelled NIC)", flush=True)
    port = free_port()
    cfg = write_config(d, paths, port)
    keyfile = os.path.join(d, "keys")
    sim = {"LD_PRELOAD": RSSSIM, "STAKEGATE_RSSSIM_OFFLOADS": f"{MODERN:x}", "STAKEGATE_RSSSIM_KEYFILE": keyfile}
    rates, log, m = measure(d, cfg, sim, port, "rss")
    if rates is not None:
        check("RSS on the source address" in log and "RSS on the destination address" in log,
              "both ports run RSS: outside on the source, inside on the destination")
        keys = open(keyfile).read().split()
        check(keys == [rss.KEY.hex()] * 2, f"both ports were given the key the test steers with ({len(keys)} keys)")
        off = {k: r for k, r in rates.items() if abs(r - RATE) > 0.05 * RATE}
        check(len(rates) == len(NODES) and not off,
              f"each of the {len(NODES)} nodes passes its configured {RATE:.0f} pps with 2 workers "
              f"(measured {min(rates.values()):.0f} to {max(rates.values()):.0f} pps)")
        check(m.get("stakegate_rate_split_workers") == 1, f"stakegate_rate_split_workers = {m.get('stakegate_rate_split_workers')}")

    print("\n== 2 workers, dataplane.rss: false", flush=True)
    cfg_off = write_config(d, paths, port, rss_on=False, name="rss-off.yaml")
    rates, log, m = measure(d, cfg_off, {}, port, "rss-off")
    if rates is not None:
        check("without RSS" in log and "each enforces rate / 2" in log, "the split is logged as a warning at start")
        off = {k: r for k, r in rates.items() if abs(r - RATE / 2) > 0.05 * RATE / 2}
        check(not off, f"without RSS each worker enforces rate / 2: a node steered to one queue passes "
              f"{min(rates.values()):.0f} to {max(rates.values()):.0f} pps of its {RATE:.0f}")
        check(m.get("stakegate_rate_split_workers") == 2, f"stakegate_rate_split_workers = {m.get('stakegate_rate_split_workers')}")
        check("does not spread" not in log, "traffic spread over both queues: no warning that one worker takes it all")

    print("\n== 2 workers, dataplane.rss: false, and a NIC that puts everything on one queue", flush=True)
    one_paths, sent = write_one_queue_captures(d)
    log, status, ctl, m = observe(d, write_config(d, one_paths, port, rss_on=False, name="rss-one.yaml", endless=False),
                                  port, "rss-one")
    if status:
        w0 = m.get('stakegate_worker_outside_packets_total{worker="0"}', 0)
        w1 = m.get('stakegate_worker_outside_packets_total{worker="1"}', 0)
        check(w0 == sent and w1 == 1, f"stakegate_worker_outside_packets_total: worker 0 {w0:.0f} of {sent}, worker 1 {w1:.0f}")
        warned = next((l for l in log.splitlines() if "does not spread" in l), "")
        check("worker 0 received 100 % of the outside packets" in warned and "every node gets 1/2 of its rate" in warned,
              f"the log warns that one worker takes the traffic of a split rate: {warned.strip()[-160:] or log[-300:]}")
        share = status.get("diagnostics", {}).get("unspread_share", 0)
        attention = next((l for l in ctl.splitlines() if l.startswith("attention: one worker")), "")
        check(share > 0.99 and "every node gets 1/2 of its rate" in attention,
              f"Status says so (unspread_share {share}), and stakegatectl status: {attention or ctl[-300:]}")

    print("\n== a neighbour solicitation and its answer on different workers", flush=True)
    nd_paths, router, q_ask, q_answer = write_nd_captures(d, paths)
    cfg_nd = write_config(d, nd_paths, port, name="nd.yaml")
    rates, log, m = measure(d, cfg_nd, sim, port, "nd")
    if rates is not None:
        answers = m.get("stakegate_neighbour_answers_total")
        check(answers == 2, f"the cluster asks for {router} on queue {q_ask} (its solicited-node group), the "
              f"router answers on queue {q_answer}: {answers} of its endless answers "
              f"pass as answers (2 per request), whichever worker saw the request")

    print("\n== an ICMP error and the session it quotes on different workers", flush=True)
    icmp_paths, router, q_session, q_error = write_icmp_captures(d, paths)
    rates, log, m = measure(d, write_config(d, icmp_paths, port, name="icmp.yaml"), sim, port, "icmp")
    if rates is not None:
        infra = sum(v for k, v in m.items() if k.startswith("stakegate_packets_total{") and 'direction="outside"' in k
                    and 'role="infra"' in k and 'verdict="pass"' in k)
        unreg = sum(v for k, v in m.items() if k.startswith("stakegate_drops_total{") and 'role="unregistered"' in k)
        handoffs = m.get("stakegate_handoffs_total", 0)
        check(infra > 0 and handoffs >= infra and unreg == 0,
              f"the cluster's connection is on queue {q_session}, the router {router}'s fragmentation-needed about it "
              f"arrives on queue {q_error}: {handoffs:.0f} handed over, {infra:.0f} passed as infra "
              f"(the icmp_errors budget), {unreg:.0f} dropped as unregistered")

    print("\n== IPv6 /64s on one worker (a NIC hashing IPv6 on the /64)", flush=True)
    pre_paths, remote, router, q_session, q_error = write_prefix_captures(d, paths)
    pre_sim = {"LD_PRELOAD": RSSSIM, "STAKEGATE_RSSSIM_OFFLOADS": f"{MODERN | L3_PRE64:x}"}
    check("cannot hash IPv6 addresses on their /64" in log and "IPv6 addresses are hashed on their /64" not in log,
          "without L3_PRE64 (the ICMP run above) the log warns that an IPv6 client's /64 may reach every worker")
    log_path = os.path.join(d, "pre64.log")
    with open(log_path, "w") as f:
        p = start(write_config(d, pre_paths, port, name="pre64.yaml"), pre_sim, f)
        try:
            started = wait_ready(p, f"{d}/ctl.sock")
            check(started, "[pre64] the gateway starts with 2 workers")
            if started:
                time.sleep(1.0)
                a, t1 = metric_values(scrape(port)), time.monotonic()
                time.sleep(3.0)
                b, t2 = metric_values(scrape(port)), time.monotonic()
        finally:
            p.terminate()
            p.wait(timeout=30)
    log = open(log_path).read()
    if started:
        check("IPv6 addresses are hashed on their /64" in log and log.count("(IPv6: its /64)") == 2,
              "both ports were asked to hash IPv6 on the /64 and applied it (log)")
        key = 'stakegate_packets_total{direction="outside",role="unregistered",verdict="pass"}'
        rate = (b.get(key, 0) - a.get(key, 0)) / (t2 - t1)
        check(0.8 * PER_SOURCE <= rate <= 1.2 * PER_SOURCE,
              f"an unregistered client flooding from 32 addresses of its /64 passes {rate:.1f} pps with 2 workers: "
              f"its per-source {PER_SOURCE} pps once")
        infra = sum(v for k, v in b.items() if k.startswith("stakegate_packets_total{") and 'direction="outside"' in k
                    and 'role="infra"' in k and 'verdict="pass"' in k)
        dropped = sum(v for k, v in b.items() if k.startswith("stakegate_drops_total{") and 'role="unregistered"' in k
                      and 'reason="unregistered"' in k)
        handoffs = b.get("stakegate_handoffs_total", 0)
        check(infra > 0 and handoffs >= infra and dropped == 0,
              f"the cluster's connection to {remote} is on queue {q_session} (its /64's), the router {router}'s "
              f"Packet Too Big about it arrives on queue {q_error}: {handoffs:.0f} handed over, {infra:.0f} passed as "
              f"infra, {dropped:.0f} dropped as unregistered")

    print("\n== devices that cannot steer by source, refused", flush=True)
    rc, out = refused(d, cfg, {"LD_PRELOAD": RSSSIM, "STAKEGATE_RSSSIM_OFFLOADS": f"{OLDER:x}"}, "older")
    check(rc != 0 and "source address alone" in out and "dataplane.rss: false" in out,
          f"a NIC that hashes address pairs and 4-tuples only is refused (exit {rc}): "
          f"{next((l for l in out.splitlines() if 'source address alone' in l), out[-200:])}")
    rc, out = refused(d, cfg, {"LD_PRELOAD": RSSSIM, "STAKEGATE_RSSSIM_OFFLOADS": f"{MODERN:x}",
                               "STAKEGATE_RSSSIM_APPLIED": f"{RSS_IP | RSS_L4 | L3_SRC_ONLY:x}"}, "applied-l4")
    check(rc != 0 and "applied RSS with L4 ports" in out,
          f"a NIC that applied L4 ports despite the request is refused on read-back (exit {rc})")
    rc, out = refused(d, cfg, {}, "no-rss")
    check(rc != 0 and "source address alone" in out, f"net_pcap itself (no RSS) with 2 workers and rss on: refused (exit {rc})")

finish()
