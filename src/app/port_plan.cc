#include "port_plan.h"

#include <rte_ethdev.h>

#include <cstdio>

namespace stakegate {

RssPlan plan_outside_rss(const std::string& device, uint64_t offloads, unsigned queues, bool rss_enabled) {
  RssPlan p;
  if (queues <= 1) return p;
  const uint64_t want = RTE_ETH_RSS_IPV4 | RTE_ETH_RSS_FRAG_IPV4 | RTE_ETH_RSS_NONFRAG_IPV4_TCP |
                        RTE_ETH_RSS_NONFRAG_IPV4_UDP | RTE_ETH_RSS_NONFRAG_IPV4_OTHER | RTE_ETH_RSS_IPV6 |
                        RTE_ETH_RSS_FRAG_IPV6 | RTE_ETH_RSS_NONFRAG_IPV6_TCP | RTE_ETH_RSS_NONFRAG_IPV6_UDP |
                        RTE_ETH_RSS_NONFRAG_IPV6_OTHER;
  if (!rss_enabled) {
    p.note = "dataplane.rss is off";
  } else if (!(offloads & RTE_ETH_RSS_L3_SRC_ONLY) || !(offloads & RTE_ETH_RSS_IPV4)) {
    char hex[32];
    std::snprintf(hex, sizeof hex, "0x%llx", static_cast<unsigned long long>(offloads));
    p.note = device + " cannot hash on the source address alone (RSS offloads " + hex + ")";
  } else {
    p.rss = true;
    p.rss_hf = (want & offloads) | RTE_ETH_RSS_L3_SRC_ONLY;
  }
  return p;
}

}  // namespace stakegate
