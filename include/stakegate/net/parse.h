#pragma once
// Frame parser for the data path: Ethernet, up to four 802.1Q/802.1ad tags, IPv4 with
// options, IPv6 with extension headers, TCP, UDP, ICMP and ICMPv6. It reads only bytes
// inside the frame, never allocates and reports a hostile or truncated header as
// `malformed`. Besides what classification needs (source, destination, ports), it keeps
// what sessions need (TCP flags, sequence numbers, window, payload length, ICMP type and
// identifier) and what evidence reports (TTL or hop limit).
#include <algorithm>
#include <cstdint>
#include <cstring>

#include "stakegate/base/address.h"

namespace stakegate {

enum class L3Kind : uint8_t { kNonIp, kIpv4, kIpv6, kMalformed };

inline constexpr uint8_t kProtoIcmp = 1, kProtoIgmp = 2, kProtoTcp = 6, kProtoUdp = 17, kProtoIcmp6 = 58;

// An IP protocol the gateway knows no ports or identifiers of (GRE, ESP, AH, SCTP, ...):
// its sessions are the pair of addresses, as conntrack's generic tracking keeps them.
inline constexpr bool portless_protocol(uint8_t proto) {
  return proto != kProtoTcp && proto != kProtoUdp && proto != kProtoIcmp && proto != kProtoIcmp6;
}
inline constexpr uint8_t kTcpFin = 0x01, kTcpSyn = 0x02, kTcpRst = 0x04, kTcpAck = 0x10;

struct PacketMeta {
  L3Kind kind = L3Kind::kNonIp;
  bool has_port = false;        // TCP/UDP header present (not a non-first fragment)
  bool has_icmp = false;        // ICMP/ICMPv6 header present (type, code, and 4 more bytes)
  bool non_first_fragment = false;
  bool first_fragment = false;  // offset 0 with more fragments to come
  bool ip6_fragment_header = false;  // IPv6 with a fragment header, an atomic one (offset 0, no more) too
  uint8_t l4_proto = 0;
  uint8_t ttl = 0;              // IPv4 TTL or IPv6 hop limit
  uint8_t tcp_flags = 0;
  uint8_t icmp_type = 0, icmp_code = 0;
  uint8_t tcp_hdr = 0;          // TCP header length (options included): 20..60
  uint16_t ethertype = 0;       // after the VLAN tags
  uint16_t src_port = 0, dst_port = 0;
  uint16_t icmp_id = 0;         // echo identifier
  uint16_t l4_off = 0;          // offset of the L4 header in the frame (of a non-IP frame: its payload, after the tags)
  uint16_t tcp_win = 0;
  uint32_t l4_len = 0;          // bytes of IP payload from l4_off (header included); see parse_captured_frame
  uint32_t frag_id = 0;         // IPv4 identification or IPv6 fragment identification
  uint32_t tcp_seq = 0, tcp_ack = 0;
  uint32_t src_v4 = 0, dst_v4 = 0;  // host order, when kind == kIpv4
  Ip6 src_v6, dst_v6;               // when kind == kIpv6
};

namespace detail {
// Network-order loads (one load and a byte swap each).
inline uint16_t rd16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return __builtin_bswap16(v);
}
inline uint32_t rd32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return __builtin_bswap32(v);
}

// An IPv6 packet's extension headers (hop-by-hop, routing, destination options, fragment,
// authentication), walked from the fixed header at `l3` up to the transport header within
// `end` bytes. False when a header lies past `end` or the chain is longer than 8 (no
// legitimate traffic). A fragment header of a non-first fragment ends the walk: `pos` is
// then the fragment's data, `next` its protocol.
struct Ip6Chain {
  uint32_t pos = 40;     // offset of the transport header (or a non-first fragment's data) from l3
  uint8_t next = 0;      // its protocol
  bool fragment_header = false;
  bool first_fragment = false;      // offset 0 with more to come
  bool non_first_fragment = false;
  uint32_t frag_id = 0;
};
inline bool walk_ip6_chain(const uint8_t* l3, uint32_t end, Ip6Chain& c) {
  c.next = l3[6];
  for (int hops = 0;; ++hops) {
    if (hops == 8) return false;
    if (c.next == 0 || c.next == 43 || c.next == 60 || c.next == 51) {
      // hop-by-hop, routing, destination options (length in 8-byte units); AH (4-byte units)
      if (c.pos + 8 > end) return false;
      const uint8_t nx = l3[c.pos];
      c.pos += c.next == 51 ? (l3[c.pos + 1] + 2u) * 4u : (l3[c.pos + 1] + 1u) * 8u;
      c.next = nx;
      if (c.pos > end) return false;
    } else if (c.next == 44) {  // fragment header
      if (c.pos + 8 > end) return false;
      const uint16_t offflags = rd16(l3 + c.pos + 2);
      c.fragment_header = true;
      c.frag_id = rd32(l3 + c.pos + 4);
      c.next = l3[c.pos];
      c.pos += 8;
      if ((offflags & 0xfff8) != 0) {
        c.non_first_fragment = true;
        return true;
      }
      c.first_fragment = (offflags & 1) != 0;
    } else {
      return true;
    }
  }
}

