#!/usr/bin/env python3
"""Small traffic programs for the namespace end-to-end test (tests/integration/test_netns.py).

Each subcommand runs inside one of the test's network namespaces (`ip netns exec NS
python3 netprog.py ...`). They use nothing but the standard library, print one JSON
object per line on stdout (events, then a final result), and stop by themselves.

  tap        count the frames an interface receives (or sends), by IPv4 source
  udp-sink   count UDP datagrams by source address
  udp-flood  send UDP datagrams at a fixed rate for a fixed time
  tcp-server accept sessions: acknowledge every byte received, answer the digest at EOF
  tcp-session a session with the server above: timed chunks, progress and a digest check
  tcp-bulk   send as fast as TCP lets it for a fixed time (an attacker's stream)
  arp-probe  one ARP request on a raw socket; the reply's sender MAC
  raw-flood  one frame on a raw socket, as fast as the socket takes it (or at --pps), for a fixed time
  spoof-flood forged IPv4 UDP, SYN or ACK frames carrying someone else's source address
              (or ever new ones of a prefix)
  own-flood  a real TCP connection, then copies of its own data segment at a fixed rate
  dns-query  DNS A queries to a resolver, each from a new socket (a new ephemeral port)
  ping       ICMP or ICMPv6 echo requests; counts the replies
  dhcp-discover a DHCP DISCOVER from 0.0.0.0 on a raw socket (retried each second); the offer
  dhcp6-solicit a DHCPv6 SOLICIT from the link-local address (retried each second); the advertise
  impair     relay frames between two interfaces, losing, duplicating and reordering some (a bad path)
"""
import argparse
import hashlib
import ipaddress
import json
import os
import select
import signal
import socket
import struct
import sys
import threading
import time

ETH_P_ALL = 0x0003
ETH_P_ARP = 0x0806
PACKET_OUTGOING = 4
SOL_PACKET = 263
PACKET_STATISTICS = 6
FINAL_MARK = 0xFFFFFFFFFFFFFFFF


def emit(obj):
    print(json.dumps(obj), flush=True)


def addr(text):
    """`host:port` or `[v6]:port` -> (host, port)."""
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


def set_ttl(s, fam, ttl):
    """Sends with this TTL (IPv6: hop limit) from now on; None leaves the system's."""
    if ttl is not None:
        if fam == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, ttl)
        else:
            s.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)


def connect(to, timeout, t0=None, ttl=None):
    """A TCP socket connected to `to`, or None after reporting connect_failed (with the
    time since t0 when given)."""
    s = socket.socket(family(to))
    set_ttl(s, family(to), ttl)
    s.settimeout(timeout)
    try:
        s.connect(addr(to))
        return s
    except OSError as e:
        s.close()
        emit({"result": "connect_failed", "error": type(e).__name__,
              **({"t": time.monotonic() - t0} if t0 is not None else {})})
        return None


def family(text):
    return socket.AF_INET6 if ":" in addr(text)[0] else socket.AF_INET


class Stop:
    """SIGTERM/SIGINT set a flag; loops poll it, then print their result."""
    def __init__(self):
        self.flag = False
        signal.signal(signal.SIGTERM, self._set)
        signal.signal(signal.SIGINT, self._set)

    def _set(self, *_):
        self.flag = True


def cmd_tap(a):
    stop = Stop()
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.setsockopt(socket.SOL_SOCKET, 33, 16 << 20)  # SO_RCVBUFFORCE (root): no drops at test rates
    s.bind((a.iface, 0))
    s.settimeout(0.1)
    want_out = a.direction == "out"
    by_src, non_ip, ra_from = {}, 0, {}
    emit({"event": "ready"})
    while not stop.flag:
        try:
            frame, meta = s.recvfrom(64)
        except socket.timeout:
            continue
        except InterruptedError:
            continue
        if (meta[2] == PACKET_OUTGOING) != want_out:
            continue
        if len(frame) >= 34 and frame[12:14] == b"\x08\x00":
            src = socket.inet_ntoa(frame[26:30])
            by_src[src] = by_src.get(src, 0) + 1
        else:
            non_ip += 1
            # IPv6 router advertisements (no extension headers), by source MAC.
            if len(frame) >= 55 and frame[12:14] == b"\x86\xdd" and frame[20] == 58 and frame[54] == 134:
                mac = frame[6:12].hex(":")
                ra_from[mac] = ra_from.get(mac, 0) + 1
    stats = s.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8)
    _, drops = struct.unpack("II", stats)
    emit({"by_source": by_src, "non_ip": non_ip, "ra_from": ra_from, "socket_drops": drops})


