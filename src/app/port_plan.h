#pragma once
// How the ports spread traffic over the workers, decided from what a device reports it
// can do, and checked against what it applied. Pure logic (no DPDK calls: only DPDK's
// flag values), so it is unit-tested against capability sets the virtual devices here
// cannot show (tests/unit/port_plan_test.cc).
//
// With several workers each remote address must reach one worker in both directions:
// its packets from the outside (hashed on their source address alone) and the cluster's
// packets to it from the inside (hashed on their destination address alone), with the
// same key and redirection table on both ports. That worker then enforces the address's
// whole rate and holds its sessions. Hashing L4 ports as well would spread one source's
// connections over workers, each enforcing its whole rate.
//
// An unregistered IPv6 source is policed by its /64 (one host owns a /64 and picks any
// address in it). Hashed on the whole address, one /64's addresses reach every worker, each
// with a bucket for it: up to workers x its rate. Where both ports can hash IPv6 addresses
// on their first 64 bits (RTE_ETH_RSS_L3_PRE64), they do, and a /64 reaches one worker.
#include <cstdint>
#include <string>
#include <vector>

namespace stakegate {

enum class PortSide { kOutside, kInside };

struct RssPlan {
  bool rss = false;      // configure RSS (several workers, the device can and rss is not off)
  uint64_t rss_hf = 0;   // what to ask for (RTE_ETH_RSS_* bits)
  std::string refusal;   // why the gateway must not start (empty: it may)
  std::string note;      // why rates are split over the workers (rss off)
  bool prefix64 = false; // IPv6 addresses are hashed on their /64 (RTE_ETH_RSS_L3_PRE64 in rss_hf)
};

// Whether a device can hash IPv6 addresses on their first 64 bits alone.
bool offers_prefix64(uint64_t offloads);

// `offloads`: the device's flow_type_rss_offloads; `queues`: RX queues (one per worker);
// `prefix64`: hash IPv6 addresses on their /64, when both ports offer it (the two
// directions of a remote address must hash alike, so one port alone never does).
RssPlan plan_rss(const std::string& device, PortSide side, uint64_t offloads, unsigned queues, bool rss_enabled,
                 bool prefix64 = false);

// What a device applied (its rss_hf read back): "" when it hashes on the one address the
// side needs and no L4 port, else why not.
std::string check_applied_rss(const std::string& device, PortSide side, uint64_t applied);

// The key a device applied (read back): "" when it is ours (or the device does not say),
// else why the two directions of a remote address would no longer meet on one worker.
std::string check_applied_key(const std::string& device, const uint8_t* key, unsigned len);

// The MTU both ports are configured with (docs/configuration.md, dataplane.mtu), and
// whether a received frame may arrive in chained mbufs (RX scatter): needed when a frame
// of that MTU does not fit in one mbuf's data room. A device that cannot chain, or whose
// MTU range excludes it, is refused with what to change.
struct MtuPlan {
  uint16_t mtu = 0;      // 0: leave the device's default
  bool scatter = false;  // enable RTE_ETH_RX_OFFLOAD_SCATTER
  std::string refusal;   // why the gateway must not start (empty: it may)
};
// The longest frame an `mtu`-byte packet makes: Ethernet header, two VLAN tags, CRC.
constexpr unsigned mtu_frame_bytes(unsigned mtu) { return mtu + 14 + 8 + 4; }
// `mtu`: dataplane.mtu (0: not set); the device's min_mtu, max_mtu and rx_offload_capa;
// `data_room`: dataplane.mbuf_data_room.
MtuPlan plan_mtu(const std::string& device, unsigned mtu, unsigned min_mtu, unsigned max_mtu, uint64_t rx_offloads,
                 unsigned data_room);

// The redirection table both ports get: entry i to queue i % queues.
std::vector<uint16_t> rss_reta(unsigned reta_size, unsigned queues);

// The 40-byte Toeplitz key both ports get (the same key keeps both directions of a remote
// address on one worker). tests/integration/rss.py computes the same hash.
const uint8_t* rss_key();
inline constexpr unsigned kRssKeySize = 40;

}  // namespace stakegate