// Reads the L4 header at `l4`, `avail` bytes of IP payload from it. Returns false when a
// TCP/UDP header does not fit (a truncated or tiny-fragment L4); other protocols pass.
inline bool parse_l4(uint8_t proto, const uint8_t* l4, uint32_t avail, PacketMeta& m) {
  m.l4_proto = proto;
  m.l4_len = avail;
  if (proto == kProtoTcp) {
    if (avail < 20) return false;
    uint32_t doff = (l4[12] >> 4) * 4u;
    if (doff < 20 || doff > avail) return false;
    m.tcp_flags = l4[13];
    m.tcp_seq = rd32(l4 + 4);
    m.tcp_ack = rd32(l4 + 8);
    m.tcp_win = rd16(l4 + 14);
    m.tcp_hdr = static_cast<uint8_t>(doff);
  } else if (proto == kProtoUdp) {
    if (avail < 8) return false;
  } else {
    // ICMP, ICMPv6: type, code, checksum and the 4 bytes after (an echo's identifier).
    if ((proto == kProtoIcmp || proto == kProtoIcmp6) && avail >= 8) {
      m.has_icmp = true;
      m.icmp_type = l4[0];
      m.icmp_code = l4[1];
      m.icmp_id = rd16(l4 + 4);
    }
    return true;  // no port: ICMP, SCTP, ESP, ... are policed by source only
  }
  m.src_port = rd16(l4);
  m.dst_port = rd16(l4 + 2);
  m.has_port = true;
  return true;
}

