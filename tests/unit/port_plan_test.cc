// How the ports spread traffic over workers, decided from device capability sets the
// virtual devices here cannot show (src/app/port_plan.h): RSS on the one address the side
// needs and never L4 ports, refusal when a device cannot, rate / workers only when the
// operator turned RSS off, and what a device applied checked back.
#include <gtest/gtest.h>
#include <rte_ethdev.h>

#include "port_plan.h"

using namespace stakegate;

namespace {

// Capability sets as real drivers report them (flow_type_rss_offloads).
constexpr uint64_t kIp = RTE_ETH_RSS_IPV4 | RTE_ETH_RSS_FRAG_IPV4 | RTE_ETH_RSS_NONFRAG_IPV4_OTHER | RTE_ETH_RSS_IPV6 |
                         RTE_ETH_RSS_FRAG_IPV6 | RTE_ETH_RSS_NONFRAG_IPV6_OTHER;
constexpr uint64_t kL4 = RTE_ETH_RSS_NONFRAG_IPV4_TCP | RTE_ETH_RSS_NONFRAG_IPV4_UDP | RTE_ETH_RSS_NONFRAG_IPV6_TCP |
                         RTE_ETH_RSS_NONFRAG_IPV6_UDP;
constexpr uint64_t kSrcDstOnly = RTE_ETH_RSS_L3_SRC_ONLY | RTE_ETH_RSS_L3_DST_ONLY;
constexpr uint64_t kModernNic = kIp | kL4 | kSrcDstOnly | RTE_ETH_RSS_L4_SRC_ONLY | RTE_ETH_RSS_L4_DST_ONLY;  // ice, mlx5
constexpr uint64_t kOlderNic = kIp | kL4;  // hashes IP pairs and 4-tuples only (ixgbe-like)

}  // namespace

TEST(PortPlan, OneWorkerNeedsNoRss) {
  for (uint64_t caps : {uint64_t{0}, kOlderNic, kModernNic}) {
    RssPlan p = plan_rss("dev", PortSide::kOutside, caps, 1, true);
    EXPECT_FALSE(p.rss);
    EXPECT_TRUE(p.refusal.empty());
    EXPECT_TRUE(p.note.empty());
  }
}

TEST(PortPlan, SeveralWorkersHashTheOutsideSourceAndTheInsideDestinationWithoutPorts) {
  RssPlan out = plan_rss("dev", PortSide::kOutside, kModernNic, 4, true);
  ASSERT_TRUE(out.rss) << out.refusal;
  EXPECT_TRUE(out.rss_hf & RTE_ETH_RSS_L3_SRC_ONLY);
  EXPECT_FALSE(out.rss_hf & RTE_ETH_RSS_L3_DST_ONLY);
  EXPECT_EQ(out.rss_hf & (kL4 | RTE_ETH_RSS_L4_SRC_ONLY | RTE_ETH_RSS_L4_DST_ONLY), 0u);
  EXPECT_EQ(out.rss_hf & kIp, kIp);
  RssPlan in = plan_rss("dev", PortSide::kInside, kModernNic, 4, true);
  ASSERT_TRUE(in.rss);
  EXPECT_TRUE(in.rss_hf & RTE_ETH_RSS_L3_DST_ONLY);
  EXPECT_FALSE(in.rss_hf & RTE_ETH_RSS_L3_SRC_ONLY);
  EXPECT_EQ(in.rss_hf & kL4, 0u);
  // What a device applied as asked passes the read-back check.
  EXPECT_EQ(check_applied_rss("dev", PortSide::kOutside, out.rss_hf), "");
  EXPECT_EQ(check_applied_rss("dev", PortSide::kInside, in.rss_hf), "");
}

TEST(PortPlan, ADeviceThatCannotHashOnTheSourceAloneIsRefused) {
  for (uint64_t caps : {uint64_t{0}, kOlderNic, kIp | RTE_ETH_RSS_L3_DST_ONLY}) {
    RssPlan p = plan_rss("0000:3b:00.0", PortSide::kOutside, caps, 2, true);
    EXPECT_FALSE(p.rss);
    EXPECT_NE(p.refusal.find("source address alone"), std::string::npos) << p.refusal;
    EXPECT_NE(p.refusal.find("0000:3b:00.0"), std::string::npos);
    EXPECT_NE(p.refusal.find("dataplane.rss: false"), std::string::npos);
  }
  // The inside needs the destination alone.
  RssPlan in = plan_rss("dev", PortSide::kInside, kIp | RTE_ETH_RSS_L3_SRC_ONLY, 2, true);
  EXPECT_NE(in.refusal.find("destination address alone"), std::string::npos) << in.refusal;
}