def cmd_udp_sink(a):
    stop = Stop()
    s = socket.socket(family(a.bind), socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, 33, 16 << 20)
    s.bind(addr(a.bind))
    s.settimeout(0.1)
    by_src = {}
    emit({"event": "ready"})
    while not stop.flag:
        try:
            _, (src, _) = s.recvfrom(2048)
        except (socket.timeout, InterruptedError):
            continue
        by_src[src] = by_src.get(src, 0) + 1
    emit({"by_source": by_src})


def cmd_udp_flood(a):
    s = socket.socket(family(a.to), socket.SOCK_DGRAM)
    set_ttl(s, family(a.to), a.ttl)
    payload = b"\xa5" * a.size
    dst = addr(a.to)
    start = time.monotonic()
    sent = errors = 0
    while True:
        now = time.monotonic() - start
        if now >= a.seconds:
            break
        due = int(now * a.pps) + 1
        while sent + errors < due:
            try:
                s.sendto(payload, dst)
                sent += 1
            except OSError:  # a full socket buffer or a missing neighbour: counted, not fatal
                errors += 1
        time.sleep(0.0005)
    emit({"sent": sent, "errors": errors, "seconds": time.monotonic() - start})


def paced_send(sock, frames, pps, seconds):
    """Sends frames(i) for i = 0, 1, ... at `pps` (0: as fast as the socket takes them)."""
    start = time.monotonic()
    sent = errors = 0
    while True:
        now = time.monotonic() - start
        if now >= seconds:
            break
        due = int(now * pps) + 1 if pps else sent + errors + 256
        while sent + errors < due:
            try:
                sock.send(frames(sent + errors))
                sent += 1
            except OSError:  # a full device queue: counted, not fatal
                errors += 1
        if pps:
            time.sleep(0.0005)
    return {"sent": sent, "errors": errors, "seconds": time.monotonic() - start}


def cmd_raw_flood(a):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((a.iface, 0))
    frame = bytes.fromhex(a.frame)
    emit(paced_send(s, lambda i: frame, a.pps, a.seconds))


def cmd_spoof_flood(a):
    """What a host that does not own --src sends with it: it never sees the answers."""
    import random
    from flows import tcp, udp, SYN, ACK
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((a.iface, 0))
    macs = {"src_mac": s.getsockname()[4], "dst_mac": bytes.fromhex(a.dst_mac.replace(":", ""))}
    host, port = addr(a.to)
    rng = random.Random(a.seed)
    net = ipaddress.ip_network(a.src, strict=False)

    def frames(i):
        # One address, or (a prefix) a new one of it per frame: a flood of ever new sources.
        src = a.src if "/" not in a.src else str(net[rng.randrange(1, net.num_addresses - 1)])
        sport = a.sport or rng.randrange(1024, 65536)
        if a.kind == "udp":
            return udp(src, host, sport, port, b"\xa5" * 32, ttl=a.ttl, **macs)
        flags = SYN if a.kind == "syn" else ACK
        return tcp(src, host, sport, port, rng.getrandbits(32), rng.getrandbits(32) if flags == ACK else 0, flags,
                   b"\x66" * (32 if flags == ACK else 0), ttl=a.ttl, **macs)
    emit(paced_send(s, frames, a.pps, a.seconds))


def cmd_own_flood(a):
    """Opens a real connection, sends one data segment, and sends copies of that segment
    (in window: its own connection's sequence numbers) at --pps: a node that floods the
    cluster over a connection it really holds."""
    cap = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    cap.bind((a.iface, 0))
    cap.settimeout(0.2)
    c = connect(a.to, 3)
    if not c:
        return
    sport = c.getsockname()[1]
    c.sendall(b"\x77" * 512)
    seg, deadline = None, time.monotonic() + 3
    while seg is None and time.monotonic() < deadline:
        try:
            frame, meta = cap.recvfrom(2048)
        except socket.timeout:
            continue
        if meta[2] != PACKET_OUTGOING or frame[12:14] != b"\x08\x00" or frame[23] != 6:
            continue
        ihl = (frame[14] & 0x0F) * 4
        tcp_at = 14 + ihl
        src_port, dst_port = struct.unpack("!HH", frame[tcp_at:tcp_at + 4])
        total = struct.unpack("!H", frame[16:18])[0]
        if src_port == sport and 14 + total - tcp_at - (frame[tcp_at + 12] >> 4) * 4 > 0:
            seg = frame
    if seg is None:
        emit({"result": "no_segment"})
        return
    emit({"event": "flooding", "sport": sport})
    raw = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    raw.bind((a.iface, 0))
    r = paced_send(raw, lambda i: seg, a.pps, a.seconds)
    c.close()
    emit({"result": "done", "sport": sport, **r})