// kCut: only `len` of the frame's `wire_len` bytes are at `data`: headers must lie within
// them, lengths are checked against the wire. kWireL4: l4_len counts the IP payload on the
// wire (a frame in chained buffers); otherwise only what is at `data` (a cut sample).
template <bool kCut, bool kWireL4 = false>
inline void parse(const uint8_t* data, uint32_t len, uint32_t wire_len, PacketMeta& m) {
  m.has_port = m.has_icmp = m.non_first_fragment = m.first_fragment = m.ip6_fragment_header = false;
  m.l4_proto = m.tcp_flags = 0;
  m.src_port = m.dst_port = 0;
  if (len < 14) { m.kind = L3Kind::kMalformed; return; }
  uint32_t off = 12;
  uint16_t type = rd16(data + off);
  for (int tags = 0; type == 0x8100 || type == 0x88a8 || type == 0x9100; ++tags) {
    if (tags == 4 || off + 6 > len) { m.kind = L3Kind::kMalformed; return; }
    off += 4;
    type = rd16(data + off);
  }
  m.ethertype = type;
  off += 2;
  const uint8_t* l3 = data + off;
  uint32_t avail = len - off, wire_avail = kCut ? wire_len - off : avail;
  if (type == 0x0800) {
    m.kind = L3Kind::kMalformed;
    if (avail < 20 || (l3[0] >> 4) != 4) return;
    uint32_t ihl = (l3[0] & 0x0f) * 4u;
    uint32_t total = rd16(l3 + 2);
    if (ihl < 20 || total < ihl || total > wire_avail || (kCut && ihl > avail)) return;
    uint16_t frag = rd16(l3 + 6);
    m.ttl = l3[8];
    m.src_v4 = rd32(l3 + 12);
    m.dst_v4 = rd32(l3 + 16);
    m.l4_off = static_cast<uint16_t>(off + ihl);
    if ((frag & 0x3fff) != 0) m.frag_id = rd16(l3 + 4);
    if ((frag & 0x1fff) != 0) {
      m.non_first_fragment = true;
      m.l4_proto = l3[9];
    } else {
      m.first_fragment = (frag & 0x2000) != 0;
      if (!parse_l4(l3[9], l3 + ihl, (kCut ? std::min(total, avail) : total) - ihl, m)) return;
      if constexpr (kWireL4) m.l4_len = total - ihl;
    }
    m.kind = L3Kind::kIpv4;
    return;
  }
  if (type == 0x86dd) {
    m.kind = L3Kind::kMalformed;
    if (avail < 40 || (l3[0] >> 4) != 6) return;
    // A jumbogram (payload length 0) ends up malformed: its hop-by-hop header lies beyond `end`.
    uint32_t end = 40u + rd16(l3 + 4);
    if (end > wire_avail) return;
    [[maybe_unused]] const uint32_t wire_end = end;
    if (kCut) end = std::min(end, avail);  // what was captured of it
    m.ttl = l3[7];
    std::memcpy(m.src_v6.bytes.data(), l3 + 8, 16);
    std::memcpy(m.dst_v6.bytes.data(), l3 + 24, 16);
    Ip6Chain c;
    if (!walk_ip6_chain(l3, end, c)) return;
    m.ip6_fragment_header = c.fragment_header;
    m.frag_id = c.frag_id;
    m.l4_off = static_cast<uint16_t>(off + c.pos);
    if (c.non_first_fragment) {
      m.non_first_fragment = true;
      m.l4_proto = c.next;
      m.kind = L3Kind::kIpv6;
      return;
    }
    m.first_fragment = c.first_fragment;
    if (!parse_l4(c.next, l3 + c.pos, end - c.pos, m)) return;
    if constexpr (kWireL4) m.l4_len = wire_end - c.pos;
    m.kind = L3Kind::kIpv6;
    return;
  }
  m.kind = L3Kind::kNonIp;
  m.l4_off = static_cast<uint16_t>(off);
}
}  // namespace detail

// Parses one frame. Never reads past data[len-1]. Fields that do not apply to the frame's
// kind are left as they were (src_v6 of an IPv4 packet, for instance).
inline void parse_frame(const uint8_t* data, uint32_t len, PacketMeta& m) { detail::parse<false>(data, len, len, m); }

// The same for a frame of which `len` bytes were captured and `wire_len` (>= len) were on
// the wire (an evidence sample cut at its snap length): headers must lie within the
// captured bytes, lengths are checked against the wire.
inline void parse_captured_frame(const uint8_t* data, uint32_t len, uint32_t wire_len, PacketMeta& m) {
  detail::parse<true>(data, len, wire_len < len ? len : wire_len, m);
}

// The same for a frame in chained buffers (a multi-segment mbuf): `len` bytes at `data`
// (the first buffer), `wire_len` in all. Headers must lie in the first buffer; l4_len is
// the whole IP payload (what a TCP segment advances), not only what lies at `data`.
inline void parse_segmented_frame(const uint8_t* data, uint32_t len, uint32_t wire_len, PacketMeta& m) {
  detail::parse<true, true>(data, len, wire_len < len ? len : wire_len, m);
}

// What the data path's fast paths read of the commonest packets: a TCP segment without
// SYN (outside: a staked node's on its verified connection, Worker::decide_fast; inside:
// the cluster's), or a UDP datagram (inside: the cluster's, Worker::process_inside).
struct L4v4 {
  uint32_t src, dst;  // host order
  uint16_t sport, dport;
  uint32_t seq, ack;  // TCP (UDP: 0, as the fields below)
  uint32_t seq_len;   // TCP: tcp_seq_len (payload, plus one for FIN); not set by parse_l4v4<true>
  uint16_t win;       // TCP
  uint8_t flags;      // TCP
  uint8_t proto;      // kProtoTcp or kProtoUdp
};

