#pragma once
// IP addresses and prefixes as the control plane handles them. The data path uses the
// raw forms (a host-order uint32_t for IPv4, 16 bytes for IPv6) that these wrap.
#include <array>
#include <compare>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

namespace stakegate {

struct Ip6 {
  std::array<uint8_t, 16> bytes{};
  friend bool operator==(const Ip6&, const Ip6&) = default;
  friend auto operator<=>(const Ip6&, const Ip6&) = default;
};

struct IpAddr {
  bool is_v4 = true;
  uint32_t v4 = 0;  // host byte order
  Ip6 v6{};
  friend bool operator==(const IpAddr&, const IpAddr&) = default;
  friend auto operator<=>(const IpAddr&, const IpAddr&) = default;

  static IpAddr from_v4(uint32_t host_order) { return IpAddr{true, host_order, {}}; }
  static IpAddr from_v6(const Ip6& a) { return IpAddr{false, 0, a}; }
  std::string to_string() const;
};

// The last eight bytes of ::ffff:a (host order), as a little-endian word (the first eight
// are zero). Little-endian, as DPDK's x86.
inline uint64_t mapped_v4_low(uint32_t a) { return (uint64_t{0xffff} << 16) | (uint64_t{__builtin_bswap32(a)} << 32); }

// An IPv4 address (host order) as ::ffff:a.b.c.d: the one form in which tables that hold
// both families keep it.
// (Two word stores: the packet paths make one per packet.)
inline Ip6 mapped_v4(uint32_t a) {
  Ip6 m;
  const uint64_t hi = 0, lo = mapped_v4_low(a);
  std::memcpy(m.bytes.data(), &hi, 8);
  std::memcpy(m.bytes.data() + 8, &lo, 8);
  return m;
}

// Sources no host on the outside can have: loopback, multicast, IPv4 broadcast.
inline bool martian_v4(uint32_t a) { return (a >> 24) == 127 || (a >> 28) == 0xE || a == 0xFFFFFFFFu; }
inline bool martian_v6(const Ip6& a) {
  if (a.bytes[0] == 0xff) return true;
  static constexpr std::array<uint8_t, 16> kLoopback = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  return a.bytes == kLoopback;
}

// Link-local addresses (169.254.0.0/16, fe80::/10): valid on one link only, never routed.
inline bool link_local_v4(uint32_t a) { return (a >> 16) == 0xA9FEu; }
inline bool link_local_v6(const Ip6& a) { return a.bytes[0] == 0xfe && (a.bytes[1] & 0xc0) == 0x80; }

// Parses a literal IPv4 or IPv6 address (no DNS). Brackets around IPv6 are accepted.
std::optional<IpAddr> parse_ip(std::string_view text);

struct Cidr {
  IpAddr base;  // already masked to `prefix_len`
  uint8_t prefix_len = 0;
  bool contains(const IpAddr& a) const;
  bool covers(const Cidr& inner) const { return prefix_len <= inner.prefix_len && contains(inner.base); }
  std::string to_string() const;
};

// Parses "a.b.c.d/n", "x::y/n" or a bare address (a host prefix). Refuses a base with
// bits set beyond the prefix, since that usually hides a typo.
std::optional<Cidr> parse_cidr(std::string_view text, std::string* why = nullptr);

// Whether the two prefixes share addresses (never across families).
bool overlaps(const Cidr& a, const Cidr& b);

// Whether `c` shares addresses with fe80::/10, the link-local range the upstream router's
// neighbour discovery comes from.
bool overlaps_ipv6_link_local(const Cidr& c);

// Why a blocklist entry for `c` would cut the cluster off, or "" when it would not: a /0
// (every source of its family: the replies to the cluster's own connections, DNS and ICMP
// errors included) or an IPv6 prefix (not a single address) overlapping fe80::/10, the
// link-local addresses neighbour discovery comes from. The config, the API and a restart
// all refuse it.
std::string block_refusal(const Cidr& c);

inline uint32_t v4_mask(uint8_t len) { return len == 0 ? 0 : ~uint32_t{0} << (32 - len); }
Ip6 v6_mask_apply(const Ip6& a, uint8_t len);

// Splits "host:port" or "[v6]:port". Returns false when the port is missing or bad.
bool split_host_port(std::string_view text, std::string& host, uint16_t& port);

}  // namespace stakegate