def dns_name(name):
    return b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\x00"


def cmd_dns_query(a):
    """A queries for --name, one socket (one ephemeral port) per query."""
    host, port = addr(a.server)
    answered, addresses = 0, set()
    for i in range(a.count):
        s = socket.socket(family(a.server), socket.SOCK_DGRAM)
        s.settimeout(a.timeout)
        if a.source:
            s.bind((a.source, 0))
        qid = (os.getpid() + i) & 0xFFFF
        s.sendto(struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + dns_name(a.name) + struct.pack("!HH", 1, 1),
                 (host, port))
        try:
            data, _ = s.recvfrom(2048)
        except (socket.timeout, OSError):
            s.close()
            continue
        s.close()
        rid, flags, _, ancount = struct.unpack("!HHHH", data[:8])
        if rid != qid or ancount == 0:
            continue
        answered += 1
        # The answer's last four bytes are the address of the (one) A record.
        addresses.add(socket.inet_ntoa(data[-4:]))
    emit({"queries": a.count, "answered": answered, "addresses": sorted(addresses)})


def cmd_ping(a):
    v6 = ":" in a.to
    s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_RAW,
                      socket.IPPROTO_ICMPV6 if v6 else socket.IPPROTO_ICMP)
    ident = os.getpid() & 0xFFFF
    replies = 0
    for seq in range(a.count):
        body = struct.pack("!HH", ident, seq) + b"\x42" * a.size
        if v6:
            pkt = struct.pack("!BBH", 128, 0, 0) + body  # the kernel fills in an ICMPv6 checksum
        else:
            from flows import checksum
            pkt = struct.pack("!BBH", 8, 0, 0) + body
            pkt = pkt[:2] + struct.pack("!H", checksum(pkt)) + pkt[4:]
        s.sendto(pkt, (a.to, 0))
        deadline = time.monotonic() + a.timeout
        while time.monotonic() < deadline:
            r, _, _ = select.select([s], [], [], max(0, deadline - time.monotonic()))
            if not r:
                break
            data = s.recv(65536)
            icmp = data if v6 else data[(data[0] & 0x0F) * 4:]
            if icmp[0] == (129 if v6 else 0) and struct.unpack("!HH", icmp[4:8]) == (ident, seq):
                replies += 1
                break
        time.sleep(a.interval)
    emit({"sent": a.count, "replies": replies})


def serve_session(conn):
    h = hashlib.sha256()
    total = 0
    try:
        while True:
            data = conn.recv(65536)
            if not data:
                break
            h.update(data)
            total += len(data)
            conn.sendall(struct.pack("!Q", total))
        conn.sendall(struct.pack("!Q", FINAL_MARK) + h.digest())
    except OSError:
        pass
    finally:
        conn.close()


def cmd_tcp_server(a):
    stop = Stop()
    ls = socket.socket(family(a.bind))
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(addr(a.bind))
    ls.listen(64)
    ls.settimeout(0.1)
    emit({"event": "ready"})
    sessions = 0
    while not stop.flag:
        try:
            conn, _ = ls.accept()
        except (socket.timeout, InterruptedError):
            continue
        sessions += 1
        threading.Thread(target=serve_session, args=(conn,), daemon=True).start()
    emit({"sessions": sessions})


