#include "sections.h"

#include <algorithm>
#include <charconv>
#include <filesystem>

#include "stakegate/identity/resolve.h"

namespace stakegate::config_sections {

void read_cluster(const YamlReader& r, ClusterConfig& c) {
  r.expect_map({"prefixes"});
  if (!r.has("prefixes")) r.fail("missing key 'prefixes'");
  auto p = r.child("prefixes");
  p.expect_seq();
  if (p.size() > 64) p.fail("at most 64 prefixes (aggregate them)");
  for (size_t i = 0; i < p.size(); ++i) {
    std::string why;
    auto cidr = parse_cidr(p.item(i).string(), &why);
    if (!cidr) p.item(i).fail("bad CIDR '" + p.item(i).string() + "': " + why);
    // Outside sources inside the prefixes are dropped as spoofed, before anything else.
    if (cidr->prefix_len == 0)
      p.item(i).fail("refused '" + p.item(i).string() + "': a /0 makes every " + (cidr->base.is_v4 ? "IPv4" : "IPv6") +
                     " address the cluster's, so every such packet from the outside would be dropped as spoofed");
    if (overlaps_ipv6_link_local(*cidr))
      p.item(i).fail("refused '" + p.item(i).string() + "': link-local addresses (fe80::/10) are the upstream router's "
                     "too, and its neighbour discovery would be dropped as spoofed; list the cluster's global prefixes");
    if (overlaps(*cidr, *parse_cidr("169.254.0.0/16")))
      p.item(i).fail("refused '" + p.item(i).string() + "': link-local addresses (169.254.0.0/16) are the upstream "
                     "router's too, and its ARP from them would be dropped as spoofed; list the cluster's own prefixes");
    // No host has a multicast or loopback address: such a prefix is a typo, and protects nothing.
    static constexpr std::pair<const char*, const char*> kNoHosts[] = {
        {"224.0.0.0/4", "multicast"}, {"ff00::/8", "multicast"}, {"127.0.0.0/8", "loopback"}, {"::1/128", "loopback"}};
    for (const auto& [range, what] : kNoHosts)
      if (const Cidr n = *parse_cidr(range); cidr->prefix_len >= n.prefix_len && n.contains(cidr->base))
        p.item(i).fail("refused '" + p.item(i).string() + "': " + range + " holds " + what +
                       " addresses, which no node has; list the cluster's own prefixes");
    c.prefixes.push_back(*cidr);
  }
}

void read_sessions(const YamlReader& r, SessionConfig& s) {
  r.expect_map({"share", "burst_ms", "timeouts"});
  if (r.has("share")) {
    s.share = r.child("share").number(0, 1);
    s.share_set = true;
  }
  if (r.has("burst_ms")) s.burst_ms = static_cast<unsigned>(r.child("burst_ms").integer(1, 60000));
  if (r.has("timeouts")) {
    auto t = r.child("timeouts");
    t.expect_map({"tcp_syn_s", "tcp_established_s", "tcp_closing_s", "tcp_closed_s", "udp_s", "icmp_s"});
    const std::pair<const char*, double*> keys[] = {{"tcp_syn_s", &s.tcp_syn_s},         {"tcp_established_s", &s.tcp_established_s},
                                                     {"tcp_closing_s", &s.tcp_closing_s}, {"tcp_closed_s", &s.tcp_closed_s},
                                                     {"udp_s", &s.udp_s},                 {"icmp_s", &s.icmp_s}};
    for (const auto& [key, value] : keys)
      if (t.has(key)) *value = t.child(key).number(1, 30 * 86400);
  }
}

void read_infra(const YamlReader& r, InfraConfig& i, const ClusterConfig& cluster) {
  r.expect_map({"pps", "icmp_errors_pps", "burst_ms", "ethertypes", "neighbours", "ra_guard", "routing", "routing_pps"});
  if (r.has("pps")) i.pps = r.child("pps").number(0, 1e9);
  if (r.has("icmp_errors_pps")) i.icmp_errors_pps = r.child("icmp_errors_pps").number(0, 1e9);
  if (r.has("burst_ms")) i.burst_ms = static_cast<unsigned>(r.child("burst_ms").integer(1, 60000));
  if (r.has("ethertypes")) {
    auto e = r.child("ethertypes");
    e.expect_seq();
    for (size_t k = 0; k < e.size(); ++k) {
      // Written as EtherTypes are: 0x88cc (or decimal).
      std::string text = e.item(k).string();
      unsigned v = 0;
      bool hex = text.rfind("0x", 0) == 0 || text.rfind("0X", 0) == 0;
      const char* b = text.data() + (hex ? 2 : 0);
      auto [end, ec] = std::from_chars(b, text.data() + text.size(), v, hex ? 16 : 10);
      if (ec != std::errc{} || end != text.data() + text.size() || v < 0x0600 || v > 0xffff)
        e.item(k).fail("must be an EtherType between 0x0600 and 0xffff, got '" + text + "'");
      if (v == 0x0800 || v == 0x86dd || v == 0x8100 || v == 0x88a8 || v == 0x9100)
        e.item(k).fail("IPv4, IPv6 and VLAN tags are always classified; list only other EtherTypes");
      i.ethertypes.push_back(static_cast<uint16_t>(v));
    }
    std::sort(i.ethertypes.begin(), i.ethertypes.end());
    i.ethertypes.erase(std::unique(i.ethertypes.begin(), i.ethertypes.end()), i.ethertypes.end());
    if (i.ethertypes.size() > 16) e.fail("at most 16 EtherTypes");
  }
  if (r.has("neighbours")) {
    auto n = r.child("neighbours");
    n.expect_seq();
    auto read_mac = [](const YamlReader& m) {
      const std::string text = m.string();
      std::array<uint8_t, 6> mac{};
      bool ok = text.size() == 17;
      for (size_t b = 0; ok && b < 6; ++b) {
        ok = (b == 5 || text[b * 3 + 2] == ':') &&
             std::from_chars(text.data() + b * 3, text.data() + b * 3 + 2, mac[b], 16).ptr == text.data() + b * 3 + 2;
      }
      if (!ok) m.fail("must be a MAC address (aa:bb:cc:dd:ee:ff), got '" + text + "'");
      if (mac[0] & 1) m.fail("'" + text + "' is a multicast or broadcast address: no host sends from it");
      if (mac == std::array<uint8_t, 6>{}) m.fail("'" + text + "' is no host's address");
      return mac;
    };
    for (size_t k = 0; k < n.size(); ++k) {
      // "aa:bb:cc:dd:ee:ff", or {mac: "aa:bb:cc:dd:ee:ff", addresses: [IP, ...]}.
      const YamlReader item = n.item(k);
      const bool with_addresses = item.node().IsMap();
      if (with_addresses) {
        item.expect_map({"mac", "addresses"});
        if (!item.has("mac")) item.fail("missing key 'mac'");
      }
      const std::array<uint8_t, 6> mac = read_mac(with_addresses ? item.child("mac") : item);
      if (std::find(i.neighbours.begin(), i.neighbours.end(), mac) == i.neighbours.end()) i.neighbours.push_back(mac);
      if (!with_addresses || !item.has("addresses")) continue;
      auto a = item.child("addresses");
      a.expect_seq();
      for (size_t j = 0; j < a.size(); ++j) {
        auto ip = parse_ip(a.item(j).string());
        if (!ip) a.item(j).fail("must be an IPv4 or IPv6 address, got '" + a.item(j).string() + "'");
        const Cidr host{*ip, static_cast<uint8_t>(ip->is_v4 ? 32 : 128)};
        if (ip->is_v4 ? martian_v4(ip->v4) || ip->v4 == 0 : martian_v6(ip->v6) || ip->v6 == Ip6{})
          a.item(j).fail("'" + a.item(j).string() + "' is no host's address (multicast, loopback, broadcast or unspecified)");
        for (const Cidr& c : cluster.prefixes)
          if (overlaps(c, host))
            a.item(j).fail("'" + a.item(j).string() + "' is inside cluster.prefixes (" + c.to_string() +
                           "): the cluster's addresses are never a neighbour's on the outside link");
        InfraConfig::NeighbourAddress na{*ip, mac};
        auto same = [&](const InfraConfig::NeighbourAddress& x) { return x.address == na.address && x.mac == na.mac; };
        if (std::none_of(i.neighbour_addresses.begin(), i.neighbour_addresses.end(), same))
          i.neighbour_addresses.push_back(na);
      }
    }
    if (i.neighbours.size() > 8) n.fail("at most 8 neighbours");
    if (i.neighbour_addresses.size() > 32) n.fail("at most 32 neighbour addresses (each address under each MAC)");
  }
  if (r.has("ra_guard")) {
    i.ra_guard = r.child("ra_guard").boolean();
    if (i.ra_guard && i.neighbours.empty())
      r.child("ra_guard").fail("needs infra.neighbours: the MACs whose router advertisements and redirects pass");
  }
  if (r.has("routing")) {
    auto p = r.child("routing");
    p.expect_seq();
    for (size_t k = 0; k < p.size(); ++k) {
      const std::string name = p.item(k).string();
      const auto bit = routing_protocol(name);
      if (!bit) {
        std::string known;
        for (const auto& rp : kRoutingProtocols) known += (known.empty() ? "" : ", ") + std::string(rp.name);
        p.item(k).fail("unknown routing protocol '" + name + "' (known: " + known + ")");
      }
      i.routing |= *bit;
    }
    if (i.routing && i.neighbour_addresses.empty())
      p.fail("needs infra.neighbours with their addresses ({mac: ..., addresses: [...]}): routing protocols pass "
             "only from a listed router's own MAC and addresses");
  }
  if (r.has("routing_pps")) {
    i.routing_pps = r.child("routing_pps").number(0, 1e9);
    if (i.routing && i.routing_pps < 1)
      r.child("routing_pps").fail("must be at least 1 with infra.routing set: every routing packet would be dropped");
  }
}

void read_request_channel(const YamlReader& r, RequestChannelConfig& q) {
  r.expect_map({"fraction", "min_pps", "burst_ms"});
  if (r.has("fraction")) q.fraction = r.child("fraction").number(0, 1);
  if (r.has("min_pps")) q.min_pps = r.child("min_pps").number(0, 1e9);
  if (r.has("burst_ms")) q.burst_ms = static_cast<unsigned>(r.child("burst_ms").integer(1, 60000));
}

std::string resolve_path(const std::string& cfg_file, const std::string& p) {
  namespace fs = std::filesystem;
  if (p.empty() || fs::path(p).is_absolute()) return p;
  return (fs::path(cfg_file).parent_path() / p).lexically_normal().string();
}

void read_dns(const YamlReader& r, DnsConfig& d) {
  r.expect_map({"servers", "timeout_s", "refresh_s", "min_refresh_s", "retry_s", "max_addresses"});
  if (r.has("servers")) {
    auto s = r.child("servers");
    s.expect_seq();
    for (size_t i = 0; i < s.size(); ++i) {
      auto item = s.item(i);
      std::string v = item.string();
      if (!parse_dns_server(v)) item.fail("not an address or address:port ('[v6]:port' for IPv6): '" + v + "'");
      d.servers.push_back(v);
    }
  }
  if (r.has("timeout_s")) d.timeout_s = r.child("timeout_s").number(0.1, 60);
  if (r.has("refresh_s")) d.refresh_s = r.child("refresh_s").number(1, 86400);
  if (r.has("min_refresh_s")) d.min_refresh_s = r.child("min_refresh_s").number(0.5, 86400);
  if (r.has("retry_s")) d.retry_s = r.child("retry_s").number(0.5, 86400);
  if (r.has("max_addresses")) d.max_addresses = static_cast<unsigned>(r.child("max_addresses").integer(1, 64));
  if (d.min_refresh_s > d.refresh_s) r.child("min_refresh_s").fail("must not be above refresh_s");
}

void read_access_api(const YamlReader& r, AccessApiConfig& a, const std::string& cfg_file) {
  r.expect_map({"endpoints", "interval_s", "timeout_s", "tls", "ca_file", "max_bytes", "stakes_contract"});
  if (!r.has("endpoints")) r.fail("missing key 'endpoints' (host:port of Flow Access API nodes)");
  auto e = r.child("endpoints");
  e.expect_seq();
  if (e.size() == 0 || e.size() > 16) e.fail("must list 1 to 16 endpoints");
  for (size_t i = 0; i < e.size(); ++i) {
    auto item = e.item(i);
    std::string v = item.string();
    std::string host;
    uint16_t port = 0;
    if (!split_host_port(v, host, port) || host.empty() || port == 0) item.fail("must be host:port or [v6]:port, got '" + v + "'");
    a.endpoints.push_back(v);
  }
  if (r.has("interval_s")) a.interval_s = r.child("interval_s").number(1, 86400);
  if (r.has("timeout_s")) a.timeout_s = r.child("timeout_s").number(1, 600);
  if (r.has("tls")) a.tls = r.child("tls").boolean();
  if (r.has("ca_file")) {
    a.ca_file = resolve_path(cfg_file, r.child("ca_file").string());
    a.tls = true;
  }
  if (r.has("max_bytes")) a.max_bytes = r.child("max_bytes").integer(1u << 20, 2000u << 20);
  if (r.has("stakes_contract")) {
    auto c = r.child("stakes_contract");
    std::string v = c.string();
    const std::string hex = v.rfind("0x", 0) == 0 ? v.substr(2) : v;
    if (hex.size() != 16 || hex.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos)
      c.fail("must be a Flow address (0x and 16 hex digits), got '" + v + "'");
    a.stakes_contract = "0x" + hex;
  }
}

}  // namespace stakegate::config_sections
