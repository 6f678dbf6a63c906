"""Frames of whole conversations for captures the tests write (built here with struct,
independently of the C++ packet builder): TCP connections between a remote host and a
cluster address with real sequence numbers, UDP datagrams, ICMP errors. Addresses are
dotted IPv4 or IPv6 text."""
import ipaddress
import struct

SRC_MAC = b"\x02\x00\x00\x00\x00\x01"
DST_MAC = b"\x02\x00\x00\x00\x00\x02"


def checksum(data):
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _l4_with_checksum(s, d, proto, l4):
    """`l4` with its checksum filled in (TCP, UDP, ICMPv6 over the pseudo-header; ICMP over itself)."""
    offset = {6: 16, 17: 6, 1: 2, 58: 2}.get(proto)
    if offset is None or len(l4) < offset + 2:
        return l4
    l4 = l4[:offset] + b"\x00\x00" + l4[offset + 2:]
    if proto == 1:
        pseudo = b""
    elif s.version == 4:
        pseudo = s.packed + d.packed + struct.pack("!BBH", 0, proto, len(l4))
    else:
        pseudo = s.packed + d.packed + struct.pack("!IxxxB", len(l4), proto)
    c = checksum(pseudo + l4)
    if proto == 17 and c == 0:
        c = 0xFFFF
    return l4[:offset] + struct.pack("!H", c) + l4[offset + 2:]


def _ip(src, dst, proto, payload, ttl=64, ident=0):
    s, d = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    payload = _l4_with_checksum(s, d, proto, payload)
    if s.version == 4:
        hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, 0x4000, ttl, proto, 0, s.packed, d.packed)
        hdr = hdr[:10] + struct.pack("!H", checksum(hdr)) + hdr[12:]
        return b"\x08\x00", hdr + payload
    hdr = struct.pack("!IHBB16s16s", 6 << 28, len(payload), proto, ttl, s.packed, d.packed)
    return b"\x86\xdd", hdr + payload


def frame(src, dst, proto, l4, ttl=64, pad_to=60, src_mac=SRC_MAC, dst_mac=DST_MAC):
    """An Ethernet frame (padded at layer 2 to `pad_to` bytes, as a NIC pads) with valid
    IPv4 header and L4 checksums."""
    ethertype, packet = _ip(src, dst, proto, l4, ttl)
    f = dst_mac + src_mac + ethertype + packet
    return f + b"\x00" * max(0, pad_to - len(f))


def udp(src, dst, sport, dport, payload=b"\x00" * 18, **kw):
    return frame(src, dst, 17, struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload, **kw)


def tcp(src, dst, sport, dport, seq, ack, flags, payload=b"", window=65535, wscale=None, **kw):
    opts = b"" if wscale is None else bytes([3, 3, wscale, 0])
    hdr = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xffffffff, ack & 0xffffffff, (5 + len(opts) // 4) << 4, flags,
                      window, 0, 0) + opts
    return frame(src, dst, 6, hdr + payload, **kw)


FIN, SYN, RST, ACK = 0x01, 0x02, 0x04, 0x10


class TcpConn:
    """One connection: `remote` dials `local` (the cluster) on `lport`, or the other way
    round. Each method returns the next frame and advances the sequence numbers."""

    def __init__(self, remote, local, rport=40000, lport=3569, rseq=1000, lseq=7_000_000):
        self.remote, self.local, self.rport, self.lport = remote, local, rport, lport
        self.rseq, self.lseq = rseq, lseq

    def remote_syn(self):
        f = tcp(self.remote, self.local, self.rport, self.lport, self.rseq, 0, SYN, wscale=7)
        self.rseq += 1
        return f

    def local_syn_ack(self):
        f = tcp(self.local, self.remote, self.lport, self.rport, self.lseq, self.rseq, SYN | ACK, wscale=7)
        self.lseq += 1
        return f

    def local_syn(self):
        f = tcp(self.local, self.remote, self.lport, self.rport, self.lseq, 0, SYN, wscale=7)
        self.lseq += 1
        return f

    def remote_syn_ack(self):
        f = tcp(self.remote, self.local, self.rport, self.lport, self.rseq, self.lseq, SYN | ACK, wscale=7)
        self.rseq += 1
        return f

    def remote_data(self, size=26, flags=ACK):
        f = tcp(self.remote, self.local, self.rport, self.lport, self.rseq, self.lseq, flags, b"\x5a" * size)
        self.rseq += size + (1 if flags & FIN else 0)
        return f

    def local_ack(self):
        return tcp(self.local, self.remote, self.lport, self.rport, self.lseq, self.rseq, ACK)

    def forged(self, seq, ack, flags=ACK, size=26):
        """What a blind spoofer sends on this 4-tuple: guessed sequence numbers."""
        return tcp(self.remote, self.local, self.rport, self.lport, seq, ack, flags, b"\x66" * size)

    def accept(self):
        """The remote dials in: its SYN, the cluster's SYN-ACK (inside), its first ACK."""
        return [("outside", self.remote_syn()), ("inside", self.local_syn_ack()), ("outside", self.remote_data())]
