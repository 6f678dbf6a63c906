#include "sections.h"

#include <algorithm>
#include <charconv>

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
    c.prefixes.push_back(*cidr);
  }
}

void read_sessions(const YamlReader& r, SessionConfig& s) {
  r.expect_map({"share", "burst_ms", "timeouts"});
  if (r.has("share")) s.share = r.child("share").number(0, 1);
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

void read_infra(const YamlReader& r, InfraConfig& i) {
  r.expect_map({"pps", "burst_ms", "ethertypes"});
  if (r.has("pps")) i.pps = r.child("pps").number(0, 1e9);
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
}

void read_request_channel(const YamlReader& r, RequestChannelConfig& q) {
  r.expect_map({"fraction", "min_pps", "burst_ms"});
  if (r.has("fraction")) q.fraction = r.child("fraction").number(0, 1);
  if (r.has("min_pps")) q.min_pps = r.child("min_pps").number(0, 1e9);
  if (r.has("burst_ms")) q.burst_ms = static_cast<unsigned>(r.child("burst_ms").integer(1, 60000));
}

}  // namespace stakegate::config_sections
