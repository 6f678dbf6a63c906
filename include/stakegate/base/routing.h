#pragma once
// The routing protocols the cluster may speak with its upstream routers across the gateway
// (infra.routing): which packets are whose, by IP protocol and port. What proves that a
// packet came from the router itself is the worker's (pipeline/worker.cc, routing_source).
#include <array>
#include <cstdint>
#include <optional>
#include <string_view>

namespace stakegate {

enum RoutingProtocol : uint8_t {
  kRoutingBgp = 1 << 0,   // TCP port 179, either end
  kRoutingBfd = 1 << 1,   // UDP to port 3784: single-hop BFD control (RFC 5881)
  kRoutingOspf = 1 << 2,  // IP protocol 89 (OSPFv2 and OSPFv3)
  kRoutingPim = 1 << 3,   // IP protocol 103
  kRoutingVrrp = 1 << 4,  // IP protocol 112
  kRoutingRip = 1 << 5,   // UDP port 520 (RIPv2) or 521 (RIPng), either end
  kRoutingLdp = 1 << 6,   // TCP or UDP port 646, either end
};

struct RoutingProtocolName {
  std::string_view name;
  RoutingProtocol bit;
};
inline constexpr std::array<RoutingProtocolName, 7> kRoutingProtocols{{{"bgp", kRoutingBgp},
                                                                       {"bfd", kRoutingBfd},
                                                                       {"ospf", kRoutingOspf},
                                                                       {"pim", kRoutingPim},
                                                                       {"vrrp", kRoutingVrrp},
                                                                       {"rip", kRoutingRip},
                                                                       {"ldp", kRoutingLdp}}};

inline std::optional<RoutingProtocol> routing_protocol(std::string_view name) {
  for (const auto& p : kRoutingProtocols)
    if (p.name == name) return p.bit;
  return std::nullopt;
}

// The protocol a packet belongs to (0: none of them). `has_ports`: the TCP or UDP header's
// ports were read.
constexpr uint8_t routing_protocol_of(uint8_t ip_proto, bool has_ports, uint16_t sport, uint16_t dport) {
  auto either = [&](uint16_t port) { return sport == port || dport == port; };
  switch (ip_proto) {
    case 6:
      if (!has_ports) return 0;
      return either(179) ? kRoutingBgp : either(646) ? kRoutingLdp : 0;
    case 17:
      if (!has_ports) return 0;
      if (dport == 3784) return kRoutingBfd;
      return either(520) || either(521) ? kRoutingRip : either(646) ? kRoutingLdp : 0;
    case 89:
      return kRoutingOspf;
    case 103:
      return kRoutingPim;
    case 112:
      return kRoutingVrrp;
    default:
      return 0;
  }
}

}  // namespace stakegate
