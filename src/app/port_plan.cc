#include "port_plan.h"

#include <rte_ethdev.h>

#include <cstdio>
#include <cstring>

namespace stakegate {
namespace {

constexpr uint64_t kL3Types = RTE_ETH_RSS_IPV4 | RTE_ETH_RSS_FRAG_IPV4 | RTE_ETH_RSS_NONFRAG_IPV4_OTHER |
                              RTE_ETH_RSS_IPV6 | RTE_ETH_RSS_FRAG_IPV6 | RTE_ETH_RSS_NONFRAG_IPV6_OTHER;
constexpr uint64_t kL4Types = RTE_ETH_RSS_NONFRAG_IPV4_TCP | RTE_ETH_RSS_NONFRAG_IPV4_UDP |
                              RTE_ETH_RSS_NONFRAG_IPV4_SCTP | RTE_ETH_RSS_NONFRAG_IPV6_TCP |
                              RTE_ETH_RSS_NONFRAG_IPV6_UDP | RTE_ETH_RSS_NONFRAG_IPV6_SCTP | RTE_ETH_RSS_PORT |
                              RTE_ETH_RSS_L4_SRC_ONLY | RTE_ETH_RSS_L4_DST_ONLY;

uint64_t only_flag(PortSide side) { return side == PortSide::kOutside ? RTE_ETH_RSS_L3_SRC_ONLY : RTE_ETH_RSS_L3_DST_ONLY; }
const char* address(PortSide side) { return side == PortSide::kOutside ? "source" : "destination"; }

std::string hex(uint64_t v) {
  char b[32];
  std::snprintf(b, sizeof b, "0x%llx", static_cast<unsigned long long>(v));
  return b;
}

// The classic Microsoft RSS verification key (40 bytes), used by many drivers by default.
constexpr uint8_t kKey[kRssKeySize] = {0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3,
                                       0x8f, 0xb0, 0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3,
                                       0x80, 0x30, 0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa};

}  // namespace

const uint8_t* rss_key() { return kKey; }

bool offers_prefix64(uint64_t offloads) { return (offloads & RTE_ETH_RSS_L3_PRE64) != 0; }

RssPlan plan_rss(const std::string& device, PortSide side, uint64_t offloads, unsigned queues, bool rss_enabled,
                 bool prefix64) {
  RssPlan p;
  if (queues <= 1) return p;
  if (!rss_enabled) {
    p.note = "dataplane.rss is off";
    return p;
  }
  const uint64_t want = only_flag(side);
  if (!(offloads & want) || !(offloads & RTE_ETH_RSS_IPV4) || !(offloads & RTE_ETH_RSS_IPV6)) {
    p.refusal = std::to_string(queues) + " workers need RSS on the " + address(side) + " address alone, which " + device +
                " cannot do (its RSS offloads are " + hex(offloads) +
                "); run 1 worker, or set dataplane.rss: false to run them with rate / workers each";
    return p;
  }
  p.rss = true;
  p.rss_hf = (kL3Types & offloads) | want;
  p.prefix64 = prefix64 && offers_prefix64(offloads);
  if (p.prefix64) p.rss_hf |= RTE_ETH_RSS_L3_PRE64;
  return p;
}

std::string check_applied_rss(const std::string& device, PortSide side, uint64_t applied) {
  if (applied & kL4Types)
    return device + " applied RSS with L4 ports (" + hex(applied) + "): one source's connections would reach several workers";
  if (!(applied & only_flag(side)))
    return device + " applied RSS without hashing on the " + address(side) + " address alone (" + hex(applied) + ")";
  if (!(applied & kL3Types)) return device + " applied no IP hash (" + hex(applied) + ")";
  return "";
}

std::string check_applied_key(const std::string& device, const uint8_t* key, unsigned len) {
  if (len == 0) return "";
  if (len != kRssKeySize || std::memcmp(key, kKey, kRssKeySize) != 0)
    return device + " applied another RSS key than the one both ports were given: the two directions of a remote "
                    "address could reach different workers";
  return "";
}

std::vector<uint16_t> rss_reta(unsigned reta_size, unsigned queues) {
  std::vector<uint16_t> r(reta_size);
  for (unsigned i = 0; i < reta_size; ++i) r[i] = static_cast<uint16_t>(i % queues);
  return r;
}

MtuPlan plan_mtu(const std::string& device, unsigned mtu, unsigned min_mtu, unsigned max_mtu, uint64_t rx_offloads,
                 unsigned data_room) {
  MtuPlan p;
  if (mtu == 0) return p;
  if (mtu < min_mtu || mtu > max_mtu) {
    p.refusal = "dataplane.mtu: " + std::to_string(mtu) + " is outside what " + device + " accepts (" +
                std::to_string(min_mtu) + " to " + std::to_string(max_mtu) + ")";
    return p;
  }
  p.mtu = static_cast<uint16_t>(mtu);
  const unsigned frame = mtu_frame_bytes(mtu);
  if (frame <= data_room) return p;
  if (rx_offloads & RTE_ETH_RX_OFFLOAD_SCATTER) {
    p.scatter = true;  // longer frames arrive chained: the worker reads their headers in the first mbuf
    return p;
  }
  p.refusal = "dataplane.mtu: " + std::to_string(mtu) + "-byte packets make frames of up to " + std::to_string(frame) +
              " bytes, more than dataplane.mbuf_data_room (" + std::to_string(data_room) + "), and " + device +
              " cannot receive a frame into chained mbufs (no RX scatter); raise mbuf_data_room to " +
              std::to_string(frame) + " or lower the MTU";
  return p;
}

}  // namespace stakegate