def cmd_tcp_session(a):
    """Sends `chunks` chunks of `chunk` bytes, `interval` seconds apart; reports what the
    server acknowledged as it goes, and whether the server's digest matches at the end."""
    t0 = time.monotonic()
    s = connect(a.to, a.connect_timeout, t0, a.ttl)
    if not s:
        return
    emit({"event": "connected", "t": time.monotonic() - t0})
    s.settimeout(None)
    h = hashlib.sha256()
    result = {}

    def reader():
        buf = b""
        s.settimeout(a.deadline)
        try:
            while True:
                data = s.recv(4096)
                if not data:
                    result["result"] = "closed_early"
                    return
                buf += data
                while len(buf) >= 8:
                    (value,) = struct.unpack("!Q", buf[:8])
                    if value == FINAL_MARK:
                        if len(buf) < 40:
                            break
                        result["result"] = "done"
                        result["digest_ok"] = buf[8:40] == h.digest()
                        return
                    buf = buf[8:]
                    emit({"acked": value, "t": round(time.monotonic() - t0, 4)})
        except OSError as e:
            result["result"] = "error"
            result["error"] = type(e).__name__

    rt = threading.Thread(target=reader, daemon=True)
    rt.start()
    rng = 0x9E3779B97F4A7C15
    for i in range(a.chunks):
        rng = (rng * 6364136223846793005 + 1442695040888963407) & (2**64 - 1)
        chunk = rng.to_bytes(8, "little") * (a.chunk // 8)
        h.update(chunk)
        s.sendall(chunk)
        if a.interval:
            time.sleep(a.interval)
    s.shutdown(socket.SHUT_WR)
    rt.join(a.deadline)
    result.setdefault("result", "timeout")
    result["bytes"] = a.chunks * (a.chunk // 8) * 8
    result["t"] = round(time.monotonic() - t0, 4)
    emit(result)


def cmd_tcp_bulk(a):
    t0 = time.monotonic()
    s = connect(a.to, 2)
    if not s:
        return
    s.setblocking(False)
    block = b"\x5a" * 65536
    sent = 0
    while time.monotonic() - t0 < a.seconds:
        _, w, _ = select.select([], [s], [], 0.05)
        if w:
            try:
                sent += s.send(block)
            except (BlockingIOError, OSError):
                pass
    s.close()
    emit({"result": "done", "bytes": sent})


def cmd_arp_probe(a):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP))
    s.bind((a.iface, ETH_P_ARP))
    mac = s.getsockname()[4]
    sip, tip = socket.inet_aton(a.src), socket.inet_aton(a.target)
    arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, mac, sip, b"\x00" * 6, tip)
    s.send(b"\xff" * 6 + mac + struct.pack("!H", ETH_P_ARP) + arp)
    deadline = time.monotonic() + a.timeout
    while time.monotonic() < deadline:
        r, _, _ = select.select([s], [], [], deadline - time.monotonic())
        if not r:
            break
        frame = s.recv(128)
        if len(frame) < 42:
            continue
        op, sha, spa = struct.unpack("!H6s4s", frame[20:32])
        if op == 2 and spa == tip:
            emit({"result": "reply", "mac": sha.hex(":")})
            return
    emit({"result": "no_reply"})


def ip_checksum(hdr):
    total = sum(struct.unpack(f"!{len(hdr) // 2}H", hdr))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def cmd_dhcp_discover(a):
    """What a host without an address sends first: a broadcast DISCOVER from 0.0.0.0:68
    (UDP checksum 0, as clients may send it). Waits for an OFFER with its transaction ID."""
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
    s.bind((a.iface, 0x0800))
    mac = s.getsockname()[4]
    xid = int.from_bytes(os.urandom(4), "big")
    bootp = struct.pack("!BBBBIHHIIII16s64s128sI", 1, 1, 6, 0, xid, 0, 0x8000, 0, 0, 0, 0, mac, b"", b"", 0x63825363)
    bootp += bytes([53, 1, 1, 55, 2, 1, 3, 255])
    udp = struct.pack("!HHHH", 68, 67, 8 + len(bootp), 0) + bootp
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, b"\0" * 4, b"\xff" * 4)
    ip = ip[:10] + struct.pack("!H", ip_checksum(ip)) + ip[12:]
    frame = b"\xff" * 6 + mac + b"\x08\x00" + ip + udp
    deadline, sent, next_send = time.monotonic() + a.timeout, 0, 0.0
    while time.monotonic() < deadline:
        if time.monotonic() >= next_send:
            s.send(frame)
            sent += 1
            next_send = time.monotonic() + 1.0
        r, _, _ = select.select([s], [], [], max(0.0, min(deadline, next_send) - time.monotonic()))
        if not r:
            continue
        f = s.recv(2048)
        if len(f) < 14 + 20 + 8 + 240 or f[23] != 17:
            continue
        ihl = (f[14] & 0x0F) * 4
        u = 14 + ihl
        sport, dport = struct.unpack("!HH", f[u:u + 4])
        b = f[u + 8:]
        if sport != 67 or dport != 68 or len(b) < 240 or b[0] != 2 or struct.unpack("!I", b[4:8])[0] != xid:
            continue
        emit({"result": "offer", "yiaddr": socket.inet_ntoa(b[16:20]), "server": socket.inet_ntoa(f[26:30]),
              "discovers": sent})
        return
    emit({"result": "no_offer", "discovers": sent})


