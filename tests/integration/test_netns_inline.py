#!/usr/bin/env python3
"""The cluster's own traffic through stakegate, with IPv6 on and floods running: what an
inline appliance must never cut (docs/operations.md "What passes, and why").

    outside (one namespace each)                  switch ns        root ns                 cluster ns
    peer peer6 web dns flood rtr --veth-- [bridge br0]--uplink --veth-- o [stakegate] i --veth-- eth0
                              |                                                              198.18.0.100
                              +-- far (198.18.2.10, 2001:2:2::10) behind a 1,280-byte link   2001:2::100

While an unregistered host floods the public port, forges the staked peer's address (UDP
to its node port) and forges a cluster address, the cluster:
  - opens a TCP connection to the staked peer's 3569 and fetches a file from an
    unregistered web server over IPv4 and IPv6 (replies to its ephemeral ports),
  - asks an outside resolver (dnsmasq) over UDP, pings the peer, the web server and the
    router (also at its link-local address),
  - uploads to `far` across the router's smaller-MTU link over IPv4 and IPv6: the
    router's ICMP fragmentation-needed / Packet Too Big must reach it (path MTU discovery),
and a staked node reaches the cluster over IPv6 (neighbour discovery through the gateway).
None of the answering peers is penalised. Then a flood of ARP and of another EtherType
shows non-IP frames held to the `infra` budget, while the cluster, its neighbour entries
flushed, resolves its router again over IPv4 and IPv6 (the answers to its own requests
pass) and the router, listed in `infra.neighbours`, resolves the cluster; the forged
cluster source, in IP and in ARP, is counted as `spoofed`, and so is ARP from another host
claiming the router's address (listed with its MAC), which leaves the cluster's entry for
the router alone; only the listed router's
advertisements reach the cluster (`infra.ra_guard`); the router's BGP (GTSM) and BFD
reach a node (`infra.routing`), the same forged from further away or sent by another host
of the link do not; an outside host's pings are answered (`unregistered.icmp_echo`); a node without an address gets a DHCP server's offer from the outside
link. The gateway's links start with GRO on: it is off
while the gateway runs (or the uploads would crawl), and on again after, even after a run
that was killed (the next run turns it back on). The outside link's MTU (2,000) is more
than net_af_packet's ring frames hold: warned at start. Needs root; the namespaces are
removed on exit.
"""
import hashlib
import json
import os
import struct
import subprocess
import sys
import time

from common import STAKEGATECTL, Gateway, check, metric_values, scrape, write_yaml
from netlab import LabError, af_packet_dataplane, run_inline, sh

PEER, PEER6 = "198.18.0.11", "2001:2::12"          # staked: consensus (IPv4), execution (IPv6)
WEB, WEB6 = "198.18.0.31", "2001:2::31"            # an unregistered web server
DNS, DNS6 = "198.18.0.53", "2001:2::53"            # an unregistered resolver (and DHCP server)
FLOOD = "198.18.0.66"                              # the attacker
RTR, RTR6, RTR_FAR, RTR_FAR6 = "198.18.0.1", "2001:2::1", "198.18.2.1", "2001:2:2::1"
FAR, FAR6 = "198.18.2.10", "2001:2:2::10"          # behind the router's 1,280-byte link
CL, CL6, CL_SPOOFED = "198.18.0.100", "2001:2::100", "198.18.0.101"
CL_FOREIGN = "198.18.0.120"                        # an address of the cluster's host outside its prefixes
PREFIXES = ["198.18.0.96/28", "2001:2::100/120"]
CAPACITY, INFRA_PPS, INFRA_BURST_MS = 20000, 200, 100
FLOOD_S = 14.0


def node_id(name):
    return hashlib.sha256(f"stakegate-inline-{name}".encode()).hexdigest()


