#include "stakegate/base/address.h"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>

namespace stakegate {

std::string IpAddr::to_string() const {
  char buf[INET6_ADDRSTRLEN] = {};
  if (is_v4) {
    uint32_t n = htonl(v4);
    inet_ntop(AF_INET, &n, buf, sizeof buf);
  } else {
    inet_ntop(AF_INET6, v6.bytes.data(), buf, sizeof buf);
  }
  return buf;
}

std::optional<IpAddr> parse_ip(std::string_view text) {
  if (text.size() >= 2 && text.front() == '[' && text.back() == ']') text = text.substr(1, text.size() - 2);
  std::string s(text);
  in_addr a4{};
  if (inet_pton(AF_INET, s.c_str(), &a4) == 1) return IpAddr::from_v4(ntohl(a4.s_addr));
  Ip6 a6;
  if (inet_pton(AF_INET6, s.c_str(), a6.bytes.data()) != 1) return std::nullopt;
  // An IPv4-mapped address (::ffff:a.b.c.d) is the IPv4 address: packets carry it as IPv4.
  static constexpr uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (std::equal(kMapped, kMapped + 12, a6.bytes.begin()))
    return IpAddr::from_v4(uint32_t{a6.bytes[12]} << 24 | uint32_t{a6.bytes[13]} << 16 | uint32_t{a6.bytes[14]} << 8 | a6.bytes[15]);
  return IpAddr::from_v6(a6);
}

Ip6 v6_mask_apply(const Ip6& a, uint8_t len) {
  Ip6 out{};
  for (int i = 0; i < 16; ++i) {
    int bits = static_cast<int>(len) - i * 8;
    uint8_t m = bits >= 8 ? 0xff : bits <= 0 ? 0 : static_cast<uint8_t>(0xff << (8 - bits));
    out.bytes[i] = a.bytes[i] & m;
  }
  return out;
}

bool Cidr::contains(const IpAddr& a) const {
  if (a.is_v4 != base.is_v4) return false;
  if (a.is_v4) return (a.v4 & v4_mask(prefix_len)) == base.v4;
  return v6_mask_apply(a.v6, prefix_len) == base.v6;
}

std::string Cidr::to_string() const { return base.to_string() + "/" + std::to_string(prefix_len); }

std::optional<Cidr> parse_cidr(std::string_view text, std::string* why) {
  auto set_why = [&](const char* w) { if (why) *why = w; };
  auto slash = text.find('/');
  auto ip = parse_ip(text.substr(0, slash));
  if (!ip) { set_why("not an IPv4 or IPv6 address"); return std::nullopt; }
  // IPv4-mapped (::ffff:a.b.c.d/n): the IPv4 prefix of length n - 96.
  const bool mapped = ip->is_v4 && text.substr(0, slash).find(':') != std::string_view::npos;
  unsigned max_len = ip->is_v4 && !mapped ? 32 : 128;
  unsigned len = max_len;
  if (slash != std::string_view::npos) {
    auto p = text.substr(slash + 1);
    auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), len);
    if (p.empty() || ec != std::errc{} || end != p.data() + p.size() || len > max_len) {
      set_why(max_len == 32 ? "prefix length must be 0..32" : "prefix length must be 0..128");
      return std::nullopt;
    }
  }
  if (mapped) {
    if (len < 96) {
      set_why("an IPv4-mapped prefix (::ffff:a.b.c.d) must be /96 or longer: it stands for IPv4 addresses");
      return std::nullopt;
    }
    len -= 96;
  }
  Cidr c{*ip, static_cast<uint8_t>(len)};
  bool host_bits = ip->is_v4 ? (ip->v4 & ~v4_mask(c.prefix_len)) != 0
                             : v6_mask_apply(ip->v6, c.prefix_len) != ip->v6;
  if (host_bits) { set_why("address has bits set beyond the prefix length"); return std::nullopt; }
  return c;
}

bool overlaps(const Cidr& a, const Cidr& b) {
  return a.prefix_len <= b.prefix_len ? a.contains(b.base) : b.contains(a.base);
}

bool overlaps_ipv6_link_local(const Cidr& c) { return overlaps(c, Cidr{*parse_ip("fe80::"), 10}); }

std::string block_refusal(const Cidr& c) {
  if (c.prefix_len == 0)
    return std::string("a /0 blocks every ") + (c.base.is_v4 ? "IPv4" : "IPv6") +
           " source, the replies to the cluster's own connections (DNS, ICMP errors, its peers) "
           "included: block the prefixes that misbehave";
  if (c.prefix_len < 128 && overlaps_ipv6_link_local(c))
    return "it covers link-local addresses (fe80::/10), where the upstream router's neighbour discovery "
           "comes from: the cluster could lose IPv6 (block single link-local addresses, /128, instead)";
  return {};
}

bool split_host_port(std::string_view text, std::string& host, uint16_t& port) {
  std::string_view h, p;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') return false;
    h = text.substr(1, close - 1);
    p = text.substr(close + 2);
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string_view::npos) return false;
    h = text.substr(0, colon);
    p = text.substr(colon + 1);
    if (h.find(':') != std::string_view::npos) return false;  // bare IPv6 needs brackets
  }
  unsigned v = 0;
  auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), v);
  if (h.empty() || p.empty() || ec != std::errc{} || end != p.data() + p.size() || v == 0 || v > 65535) return false;
  host.assign(h);
  port = static_cast<uint16_t>(v);
  return true;
}

}  // namespace stakegate