def dhcp6_options(data):
    """DHCPv6 options (RFC 8415 section 21) as [(code, body)]."""
    out, i = [], 0
    while i + 4 <= len(data):
        code, n = struct.unpack("!HH", data[i:i + 4])
        out.append((code, data[i + 4:i + 4 + n]))
        i += 4 + n
    return out


def cmd_dhcp6_solicit(a):
    """What a DHCPv6 client sends first: a SOLICIT from its link-local address, port 546, to
    All_DHCP_Relay_Agents_and_Servers (ff02::1:2) port 547, with its DUID and an IA_NA.
    Waits for an ADVERTISE with its transaction ID and reads the address it offers."""
    idx = socket.if_nametoindex(a.iface)
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, idx)
    s.bind(("::", 546, 0, 0))
    with open(f"/sys/class/net/{a.iface}/address") as f:
        mac = bytes.fromhex(f.read().strip().replace(":", ""))
    duid = struct.pack("!HH", 3, 1) + mac  # DUID-LL, Ethernet
    xid = os.urandom(3)
    options = (struct.pack("!HH", 1, len(duid)) + duid + struct.pack("!HHH", 8, 2, 0)
               + struct.pack("!HHIII", 3, 12, 1, 0, 0))
    msg = b"\x01" + xid + options
    deadline, sent, next_send = time.monotonic() + a.timeout, 0, 0.0
    while time.monotonic() < deadline:
        if time.monotonic() >= next_send:
            s.sendto(msg, ("ff02::1:2", 547, 0, idx))
            sent += 1
            next_send = time.monotonic() + 1.0
        r, _, _ = select.select([s], [], [], max(0.0, min(deadline, next_send) - time.monotonic()))
        if not r:
            continue
        data, peer = s.recvfrom(4096)
        if len(data) < 4 or data[0] != 2 or data[1:4] != xid:
            continue
        offered = ""
        for code, body in dhcp6_options(data[4:]):
            if code == 3 and len(body) >= 12:  # IA_NA: IAID, T1, T2, then its options
                for sub, addr in dhcp6_options(body[12:]):
                    if sub == 5 and len(addr) >= 16:  # IAADDR
                        offered = socket.inet_ntop(socket.AF_INET6, addr[:16])
        emit({"result": "advertise", "address": offered, "server": peer[0], "solicits": sent})
        return
    emit({"result": "no_advertise", "solicits": sent})