def write_config(d, lab, metrics_port):
    nodes = [{"Role": "consensus", "Address": f"{PEER}:3569", "NodeID": node_id("peer"), "Weight": 100},
             {"Role": "execution", "Address": f"[{PEER6}]:3569", "NodeID": node_id("peer6"), "Weight": 100}]
    with open(os.path.join(d, "node-infos.pub.json"), "w") as f:
        json.dump(nodes, f)
    roles = {r: {"share": s, "min_pps": 200, "burst_ms": 100, "ports": [3569]}
             for r, s in (("consensus", 0.3), ("execution", 0.3), ("collection", 0.1), ("verification", 0.1),
                          ("access", 0.1))}
    return write_yaml(os.path.join(d, "stakegate.yaml"), {
        "dataplane": af_packet_dataplane(lab),
        "capacity": {"pps": CAPACITY},
        "identity": {"flow_node_infos": "node-infos.pub.json"},
        "roles": roles,
        "unregistered": {"share": 0.05, "per_source_pps": 50, "ports": [9000], "icmp_echo": True},
        "sessions": {"share": 0.05},
        "infra": {"pps": INFRA_PPS, "burst_ms": INFRA_BURST_MS,
                  "neighbours": [{"mac": lab.mac(lab.ns("rtr"), "eth0"), "addresses": [RTR, RTR6]}],
                  "ra_guard": True, "routing": ["bgp", "bfd"]},
        "cluster": {"prefixes": PREFIXES},
        "control": {"socket": f"{d}/control.sock", "metrics": f"127.0.0.1:{metrics_port}"},
        "evidence": {"dir": f"{d}/evidence", "window_s": 3},
        "state_dir": f"{d}/state"})


def build_topology(lab):
    lab.switched({"peer": [f"{PEER}/24"], "peer6": [f"{PEER6}/64"], "web": [f"{WEB}/24", f"{WEB6}/64"],
                  "dns": [f"{DNS}/24", f"{DNS6}/64"], "flood": [f"{FLOOD}/24"], "rtr": [f"{RTR}/24", f"{RTR6}/64"]},
                 [f"{CL}/24", f"{CL_SPOOFED}/24", f"{CL6}/64"], ipv6=True)
    rtr, far = lab.ns("rtr"), lab.add_ns("far", ipv6=True)
    lab.veth(rtr, "far0", far, "eth0")
    for ns, ifname in ((rtr, "far0"), (far, "eth0")):
        lab.mtu(ns, ifname, 1280)
    lab.address(rtr, "far0", f"{RTR_FAR}/24")
    lab.address(rtr, "far0", f"{RTR_FAR6}/64")
    lab.sysctl(rtr, "net.ipv4.ip_forward", 1)
    lab.sysctl(rtr, "net.ipv6.conf.all.forwarding", 1)
    lab.address(far, "eth0", f"{FAR}/24")
    lab.address(far, "eth0", f"{FAR6}/64")
    # far advertises the MSS of a 1,500-byte path: only the router knows it is narrower,
    # so the cluster's first full-size segments meet its ICMP error.
    sh(["ip", "route", "add", "default", "via", RTR_FAR, "advmss", "1460"], ns=far)
    sh(["ip", "-6", "route", "add", "default", "via", RTR_FAR6, "advmss", "1440"], ns=far)
    cl = lab.ns("cl")
    lab.route(cl, "198.18.2.0/24", RTR)
    sh(["ip", "-6", "route", "add", "2001:2:2::/64", "via", RTR6], ns=cl)
    # The gateway's own links with receive offload on, as a host's interfaces come: the
    # gateway turns it off while it runs (a packet socket would see the cluster's uploads
    # as merged frames longer than the MTU, and they would crawl), then back on.
    for side in "oi":
        sh(["ethtool", "-K", lab.root_link(side), "gro", "on"])
    # The outside link's MTU is more than net_af_packet's default ring frames hold (1,982
    # bytes): warned at start (the hosts here send at most 1,500).
    lab.mtu(None, lab.root_link("o"), 2000)


def wait_listening(ns, want, what):
    deadline = time.time() + 10
    while time.time() < deadline:
        listening = sh(["ss", "-Htlnu"], ns=ns).stdout
        if all(w in listening for w in want):
            return
        time.sleep(0.05)
    raise LabError(f"{what} did not start listening on {want}:\n{listening}")