// An ARP packet for IPv4 over Ethernet, addresses in host order.
struct Arp4 {
  uint16_t op;  // 1 request, 2 reply
  uint32_t sender, target;
};
// Reads the ARP packet of a frame parse_frame judged kNonIp with EtherType 0x0806 (its
// payload at m.l4_off): false unless it is whole and for IPv4 over Ethernet (hardware
// type 1 or 6, 6-byte and 4-byte addresses).
inline bool parse_arp4(const uint8_t* data, uint32_t len, const PacketMeta& m, Arp4& a) {
  if (m.kind != L3Kind::kNonIp || m.ethertype != 0x0806 || len < m.l4_off + 28u) return false;
  const uint8_t* p = data + m.l4_off;
  const uint16_t hw = detail::rd16(p);
  if ((hw != 1 && hw != 6) || detail::rd16(p + 2) != 0x0800 || p[4] != 6 || p[5] != 4) return false;
  a.op = detail::rd16(p + 6);
  a.sender = detail::rd32(p + 14);
  a.target = detail::rd32(p + 24);
  return true;
}

// A DHCP client's message (`answer` false: UDP 68 -> 67, DHCPv6 546 -> 547) or a server's
// answer (true: 67 -> 68, 547 -> 546), by its ports.
inline bool dhcp_ports(const PacketMeta& m, bool answer) {
  if (!m.has_port || m.l4_proto != kProtoUdp) return false;
  const bool v4 = m.kind == L3Kind::kIpv4;
  const uint16_t client = v4 ? 68 : 546, server = v4 ? 67 : 547;
  return m.src_port == (answer ? server : client) && m.dst_port == (answer ? client : server);
}

// True when the `len` bytes at `data` are untagged Ethernet, IPv4 without options and not
// a fragment, and either TCP without SYN or UDP; then parse_frame would make it kIpv4
// with these fields (tests/unit/parse_test.cc holds the two to agreeing).
// kTcpOnly: UDP is refused too (the outside fast path takes only TCP).
template <bool kTcpOnly = false>
inline bool parse_l4v4(const uint8_t* data, uint32_t len, L4v4& t) {
  if (len < 42 || detail::rd16(data + 12) != 0x0800 || data[14] != 0x45) return false;
  const uint8_t* l3 = data + 14;
  const uint32_t total = detail::rd16(l3 + 2);
  t.proto = l3[9];
  if ((detail::rd16(l3 + 6) & 0x3fff) != 0 || total < 28 || total > len - 14) return false;
  const uint8_t* l4 = l3 + 20;
  if (t.proto == kProtoTcp) {
    if (total < 40) return false;  // first: the 20 bytes of TCP header must be in the frame before they are read
    const uint32_t doff = (l4[12] >> 4) * 4u;
    t.flags = l4[13];
    if (doff < 20 || doff > total - 20 || (t.flags & kTcpSyn)) return false;
    t.seq = detail::rd32(l4 + 4);
    t.ack = detail::rd32(l4 + 8);
    t.win = detail::rd16(l4 + 14);
    if (!kTcpOnly) t.seq_len = total - 20 - doff + ((t.flags & kTcpFin) ? 1 : 0);
  } else if (!kTcpOnly && t.proto == kProtoUdp) {
    t.flags = 0;
    t.seq = t.ack = t.seq_len = 0;
    t.win = 0;
  } else {
    return false;
  }
  t.src = detail::rd32(l3 + 12);
  t.dst = detail::rd32(l3 + 16);
  t.sport = detail::rd16(l4);
  t.dport = detail::rd16(l4 + 2);
  return true;
}

// Bytes of TCP payload, plus one each for SYN and FIN: how far the segment advances its
// sender's sequence space.
inline uint32_t tcp_seq_len(const PacketMeta& m) {
  return m.l4_len - m.tcp_hdr + ((m.tcp_flags & kTcpSyn) ? 1 : 0) + ((m.tcp_flags & kTcpFin) ? 1 : 0);
}

// The window scale option of a SYN or SYN-ACK (RFC 7323), or -1. Reads only inside the
// TCP header; called on the rare packets that carry SYN.
inline int tcp_window_scale(const uint8_t* frame, const PacketMeta& m) {
  const uint8_t* o = frame + m.l4_off + 20;
  const uint8_t* end = frame + m.l4_off + m.tcp_hdr;
  while (o < end) {
    if (*o == 0) break;        // end of options
    if (*o == 1) { ++o; continue; }  // no-op
    if (o + 1 >= end || o[1] < 2 || o + o[1] > end) break;
    if (*o == 3 && o[1] == 3) return std::min<int>(o[2], 14);
    o += o[1];
  }
  return -1;
}

}  // namespace stakegate