def cmd_impair(a):
    """Both directions between two interfaces, each frame lost with probability --loss,
    else held back behind the next frame with --reorder (sent alone after 20 ms idle),
    and sent twice with --dup. Until SIGTERM; then the counts."""
    import random
    stop = Stop()
    rnd = random.Random(a.seed)
    socks = []
    for ifname in (a.a, a.b):
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        s.setsockopt(socket.SOL_SOCKET, 33, 16 << 20)  # SO_RCVBUFFORCE
        s.bind((ifname, 0))
        s.setblocking(False)
        socks.append(s)
    other = {socks[0]: socks[1], socks[1]: socks[0]}
    held = {socks[0]: None, socks[1]: None}  # per direction, the frame held back
    n = {"forwarded": 0, "lost": 0, "duplicated": 0, "reordered": 0}
    emit({"event": "ready"})
    while not stop.flag:
        try:
            ready, _, _ = select.select(socks, [], [], 0.02)
        except InterruptedError:
            continue
        if not ready:
            for s in socks:
                if held[s] is not None:
                    other[s].send(held[s])
                    held[s] = None
            continue
        for s in ready:
            while True:
                try:
                    frame, meta = s.recvfrom(65535)
                except (BlockingIOError, InterruptedError):
                    break
                if meta[2] == PACKET_OUTGOING:
                    continue
                if rnd.random() < a.loss:
                    n["lost"] += 1
                    continue
                if held[s] is None and rnd.random() < a.reorder:
                    held[s] = frame
                    n["reordered"] += 1
                    continue
                other[s].send(frame)
                n["forwarded"] += 1
                if rnd.random() < a.dup:
                    other[s].send(frame)
                    n["duplicated"] += 1
                if held[s] is not None:
                    other[s].send(held[s])
                    held[s] = None
    emit(n)


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("tap")
    t.add_argument("--iface", required=True)
    t.add_argument("--direction", choices=["in", "out"], default="in")
    t = sub.add_parser("udp-sink")
    t.add_argument("--bind", required=True)
    t = sub.add_parser("udp-flood")
    t.add_argument("--to", required=True)
    t.add_argument("--pps", type=float, required=True)
    t.add_argument("--seconds", type=float, required=True)
    t.add_argument("--size", type=int, default=64)
    t.add_argument("--ttl", type=int, help="the TTL (hop limit) to send with (default: the system's)")
    t = sub.add_parser("tcp-server")
    t.add_argument("--bind", required=True)
    t = sub.add_parser("tcp-session")
    t.add_argument("--to", required=True)
    t.add_argument("--chunks", type=int, default=64)
    t.add_argument("--chunk", type=int, default=1024)
    t.add_argument("--interval", type=float, default=0.0)
    t.add_argument("--connect-timeout", type=float, default=2.0)
    t.add_argument("--deadline", type=float, default=20.0)
    t.add_argument("--ttl", type=int, help="the TTL (hop limit) to send with (default: the system's)")
    t = sub.add_parser("tcp-bulk")
    t.add_argument("--to", required=True)
    t.add_argument("--seconds", type=float, required=True)
    t = sub.add_parser("arp-probe")
    t.add_argument("--iface", required=True)
    t.add_argument("--src", required=True)
    t.add_argument("--target", required=True)
    t.add_argument("--timeout", type=float, default=2.0)
    t = sub.add_parser("raw-flood")
    t.add_argument("--iface", required=True)
    t.add_argument("--frame", required=True, help="the frame, in hex")
    t.add_argument("--seconds", type=float, required=True)
    t.add_argument("--pps", type=float, default=0)
    t = sub.add_parser("spoof-flood")
    t.add_argument("--iface", required=True)
    t.add_argument("--dst-mac", required=True)
    t.add_argument("--src", required=True, help="the forged source address, or a prefix to pick a new one from per frame")
    t.add_argument("--to", required=True)
    t.add_argument("--kind", choices=["udp", "syn", "ack"], required=True)
    t.add_argument("--sport", type=int, default=0, help="a fixed source port (default: random per frame)")
    t.add_argument("--pps", type=float, required=True)
    t.add_argument("--seconds", type=float, required=True)
    t.add_argument("--seed", type=int, default=1)
    t.add_argument("--ttl", type=int, default=64, help="the TTL (hop limit) the frames carry: a spoofer's distance")
    t = sub.add_parser("own-flood")
    t.add_argument("--iface", required=True)
    t.add_argument("--to", required=True)
    t.add_argument("--pps", type=float, required=True)
    t.add_argument("--seconds", type=float, required=True)
    t = sub.add_parser("dns-query")
    t.add_argument("--server", required=True)
    t.add_argument("--name", required=True)
    t.add_argument("--count", type=int, default=3)
    t.add_argument("--timeout", type=float, default=2.0)
    t.add_argument("--source", help="send from this local address")
    t = sub.add_parser("ping")
    t.add_argument("--to", required=True)
    t.add_argument("--count", type=int, default=3)
    t.add_argument("--size", type=int, default=56)
    t.add_argument("--timeout", type=float, default=1.0)
    t.add_argument("--interval", type=float, default=0.0, help="seconds between one answer (or timeout) and the next")
    t = sub.add_parser("dhcp-discover")
    t.add_argument("--iface", required=True)
    t.add_argument("--timeout", type=float, default=4.0)
    t = sub.add_parser("dhcp6-solicit")
    t.add_argument("--iface", required=True)
    t.add_argument("--timeout", type=float, default=4.0)
    t = sub.add_parser("impair")
    t.add_argument("--a", required=True)
    t.add_argument("--b", required=True)
    t.add_argument("--loss", type=float, default=0.0)
    t.add_argument("--dup", type=float, default=0.0)
    t.add_argument("--reorder", type=float, default=0.0)
    t.add_argument("--seed", type=int, default=1)
    a = p.parse_args()
    {"tap": cmd_tap, "udp-sink": cmd_udp_sink, "udp-flood": cmd_udp_flood, "tcp-server": cmd_tcp_server,
     "tcp-session": cmd_tcp_session, "tcp-bulk": cmd_tcp_bulk, "arp-probe": cmd_arp_probe,
     "raw-flood": cmd_raw_flood, "spoof-flood": cmd_spoof_flood, "own-flood": cmd_own_flood,
     "dns-query": cmd_dns_query, "ping": cmd_ping, "dhcp-discover": cmd_dhcp_discover,
     "dhcp6-solicit": cmd_dhcp6_solicit, "impair": cmd_impair}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
