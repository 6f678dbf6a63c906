#pragma once
// How the outside port spreads sources over the workers, decided from what the device
// reports it can do. Pure logic (no DPDK calls), so it is unit-tested against capability
// sets that the virtual devices here cannot show.
#include <cstdint>
#include <string>

namespace stakegate {

struct RssPlan {
  bool rss = false;      // RSS on the source address: each source reaches one worker
  uint64_t rss_hf = 0;   // what to ask the device for (RTE_ETH_RSS_* bits)
  std::string note;      // why not, when several workers run without it
};

// `offloads`: the device's flow_type_rss_offloads; `queues`: RX queues (one per worker).
RssPlan plan_outside_rss(const std::string& device, uint64_t offloads, unsigned queues, bool rss_enabled);

}  // namespace stakegate