// IPv6 addresses hashed on their /64 (RTE_ETH_RSS_L3_PRE64, ice-like devices) when both
// ports offer it (the caller says so), with the one address the side needs; never on one
// port alone, never on a device that does not offer it, and the device's read-back still
// checked as without it.
TEST(PortPlan, BothPortsHashIpv6OnTheSlash64WhereBothCan) {
  const uint64_t pre = kModernNic | RTE_ETH_RSS_L3_PRE64;
  EXPECT_TRUE(offers_prefix64(pre));
  EXPECT_FALSE(offers_prefix64(kModernNic));
  for (PortSide side : {PortSide::kOutside, PortSide::kInside}) {
    RssPlan p = plan_rss("dev", side, pre, 2, true, true);
    ASSERT_TRUE(p.rss) << p.refusal;
    EXPECT_TRUE(p.prefix64);
    EXPECT_TRUE(p.rss_hf & RTE_ETH_RSS_L3_PRE64);
    EXPECT_EQ(p.rss_hf & (kL4 | RTE_ETH_RSS_L4_SRC_ONLY | RTE_ETH_RSS_L4_DST_ONLY), 0u);
    EXPECT_EQ(check_applied_rss("dev", side, p.rss_hf), "");
    // The other port cannot: neither does.
    RssPlan q = plan_rss("dev", side, pre, 2, true, false);
    EXPECT_FALSE(q.prefix64);
    EXPECT_FALSE(q.rss_hf & RTE_ETH_RSS_L3_PRE64);
    // This one cannot.
    RssPlan r = plan_rss("dev", side, kModernNic, 2, true, true);
    ASSERT_TRUE(r.rss);
    EXPECT_FALSE(r.prefix64);
    EXPECT_FALSE(r.rss_hf & RTE_ETH_RSS_L3_PRE64);
  }
  // One worker, or RSS off: nothing to hash.
  EXPECT_FALSE(plan_rss("dev", PortSide::kOutside, pre, 1, true, true).prefix64);
  EXPECT_FALSE(plan_rss("dev", PortSide::kOutside, pre, 2, false, true).prefix64);
}

TEST(PortPlan, RssOffSplitsTheRatesAndSaysSo) {
  RssPlan p = plan_rss("dev", PortSide::kOutside, kModernNic, 2, false);
  EXPECT_FALSE(p.rss);
  EXPECT_TRUE(p.refusal.empty());
  EXPECT_EQ(p.note, "dataplane.rss is off");
}

TEST(PortPlan, WhatTheDeviceAppliedIsCheckedBack) {
  const uint64_t asked = kIp | RTE_ETH_RSS_L3_SRC_ONLY;
  // A driver that silently added the 4-tuple types: one source's connections would spread.
  EXPECT_NE(check_applied_rss("dev", PortSide::kOutside, asked | RTE_ETH_RSS_NONFRAG_IPV4_TCP).find("L4 ports"),
            std::string::npos);
  // One that dropped the source-only flag (hashing the address pair).
  EXPECT_NE(check_applied_rss("dev", PortSide::kOutside, kIp).find("source address alone"), std::string::npos);
  EXPECT_NE(check_applied_rss("dev", PortSide::kInside, asked).find("destination address alone"), std::string::npos);
  EXPECT_NE(check_applied_rss("dev", PortSide::kOutside, RTE_ETH_RSS_L3_SRC_ONLY).find("no IP hash"), std::string::npos);
  // The key: ours, or unknown (length 0), is fine; another one is not.
  EXPECT_EQ(check_applied_key("dev", rss_key(), kRssKeySize), "");
  EXPECT_EQ(check_applied_key("dev", nullptr, 0), "");
  uint8_t other[kRssKeySize];
  std::copy(rss_key(), rss_key() + kRssKeySize, other);
  other[7] ^= 1;
  EXPECT_NE(check_applied_key("dev", other, kRssKeySize).find("another RSS key"), std::string::npos);
}

TEST(PortPlan, TheRedirectionTableSpreadsEntriesOverTheQueues) {
  auto r = rss_reta(128, 3);
  ASSERT_EQ(r.size(), 128u);
  for (unsigned i = 0; i < 128; ++i) EXPECT_EQ(r[i], i % 3);
}

// dataplane.mtu: left alone when not set; refused outside the device's range; a frame of
// that MTU that does not fit in one mbuf needs RX scatter (the worker then reads chained
// frames by their first mbuf), and a device without it is refused with what to change.
TEST(PortPlan, MtuFitsTheMbufOrTheDeviceChainsFrames) {
  MtuPlan p = plan_mtu("dev", 0, 68, 9600, 0, 2048);
  EXPECT_EQ(p.mtu, 0);
  EXPECT_FALSE(p.scatter);
  EXPECT_TRUE(p.refusal.empty());

  p = plan_mtu("dev", 1500, 68, 9600, 0, 2048);  // 1,526-byte frames fit in 2,048
  EXPECT_EQ(p.mtu, 1500);
  EXPECT_FALSE(p.scatter);
  EXPECT_TRUE(p.refusal.empty());

  p = plan_mtu("dev", 9000, 68, 9600, RTE_ETH_RX_OFFLOAD_SCATTER, 2048);
  EXPECT_EQ(p.mtu, 9000);
  EXPECT_TRUE(p.scatter);
  EXPECT_TRUE(p.refusal.empty());

  p = plan_mtu("dev", 9000, 68, 9600, RTE_ETH_RX_OFFLOAD_SCATTER, 9026);  // fits exactly: no chains
  EXPECT_FALSE(p.scatter);

  p = plan_mtu("net_x", 9000, 68, 9600, RTE_ETH_RX_OFFLOAD_CHECKSUM, 2048);
  EXPECT_NE(p.refusal.find("dataplane.mtu"), std::string::npos) << p.refusal;
  EXPECT_NE(p.refusal.find("net_x"), std::string::npos) << p.refusal;
  EXPECT_NE(p.refusal.find("raise mbuf_data_room to 9026"), std::string::npos) << p.refusal;

  p = plan_mtu("net_x", 9000, 68, 1500, RTE_ETH_RX_OFFLOAD_SCATTER, 9100);
  EXPECT_NE(p.refusal.find("outside what net_x accepts (68 to 1500)"), std::string::npos) << p.refusal;
  p = plan_mtu("net_x", 100, 576, 9600, 0, 2048);
  EXPECT_FALSE(p.refusal.empty());
}