def start_services(lab, d):
    s = {}
    s["peer"] = lab.prog(lab.ns("peer"), "tcp-server", "--bind", f"{PEER}:3569")
    s["far"] = lab.prog(lab.ns("far"), "tcp-server", "--bind", f"{FAR}:3569")
    s["far6"] = lab.prog(lab.ns("far"), "tcp-server", "--bind", f"[{FAR6}]:3569")
    s["cl6"] = lab.prog(lab.ns("cl"), "tcp-server", "--bind", f"[{CL6}]:3569")
    for k in ("peer", "far", "far6", "cl6"):
        s[k].wait_event("ready")
    www = os.path.join(d, "www")
    os.makedirs(www)
    blob = os.urandom(512 * 1024)
    with open(os.path.join(www, "blob"), "wb") as f:
        f.write(blob)
    s["blob_sha256"] = hashlib.sha256(blob).hexdigest()
    s["http"] = lab.spawn(lab.ns("web"), [sys.executable, "-m", "http.server", "8080", "--bind", "::", "--directory", www],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    s["dnsmasq"] = lab.spawn(lab.ns("dns"), ["dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv",
                                             "--no-hosts", "--bind-interfaces", f"--listen-address={DNS}", "--port=53",
                                             "--address=/node.flow.test/198.18.7.7", f"--pid-file={d}/dnsmasq.pid",
                                             "--user=root", "--log-facility=-"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_listening(lab.ns("web"), [":8080"], "the web server")
    wait_listening(lab.ns("dns"), [f"{DNS}:53"], "dnsmasq")
    return s


def curl_sha256(lab, url):
    p = subprocess.run(["ip", "netns", "exec", lab.ns("cl"), "curl", "-sS", "-g", "--max-time", "20", "-o", "-", url],
                       capture_output=True, timeout=30)
    return hashlib.sha256(p.stdout).hexdigest() if p.returncode == 0 else f"curl exited {p.returncode}: {p.stderr.decode()}"


def route_mtu(lab, dst):
    out = sh(["ip", "route", "get", dst], ns=lab.ns("cl")).stdout
    words = out.split()
    return int(words[words.index("mtu") + 1]) if "mtu" in words else None


def node(gw, name):
    s, r = gw.api().call("GetNode", {"node_id": node_id(name)})
    return r if s == 200 else None


def arp_request(src_ip, target_ip, mac):
    arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, mac, bytes(map(int, src_ip.split("."))), b"\x00" * 6,
                      bytes(map(int, target_ip.split("."))))
    return (b"\xff" * 6 + mac + b"\x08\x06" + arp + b"\x00" * 18).hex()


def phase_cluster_traffic(lab, gw, services, metrics_port):
    cl = lab.ns("cl")
    cl_mac = bytes.fromhex(lab.mac(cl, "eth0").replace(":", ""))
    print(f"\n== floods for {FLOOD_S:.0f} s: the public port, the staked peer's forged address, a forged cluster address",
          flush=True)
    flood = lab.ns("flood")
    floods = {
        "public": lab.prog(flood, "udp-flood", "--to", f"{CL}:9000", "--pps", 1000, "--seconds", FLOOD_S),
        "forged-peer": lab.prog(flood, "spoof-flood", "--iface", "eth0", "--dst-mac", cl_mac.hex(), "--src", PEER,
                                "--to", f"{CL}:3569", "--kind", "udp", "--pps", 1500, "--seconds", FLOOD_S),
        "forged-cluster": lab.prog(flood, "spoof-flood", "--iface", "eth0", "--dst-mac", cl_mac.hex(), "--src", CL_SPOOFED,
                                   "--to", f"{CL}:3569", "--kind", "udp", "--pps", 300, "--seconds", FLOOD_S),
    }
    t_start = time.monotonic()
    time.sleep(0.5)

    print("\n== the cluster's own connections, while the floods run", flush=True)
    r = lab.prog(cl, "tcp-session", "--to", f"{PEER}:3569", "--chunks", 256).result()
    check(r.get("result") == "done" and r.get("digest_ok") is True,
          f"the cluster opens TCP to the staked peer's 3569: {r.get('bytes')} bytes, digest {r.get('digest_ok')} ({r.get('result')})")
    for url in (f"http://{WEB}:8080/blob", f"http://[{WEB6}]:8080/blob"):
        got = curl_sha256(lab, url)
        check(got == services["blob_sha256"], f"the cluster fetches 512 KiB from an unregistered web server: {url} ({got[:16]})")
    r = lab.prog(cl, "dns-query", "--server", f"{DNS}:53", "--name", "node.flow.test", "--count", 5).result()
    check(r["answered"] == 5 and r["addresses"] == ["198.18.7.7"],
          f"an outside resolver answers the cluster over UDP: {r['answered']} of 5 queries, {r['addresses']}")
    # The router's link-local address too: no prefix lists it, its replies come back.
    for dst in (PEER, WEB6, RTR, lab.link_local(lab.ns("rtr"), "eth0") + "%eth0"):
        r = lab.prog(cl, "ping", "--to", dst, "--count", 5).result()
        check(r["replies"] == 5, f"the cluster pings {dst}: {r['replies']} of 5 replies")

    print("\n== IPv6: a staked node reaches the cluster (neighbour discovery through the gateway)", flush=True)
    before = node(gw, "peer6")["counters"]
    r = lab.prog(lab.ns("peer6"), "tcp-session", "--to", f"[{CL6}]:3569", "--chunks", 128).result()
    check(r.get("result") == "done" and r.get("digest_ok") is True,
          f"staked peer6 connects to [{CL6}]:3569 over IPv6: {r.get('bytes')} bytes ({r.get('result')})")
    after = node(gw, "peer6")["counters"]
    verified = int(after.get("passed", 0)) - int(before.get("passed", 0))
    check(verified >= 64, f"peer6's IPv6 connection is verified and charged to its allowance ({verified} packets)")

    print("\n== path MTU discovery across the router's 1,280-byte link", flush=True)
    for dst, label in ((FAR, "IPv4"), (FAR6, "IPv6")):
        to = f"[{dst}]:3569" if ":" in dst else f"{dst}:3569"
        p = lab.prog(cl, "tcp-session", "--to", to, "--chunks", 64, "--chunk", 16384, "--deadline", 20)
        r = p.result(timeout=40)
        check(r.get("result") == "done" and r.get("digest_ok") is True,
              f"{label}: a 1 MiB upload to {dst} completes ({r.get('result')}, {r.get('t')} s)")
        mtu = route_mtu(lab, dst)
        check(mtu == 1280, f"{label}: the cluster learnt the path MTU to {dst} from the router's ICMP error ({mtu})")

    done = {k: p.result(timeout=FLOOD_S + 10) for k, p in floods.items()}
    check(time.monotonic() - t_start < FLOOD_S + 3, "all of it happened while the floods ran")
    m = metric_values(scrape(metrics_port))
    infra = m.get('stakegate_packets_total{direction="outside",role="infra",verdict="pass"}', 0)
    check(infra > 0, f"neighbour discovery and the ICMP errors passed as infrastructure ({infra:.0f} packets)")
    peer = node(gw, "peer")
    c = {k: int(v) for k, v in peer["counters"].items()}
    # Its request channel: 5 % of its rate (consensus 0.3 x 20,000 pps, the only consensus node).
    request_pps = 0.05 * 0.3 * CAPACITY
    sent = done["forged-peer"]["sent"]
    check(sent - request_pps * (FLOOD_S + 1) - 50 <= c["request_over_rate"] <= sent,
          f"the peer's forged datagrams only fill its request channel ({request_pps:.0f} pps): "
          f"{c['request_over_rate']} request_over_rate of {sent}")
    check(c.get("session_passed", 0) >= 5 and c.get("passed", 0) > 0,
          f"its answers to the cluster passed: {c.get('passed', 0)} on the verified connection, "
          f"{c.get('session_passed', 0)} ping replies in the sessions budget")
    for name in ("peer", "peer6"):
        n = node(gw, name)
        check(not n["graylisted"] and float(n.get("score", 0)) == 0,
              f"{name} answered the cluster and is not penalised (score {float(n.get('score', 0)):.1f})")
    cases = gw.api().call("ListEvidence")[1].get("cases", [])
    check(cases == [], f"no evidence case opened ({len(cases)})")
    spoofed = m.get('stakegate_drops_total{role="none",reason="spoofed"}', 0)
    check(spoofed == done["forged-cluster"]["sent"],
          f"every frame forging a cluster address is dropped as spoofed ({spoofed:.0f} of {done['forged-cluster']['sent']})")
    # From one cluster address to another: what the router would send back if it routed the
    # nodes' traffic to each other. Counted apart, and the log says what it may mean.
    internal = m.get("stakegate_spoofed_internal_total", 0)
    warned = [l for l in gw.log().splitlines() if "went from one cluster address to another" in l]
    check(internal == spoofed and len(warned) == 1 and "docs/deployment.md" in warned[0],
          f"those forge a cluster source to a cluster address: counted apart ({internal:.0f}), warned once: {warned[:1]}")
    return m


def router_advertisement(mac):
    """An IPv6 router advertisement from `mac` (bytes) to all nodes, router lifetime 0 (it
    installs no route)."""
    src = b"\xfe\x80" + b"\0" * 6 + mac[:3] + b"\xff\xfe" + mac[3:]
    dst = b"\xff\x02" + b"\0" * 13 + b"\x01"
    body = struct.pack("!BBHBBHII", 134, 0, 0, 64, 0, 0, 0, 0)
    pseudo = src + dst + struct.pack("!I3xB", len(body), 58) + body
    total = sum(struct.unpack(f"!{len(pseudo) // 2}H", pseudo))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    body = body[:2] + struct.pack("!H", ~total & 0xFFFF) + body[4:]
    ip6 = struct.pack("!IHBB", 6 << 28, len(body), 58, 255) + src + dst
    return (b"\x33\x33\0\0\0\x01" + mac + b"\x86\xdd" + ip6 + body).hex()


def phase_router_advertisements(lab):
    print("\n== RA guard (infra.ra_guard): router advertisements only from infra.neighbours", flush=True)
    tap = lab.prog(lab.ns("cl"), "tap", "--iface", "eth0", "--direction", "in")
    tap.wait_event("ready")
    macs = {}
    for name in ("rtr", "flood"):
        ns = lab.ns(name)
        macs[name] = lab.mac(ns, "eth0")
        lab.prog(ns, "raw-flood", "--iface", "eth0", "--frame", router_advertisement(bytes.fromhex(macs[name].replace(":", ""))),
                 "--seconds", 0.1, "--pps", 50).result()
    time.sleep(0.3)
    seen = tap.stop()["ra_from"]
    check(seen.get(macs["rtr"], 0) >= 4 and seen.get(macs["flood"], 0) == 0,
          f"the cluster got the listed router's advertisements, not another host's ({seen})")


def phase_non_ip(lab, gw, metrics_port, m_before):
    print("\n== non-IP floods: ARP requests (infra budget) and EtherType 0x88b5 (not allowed)", flush=True)
    flood = lab.ns("flood")
    mac = bytes.fromhex(lab.mac(flood, "eth0").replace(":", ""))
    tap = lab.prog(lab.ns("cl"), "tap", "--iface", "eth0", "--direction", "in")
    tap.wait_event("ready")
    other = (b"\xff" * 6 + mac + b"\x88\xb5" + b"\x00" * 46).hex()
    t0 = time.monotonic()
    arp = lab.prog(flood, "raw-flood", "--iface", "eth0", "--frame", arp_request(FLOOD, CL, mac), "--seconds", 2, "--pps", 3000)
    l2 = lab.prog(flood, "raw-flood", "--iface", "eth0", "--frame", other, "--seconds", 2, "--pps", 3000)
    # In the flood, the cluster forgets its router and resolves it again, over IPv4 and
    # IPv6: the budget is 15 times oversubscribed, but the answers to its own ARP request
    # and neighbour solicitation pass (one try each: 1.2 s is less than the kernel waits
    # before asking again).
    time.sleep(0.4)
    sh(["ip", "neigh", "flush", "dev", "eth0"], ns=lab.ns("cl"))
    pings = {dst: lab.prog(lab.ns("cl"), "ping", "--to", dst, "--count", 1, "--timeout", 1.2) for dst in (RTR, RTR6)}
    replies = {dst: p.result()["replies"] for dst, p in pings.items()}
    # The router is listed in infra.neighbours: its own request for the cluster's address
    # gets through the flood too (the web server's, on the shared budget, most likely not).
    probe = lab.prog(lab.ns("rtr"), "arp-probe", "--iface", "eth0", "--src", RTR, "--target", CL, "--timeout", 1).result()
    sent_arp, sent_l2 = arp.result()["sent"], l2.result()["sent"]
    dt = time.monotonic() - t0
    time.sleep(0.3)
    arrived = tap.stop()
    m = metric_values(scrape(metrics_port))

    def delta(key):
        return m.get(key, 0) - m_before.get(key, 0)
    denied = delta('stakegate_drops_total{role="l2",reason="l2_denied"}')
    check(denied == sent_l2, f"every 0x88b5 frame is dropped as l2_denied ({denied:.0f} of {sent_l2})")
    passed = delta('stakegate_packets_total{direction="outside",role="l2",verdict="pass"}')
    over = delta('stakegate_drops_total{role="l2",reason="infra_over_rate"}')
    bound = INFRA_PPS * dt + INFRA_PPS * INFRA_BURST_MS / 1000
    check(passed <= bound + 20 and over >= sent_arp - bound - 20,
          f"the ARP flood is held to the infra budget: {passed:.0f} passed (<= {INFRA_PPS} pps x {dt:.1f} s + burst, "
          f"with the hosts' own ARP and ND), {over:.0f} infra_over_rate of {sent_arp}")
    answers = delta("stakegate_neighbour_answers_total")
    check(replies == {RTR: 1, RTR6: 1} and answers >= 2,
          f"in the flood, the cluster resolved its router again and pinged it over IPv4 and IPv6 ({replies}): "
          f"the answers to its own requests passed ({answers:.0f})")
    listed = delta("stakegate_listed_neighbour_passes_total")
    check(probe["result"] == "reply" and 1 <= listed <= 20,
          f"the router, a listed neighbour, resolved the cluster in the flood ({probe['result']}; {listed:.0f} of its "
          f"frames on its own budget)")
    # ARP claiming a cluster address from the outside (what would point the nodes' entries
    # for each other at the flooder): spoofed, as an IP source of the cluster's is.
    before = metric_values(scrape(metrics_port)).get('stakegate_drops_total{role="none",reason="spoofed"}', 0)
    poison = lab.prog(flood, "raw-flood", "--iface", "eth0", "--frame", arp_request(CL_SPOOFED, CL, mac), "--seconds", 0.2,
                      "--pps", 500).result()["sent"]
    time.sleep(0.3)
    spoofed = metric_values(scrape(metrics_port)).get('stakegate_drops_total{role="none",reason="spoofed"}', 0) - before
    check(spoofed == poison > 0, f"every ARP frame claiming a cluster address is dropped as spoofed ({spoofed:.0f} of {poison})")
    # ARP claiming the router's address from another host (a request to the cluster that
    # tells it the router is at the flooder's MAC, which Linux takes): infra.neighbours lists
    # the router's addresses with its MAC, so spoofed, and the cluster's entry stays the
    # router's.
    cl, rtr_mac = lab.ns("cl"), lab.mac(lab.ns("rtr"), "eth0")
    lab.prog(cl, "ping", "--to", RTR, "--count", 1, "--timeout", 1).result()
    before = metric_values(scrape(metrics_port)).get("stakegate_neighbour_impostors_total", 0)
    claims = lab.prog(flood, "raw-flood", "--iface", "eth0", "--frame", arp_request(RTR, CL, mac), "--seconds", 0.2,
                      "--pps", 500).result()["sent"]
    time.sleep(0.3)
    impostors = metric_values(scrape(metrics_port)).get("stakegate_neighbour_impostors_total", 0) - before
    entry = sh(["ip", "neigh", "show", RTR, "dev", "eth0"], ns=cl).stdout.strip()
    check(impostors == claims > 0 and f"lladdr {rtr_mac}" in entry,
          f"every ARP frame claiming the router's address from another MAC is spoofed ({impostors:.0f} of {claims}); "
          f"the cluster's entry for the router is still the router's ({entry})")
    warned = [l for l in gw.log().splitlines() if "claimed an address of infra.neighbours" in l]
    check(len(warned) == 1, f"the log says so once: {warned[:1]}")
    check(arrived["non_ip"] <= bound + 40,
          f"the cluster received {arrived['non_ip']} non-IPv4 frames during the flood (ARP and IPv6 within the budget)")


def phase_routing(lab, gw, metrics_port):
    """The router speaks BGP and BFD with a node (infra.routing): its BGP connection to the
    node's port 179 with GTSM (TTL / hop limit 255) carries a digest-checked transfer over
    IPv4 and IPv6, and its BFD datagrams (UDP 3784, TTL 255) arrive. The same from the router
    at TTL 64 (what a packet forwarded from elsewhere, forging the router's address, could
    carry at most) and from another host of the link at TTL 255 reach nothing: port 179 and
    3784 are not public."""
    print("\n== the router's BGP and BFD (infra.routing): only what was sent on the link by the router", flush=True)
    cl, rtr, web = lab.ns("cl"), lab.ns("rtr"), lab.ns("web")
    before = metric_values(scrape(metrics_port)).get("stakegate_routing_passed_total", 0)
    servers = [lab.prog(cl, "tcp-server", "--bind", f"{CL}:179"), lab.prog(cl, "tcp-server", "--bind", f"[{CL6}]:179")]
    sink = lab.prog(cl, "udp-sink", "--bind", f"{CL}:3784")
    for p in (*servers, sink):
        p.wait_event("ready")
    try:
        def bgp(ns, to, ttl):
            return lab.prog(ns, "tcp-session", "--to", to, "--chunks", 32, "--chunk", 4096, "--ttl", ttl,
                            "--connect-timeout", 1.5, "--deadline", 10).result()
        gtsm = [bgp(rtr, f"{CL}:179", 255), bgp(rtr, f"[{CL6}]:179", 255)]
        check(all(r.get("result") == "done" and r.get("digest_ok") for r in gtsm),
              f"the router's BGP connections at TTL / hop limit 255 carry a digest-checked transfer: {gtsm}")
        refused = [bgp(rtr, f"{CL}:179", 64), bgp(rtr, f"[{CL6}]:179", 64), bgp(web, f"{CL}:179", 255)]
        check(all(r.get("result") == "connect_failed" for r in refused),
              f"at TTL 64 from the router, and at 255 from another host of the link, they do not connect: {refused}")
        for ttl in (255, 254):
            lab.prog(rtr, "udp-flood", "--to", f"{CL}:3784", "--pps", 50, "--seconds", 1, "--ttl", ttl).result()
            if ttl == 255:
                time.sleep(0.3)
                first = sink.stop()["by_source"].get(RTR, 0)
                sink = lab.prog(cl, "udp-sink", "--bind", f"{CL}:3784")
                sink.wait_event("ready")
        time.sleep(0.3)
        second = sink.stop()["by_source"].get(RTR, 0)
    finally:
        for p in servers:
            p.stop()
    passed = metric_values(scrape(metrics_port)).get("stakegate_routing_passed_total", 0) - before
    check(first >= 45 and second == 0 and passed >= first + 2 * 32,
          f"the router's BFD datagrams at TTL 255 arrive ({first} of 50), at 254 none ({second}); "
          f"stakegate_routing_passed_total +{passed:.0f}")
    # Past its budget (infra.routing_pps, 2,000 by default): dropped, counted, warned.
    flood = lab.prog(rtr, "udp-flood", "--to", f"{CL}:3784", "--pps", 6000, "--seconds", 1, "--ttl", 255).result()
    deadline = time.monotonic() + 3
    warned, over = [], 0
    while not warned and time.monotonic() < deadline:
        time.sleep(0.2)
        over = metric_values(scrape(metrics_port)).get("stakegate_routing_over_rate_total", 0)
        warned = [l for l in gw.log().splitlines() if "were dropped over infra.routing_pps" in l]
    check(over >= flood["sent"] - 2000 * 1.5 - 200 and len(warned) == 1,
          f"the router's BFD at {flood['sent']} datagrams a second: {over:.0f} dropped over infra.routing_pps, "
          f"counted and warned: {warned[:1]}")


def phase_ping(lab):
    """unregistered.icmp_echo: an outside host pings the cluster over IPv4 and IPv6 and gets
    its answers; a staked node, whose role lists only port 3569, does not."""
    print("\n== pings from the outside (unregistered.icmp_echo)", flush=True)
    def ping(ns, to):
        return lab.prog(lab.ns(ns), "ping", "--to", to, "--count", 5, "--interval", 0.1).result()["replies"]
    got = {"web": ping("web", CL), "web6": ping("web", CL6), "peer": ping("peer", CL)}
    check(got == {"web": 5, "web6": 5, "peer": 0},
          f"an unregistered host's pings are answered over IPv4 and IPv6, the consensus peer's not (port_denied): {got}")


def gro(lab):
    return {side: lab.offload(None, lab.root_link(side), "generic-receive-offload") for side in "oi"}


def phase_dhcp(lab, d, metrics_port):
    """A node without an address asks for one: its DISCOVER (from 0.0.0.0, broadcast) opens no
    session, yet the offer of a DHCP server on the outside link (dnsmasq) reaches it; and its
    DHCPv6 SOLICIT (from its link-local address to the servers' multicast group) gets that
    server's ADVERTISE, sent from the server's own link-local address."""
    before = metric_values(scrape(metrics_port)).get("stakegate_dhcp_answers_total", 0)
    server = lab.spawn(lab.ns("dns"), ["dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--port=0",
                                       "--no-resolv", "--no-hosts", "--interface=eth0", "--bind-interfaces",
                                       "--dhcp-range=198.18.0.200,198.18.0.210,255.255.255.0,2m",
                                       "--dhcp-range=2001:2::200,2001:2::210,64,2m", "--no-ping",
                                       "--dhcp-authoritative", f"--dhcp-leasefile={d}/dhcp.leases",
                                       f"--pid-file={d}/dhcp.pid", "--user=root", "--log-facility=-"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_listening(lab.ns("dns"), [":67", ":547"], "dnsmasq's DHCP server")
        r = lab.prog(lab.ns("cl"), "dhcp-discover", "--iface", "eth0", "--timeout", 4).result()
        r6 = lab.prog(lab.ns("cl"), "dhcp6-solicit", "--iface", "eth0", "--timeout", 4).result()
    finally:
        server.terminate()
        server.wait(timeout=10)
    answers = metric_values(scrape(metrics_port)).get("stakegate_dhcp_answers_total", 0) - before
    check(r.get("result") == "offer" and r.get("yiaddr", "").startswith("198.18.0.2")
          and r6.get("result") == "advertise" and r6.get("address", "").startswith("2001:2::2")
          and r6.get("server", "").startswith("fe80::") and answers >= 2,
          f"a node without an address gets dnsmasq's DHCP offer and DHCPv6 advertise through the gateway: {r}, {r6}, "
          f"stakegate_dhcp_answers_total +{answers:.0f}")


def phase_foreign_source(lab, gw, metrics_port):
    """A host of the inside sending from an address cluster.prefixes misses: its packets pass
    but open no session, so its resolver's answers are dropped; counted, and the log names
    the address."""
    print("\n== an inside address the cluster prefixes miss", flush=True)
    cl = lab.ns("cl")
    lab.address(cl, "eth0", f"{CL_FOREIGN}/24")
    r = lab.prog(cl, "dns-query", "--server", f"{DNS}:53", "--name", "node.flow.test", "--count", 2, "--timeout", 1,
                 "--source", CL_FOREIGN).result()
    foreign = metric_values(scrape(metrics_port)).get("stakegate_inside_foreign_total", 0)
    deadline = time.monotonic() + 3
    warned = []
    while not warned and time.monotonic() < deadline:
        warned = [l for l in gw.log().splitlines() if "had a source outside cluster.prefixes" in l]
        time.sleep(0.1)
    check(r["answered"] == 0 and foreign >= 2 and len(warned) == 1 and f"the last: {CL_FOREIGN}" in warned[0],
          f"queries from {CL_FOREIGN} (outside {PREFIXES[0]}) get no answer, counted ({foreign:.0f}) and warned: {warned[:1]}")
    st = gw.api().call("Status")[1].get("diagnostics", {})
    status = subprocess.run([STAKEGATECTL, "--socket", gw.socket, "status"], capture_output=True, text=True).stdout
    attention = [l for l in status.splitlines() if l.startswith("attention: ")]
    check(int(st.get("inside_foreign", 0)) == foreign and int(st.get("spoofed_internal", 0)) > 0
          and any("had a source outside cluster.prefixes" in l for l in attention)
          and any("from one cluster address to another" in l for l in attention)
          and any("claimed the router's listed address" in l for l in attention)
          and any("were dropped over infra.routing_pps" in l for l in attention) and len(attention) == 4,
          f"stakegatectl status draws attention to them, and to the earlier forged cluster flood, ARP poisoning "
          f"and routing flood: {attention}")
    sh(["ip", "addr", "del", f"{CL_FOREIGN}/24", "dev", "eth0"], ns=cl)


def phases(lab, d, gw, metrics_port):
    log = gw.log()
    check(gro(lab) == {"o": False, "i": False} and all(
        f"{lab.root_link(side)}: turned generic-receive-offload off while the gateway runs" in log for side in "oi"),
          f"GRO is off on both of the gateway's links while it runs, and the log says so: {gro(lab)}")
    mtu_warnings = [l for l in log.splitlines() if "but net_af_packet's ring frames (framesz=2048) hold frames" in l]
    check(len(mtu_warnings) == 1 and f"{lab.root_link('o')}: MTU 2000" in mtu_warnings[0] and "framesz and blocksz of at "
          "least 4096" in mtu_warnings[0], f"the outside link's MTU 2000 is warned about, the inside's 1500 not: {mtu_warnings}")
    services = start_services(lab, d)
    m = phase_cluster_traffic(lab, gw, services, metrics_port)
    phase_non_ip(lab, gw, metrics_port, m)
    phase_router_advertisements(lab)
    phase_routing(lab, gw, metrics_port)
    phase_ping(lab)
    phase_dhcp(lab, d, metrics_port)
    phase_foreign_source(lab, gw, metrics_port)


def after(lab, d, log):
    check(gro(lab) == {"o": True, "i": True} and log.count("receive offloads turned back on") == 2,
          f"the gateway stopped: GRO is on again on both links ({gro(lab)})")
    # Killed, it cannot turn GRO back on; the next run knows from state_dir that it was on
    # before, and turns it on when it stops.
    cfg, sock = os.path.join(d, "stakegate.yaml"), os.path.join(d, "control.sock")
    markers = lambda: sorted(f for f in os.listdir(os.path.join(d, "state")) if f.startswith("offloads-"))
    gw = Gateway(cfg, sock)
    check(markers() == sorted(f"offloads-{lab.root_link(s)}" for s in "oi"),
          f"while it runs, state_dir notes the links whose offloads it turned off ({markers()})")
    gw.proc.kill()
    gw.proc.wait()
    check(gro(lab) == {"o": False, "i": False}, f"killed (SIGKILL), the gateway left GRO off ({gro(lab)})")
    gw = Gateway(cfg, sock)
    rc, _, err = gw.stop()
    check(rc == 0 and gro(lab) == {"o": True, "i": True} and err.count("a previous run turned generic-receive-offload off")
          == 2 and markers() == [],
          f"the next run, stopped, turned GRO back on on both links and removed its notes ({gro(lab)}, {markers()})")


if __name__ == "__main__":
    run_inline(build_topology, write_config, phases, after)
