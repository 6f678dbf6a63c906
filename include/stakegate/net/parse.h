#pragma once
// Frame parser for the data path: Ethernet, up to four 802.1Q/802.1ad tags, IPv4 with
// options, IPv6 with extension headers, TCP and UDP. It reads only bytes inside the
// frame, never allocates and reports a hostile or truncated header as `malformed`.
#include <algorithm>
#include <cstdint>
#include <cstring>

#include "stakegate/base/address.h"

namespace stakegate {

enum class L3Kind : uint8_t { kNonIp, kIpv4, kIpv6, kMalformed };

struct PacketMeta {
  L3Kind kind = L3Kind::kNonIp;
  bool has_port = false;        // TCP/UDP header present (not a non-first fragment)
  bool non_first_fragment = false;
  uint8_t l4_proto = 0;
  uint16_t dst_port = 0;
  uint32_t src_v4 = 0;          // host order, when kind == kIpv4
  Ip6 src_v6;                   // when kind == kIpv6
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
constexpr uint8_t kTcp = 6, kUdp = 17;

// Reads the destination port of a TCP/UDP header at `l4` with `avail` bytes of IP payload.
// Returns false when the header does not fit (a truncated or tiny-fragment L4).
inline bool parse_l4(uint8_t proto, const uint8_t* l4, uint32_t avail, PacketMeta& m) {
  m.l4_proto = proto;
  if (proto == kTcp) {
    if (avail < 20) return false;
    uint32_t doff = (l4[12] >> 4) * 4u;
    if (doff < 20 || doff > avail) return false;
  } else if (proto == kUdp) {
    if (avail < 8) return false;
  } else {
    return true;  // no port: ICMP, SCTP, ESP, ... are policed by source only
  }
  m.dst_port = rd16(l4 + 2);
  m.has_port = true;
  return true;
}
}  // namespace detail

namespace detail {
template <bool kCut>
inline void parse(const uint8_t* data, uint32_t len, uint32_t wire_len, PacketMeta& m) {
  m.has_port = false;
  m.non_first_fragment = false;
  m.l4_proto = 0;
  m.dst_port = 0;
  if (len < 14) { m.kind = L3Kind::kMalformed; return; }
  uint32_t off = 12;
  uint16_t type = rd16(data + off);
  for (int tags = 0; type == 0x8100 || type == 0x88a8 || type == 0x9100; ++tags) {
    if (tags == 4 || off + 6 > len) { m.kind = L3Kind::kMalformed; return; }
    off += 4;
    type = rd16(data + off);
  }
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
    m.src_v4 = rd32(l3 + 12);
    if ((frag & 0x1fff) != 0) {
      m.non_first_fragment = true;
      m.l4_proto = l3[9];
    } else if (!parse_l4(l3[9], l3 + ihl, (kCut ? std::min(total, avail) : total) - ihl, m)) {
      return;
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
    if (kCut) end = std::min(end, avail);  // what was captured of it
    std::memcpy(m.src_v6.bytes.data(), l3 + 8, 16);
    uint8_t next = l3[6];
    uint32_t pos = 40;
    for (int hops = 0;; ++hops) {
      if (hops == 8) return;  // longer chains are not legitimate traffic
      if (next == 0 || next == 43 || next == 60) {  // hop-by-hop, routing, destination options
        if (pos + 8 > end) return;
        uint8_t nx = l3[pos];
        pos += (l3[pos + 1] + 1u) * 8u;
        next = nx;
        if (pos > end) return;
      } else if (next == 44) {  // fragment header
        if (pos + 8 > end) return;
        uint16_t offflags = rd16(l3 + pos + 2);
        next = l3[pos];
        pos += 8;
        if ((offflags & 0xfff8) != 0) {
          m.non_first_fragment = true;
          m.l4_proto = next;
          m.kind = L3Kind::kIpv6;
          return;
        }
      } else if (next == 51) {  // authentication header: length in 4-byte units
        if (pos + 8 > end) return;
        uint8_t nx = l3[pos];
        pos += (l3[pos + 1] + 2u) * 4u;
        next = nx;
        if (pos > end) return;
      } else {
        break;
      }
    }
    if (!parse_l4(next, l3 + pos, end - pos, m)) return;
    m.kind = L3Kind::kIpv6;
    return;
  }
  m.kind = L3Kind::kNonIp;
}
}  // namespace detail

// Parses one frame of which `len` bytes were captured and `wire_len` (>= len) were on the
// wire: headers must lie within the captured bytes, lengths are checked against the
// wire. The data path has whole frames (parse_frame); evidence samples are cut at a
// snap length. Never reads past data[len-1]. Fields that do not apply to the frame's
// kind are left as they were (src_v6 of an IPv4 packet, for instance).
inline void parse_frame(const uint8_t* data, uint32_t len, PacketMeta& m) { detail::parse<false>(data, len, len, m); }
inline void parse_captured_frame(const uint8_t* data, uint32_t len, uint32_t wire_len, PacketMeta& m) {
  detail::parse<true>(data, len, wire_len < len ? len : wire_len, m);
}

}  // namespace stakegate
