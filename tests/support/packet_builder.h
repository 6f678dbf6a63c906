#pragma once
// Builds Ethernet frames for tests and the scenario generator: optional VLAN tags,
// IPv4 or IPv6, TCP or UDP, padded to a frame size. Fields can be broken on purpose.
#include <cstdint>
#include <cstring>
#include <vector>

#include "stakegate/base/address.h"

namespace stakegate::testing {

struct FrameSpec {
  IpAddr src = IpAddr::from_v4(0xC6120001);  // 198.18.0.1
  IpAddr dst = IpAddr::from_v4(0xC6130001);  // 198.19.0.1
  uint8_t proto = 6;                          // 6 TCP, 17 UDP, other: no L4 header written
  uint16_t src_port = 40000;
  uint16_t dst_port = 3569;
  std::vector<uint16_t> vlans;                // outermost first; the first uses 0x88a8 if two or more
  uint32_t frame_size = 64;                   // captured length, padded with zeros
  std::vector<uint8_t> ipv4_options;          // multiple of 4 bytes
  std::vector<std::pair<uint8_t, std::vector<uint8_t>>> ipv6_ext;  // (header type, body incl. next/len bytes rewritten)
  std::vector<std::pair<uint8_t, std::vector<uint8_t>>> ipv6_ext_after_fragment;  // in every fragment, after its header
  uint16_t frag_offset = 0;                   // in 8-byte units; non-zero: a non-first fragment
  bool more_fragments = false;
  uint16_t frag_id = 0x1234;
  uint8_t ttl = 64;                           // IPv4 TTL / IPv6 hop limit
  uint8_t tcp_flags = 0x10;                   // ACK
  uint32_t seq = 0, ack = 0;
  uint16_t window = 65535;
  int wscale = -1;                            // >= 0: a window scale option (SYN, SYN-ACK)
  uint8_t icmp_type = 8, icmp_code = 0;       // proto 1 or 58: the ICMP header
  uint16_t icmp_id = 0;
  std::vector<uint8_t> payload;               // after the L4 header (an ICMP error's quoted packet)
};

inline void put16(std::vector<uint8_t>& b, size_t at, uint16_t v) { b[at] = v >> 8; b[at + 1] = v & 0xff; }
inline void put32(std::vector<uint8_t>& b, size_t at, uint32_t v) {
  put16(b, at, static_cast<uint16_t>(v >> 16));
  put16(b, at + 2, static_cast<uint16_t>(v));
}

inline std::vector<uint8_t> build_frame(const FrameSpec& s) {
  std::vector<uint8_t> f(12, 0);
  const uint8_t dmac[6] = {0x02, 0, 0, 0, 0, 0x02}, smac[6] = {0x02, 0, 0, 0, 0, 0x01};
  std::memcpy(f.data(), dmac, 6);
  std::memcpy(f.data() + 6, smac, 6);
  for (size_t i = 0; i < s.vlans.size(); ++i) {
    uint16_t tpid = (i == 0 && s.vlans.size() > 1) ? 0x88a8 : 0x8100;
    f.insert(f.end(), {uint8_t(tpid >> 8), uint8_t(tpid & 0xff), uint8_t(s.vlans[i] >> 8), uint8_t(s.vlans[i] & 0xff)});
  }
  bool v4 = s.src.is_v4;
  f.insert(f.end(), {uint8_t(v4 ? 0x08 : 0x86), uint8_t(v4 ? 0x00 : 0xdd)});
  size_t l3 = f.size();
  size_t l4_len = s.frag_offset ? 8 : s.proto == 6 ? 20 : s.proto == 17 ? 8 : 8;
  if (v4) {
    size_t ihl = 20 + s.ipv4_options.size();
    f.resize(l3 + ihl, 0);
    f[l3] = static_cast<uint8_t>(0x40 | (ihl / 4));
    f[l3 + 8] = s.ttl;
    f[l3 + 9] = s.proto;
    put16(f, l3 + 4, s.frag_id);
    put16(f, l3 + 6, static_cast<uint16_t>((s.more_fragments ? 0x2000 : 0) | s.frag_offset));
    for (int i = 0; i < 4; ++i) f[l3 + 12 + i] = static_cast<uint8_t>(s.src.v4 >> (24 - 8 * i));
    for (int i = 0; i < 4; ++i) f[l3 + 16 + i] = static_cast<uint8_t>(s.dst.v4 >> (24 - 8 * i));
    if (!s.ipv4_options.empty()) std::memcpy(f.data() + l3 + 20, s.ipv4_options.data(), s.ipv4_options.size());
  } else {
    f.resize(l3 + 40, 0);
    f[l3] = 0x60;
    f[l3 + 7] = s.ttl;
    std::memcpy(f.data() + l3 + 8, s.src.v6.bytes.data(), 16);
    std::memcpy(f.data() + l3 + 24, s.dst.v6.bytes.data(), 16);
    size_t next_at = l3 + 6;
    for (const auto& [type, body] : s.ipv6_ext) {
      f[next_at] = type;
      next_at = f.size();
      f.insert(f.end(), body.begin(), body.end());
    }
    if (s.frag_offset || s.more_fragments) {
      f[next_at] = 44;
      next_at = f.size();
      f.insert(f.end(), {0, 0, 0, 0, 0, 0, 0, 0});
      put16(f, next_at + 2, static_cast<uint16_t>(s.frag_offset << 3 | (s.more_fragments ? 1 : 0)));
      put16(f, next_at + 6, s.frag_id);
      for (const auto& [type, body] : s.ipv6_ext_after_fragment) {
        f[next_at] = type;
        next_at = f.size();
        f.insert(f.end(), body.begin(), body.end());
      }
    }
    f[next_at] = s.proto;
  }
  if (!s.frag_offset && s.proto == 6 && s.wscale >= 0) l4_len = 24;  // window scale option (3 bytes) + end of options
  size_t l4 = f.size();
  f.resize(l4 + l4_len, 0);
  if (!s.frag_offset && (s.proto == 6 || s.proto == 17)) {
    put16(f, l4, s.src_port);
    put16(f, l4 + 2, s.dst_port);
    if (s.proto == 6) {
      put32(f, l4 + 4, s.seq);
      put32(f, l4 + 8, s.ack);
      f[l4 + 12] = static_cast<uint8_t>((l4_len / 4) << 4);
      f[l4 + 13] = s.tcp_flags;
      put16(f, l4 + 14, s.window);
      if (s.wscale >= 0) { f[l4 + 20] = 3; f[l4 + 21] = 3; f[l4 + 22] = static_cast<uint8_t>(s.wscale); f[l4 + 23] = 0; }
    }
  } else if (!s.frag_offset && (s.proto == 1 || s.proto == 58)) {
    f[l4] = s.icmp_type;
    f[l4 + 1] = s.icmp_code;
    put16(f, l4 + 4, s.icmp_id);
  }
  f.insert(f.end(), s.payload.begin(), s.payload.end());
  if (f.size() < s.frame_size) f.resize(s.frame_size, 0);
  size_t ip_len = f.size() - l3;
  if (v4) put16(f, l3 + 2, static_cast<uint16_t>(ip_len));
  else put16(f, l3 + 4, static_cast<uint16_t>(ip_len - 40));
  if (s.proto == 17 && !s.frag_offset) put16(f, l4 + 4, static_cast<uint16_t>(f.size() - l4));
  return f;
}

// An ARP request (op 1) or reply (op 2) from `sender` about `target`.
inline std::vector<uint8_t> build_arp(const IpAddr& sender, const IpAddr& target, uint8_t op = 1) {
  std::vector<uint8_t> f(60, 0);
  std::memset(f.data(), 0xff, 6);
  const uint8_t smac[6] = {0x02, 0, 0, 0, 0, 0x01};
  std::memcpy(f.data() + 6, smac, 6);
  f[12] = 0x08; f[13] = 0x06;
  const uint8_t hdr[8] = {0, 1, 8, 0, 6, 4, 0, op};
  std::memcpy(f.data() + 14, hdr, 8);
  std::memcpy(f.data() + 22, smac, 6);
  for (int i = 0; i < 4; ++i) f[28 + i] = static_cast<uint8_t>(sender.v4 >> (24 - 8 * i));
  for (int i = 0; i < 4; ++i) f[38 + i] = static_cast<uint8_t>(target.v4 >> (24 - 8 * i));
  return f;
}

inline std::vector<uint8_t> build_lldp() {
  std::vector<uint8_t> f(60, 0);
  const uint8_t dmac[6] = {0x01, 0x80, 0xc2, 0, 0, 0x0e}, smac[6] = {0x02, 0, 0, 0, 0, 0x01};
  std::memcpy(f.data(), dmac, 6);
  std::memcpy(f.data() + 6, smac, 6);
  f[12] = 0x88; f[13] = 0xcc;
  return f;
}

}  // namespace stakegate::testing
