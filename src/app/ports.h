#pragma once
// The two DPDK ports: mbuf pool, queue set-up (one RX/TX queue pair per worker), the
// outside port's RSS, and what the ports report.
#include <rte_mempool.h>

#include <string>

#include "lcore_loop.h"
#include "stakegate/config/config.h"
#include "stakegate/control/api.h"

namespace stakegate {

struct PortIo {
  PortQueues q;
  std::string name;
  uint16_t rx_desc = 0, tx_desc = 0;  // per queue, as the device adjusted them
  bool rss = false;                   // spreads remote addresses over the workers (outside: source, inside: destination)
  std::string rss_note;               // why not, when several workers run without it
  uint16_t reta_size = 0;
  bool prefix64 = false;              // with rss: IPv6 addresses hashed on their /64 (read back from the device)
};

// The shared mbuf pool (throws std::runtime_error).
rte_mempool* create_mbuf_pool(const Config& cfg);

// Whether the port can hash IPv6 addresses on their /64 (RTE_ETH_RSS_L3_PRE64), before it is
// configured: both ports must, or neither does (port_plan.h).
bool port_offers_prefix64(const Config& cfg, const char* which, const PortSpec& spec);

// Configures and starts a port (throws std::runtime_error naming the config key or device).
// `prefix64`: hash IPv6 addresses on their /64 where RSS is on (both ports offer it).
PortIo setup_port(const Config& cfg, const char* which, const PortSpec& spec, rte_mempool* pool, bool prefix64);

// Warns when the pool is smaller than what the rings and per-core caches can hold at once:
// a link that stops completing transmits would then starve RX (rx_nombuf).
void check_pool_size(const Config& cfg, const PortIo& outside, const PortIo& inside);

struct PortStats {
  uint64_t ipackets = 0, opackets = 0, imissed = 0, rx_nombuf = 0, oerrors = 0, ierrors = 0;
};
PortStats port_stats(const PortIo& io);

// The port's link now, without waiting for it to settle (name and changes left empty).
PortLink port_link(const PortIo& io);

void stop_port(const PortIo& io);  // net_pcap flushes its tx_pcap here

}  // namespace stakegate
