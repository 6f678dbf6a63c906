// The verdict order of DESIGN.md, end to end through Worker::process_outside (and the
// sessions process_inside opens), with time injected: every row of the order is
// provoked and checked, including counters.
#include <gtest/gtest.h>

#include "packet_builder.h"
#include "stakegate/report/counters.h"
#include "test_util.h"
#include "worker_fixture.h"

using namespace stakegate;
using stakegate::testing::build_frame;
using stakegate::testing::FrameSpec;
using stakegate::testing::TcpFlow;

namespace {

constexpr uint64_t kMs = 1'000'000;
const std::string kEjected = "aa00000000000000000000000000000000000000000000000000000000000009";

class WorkerTest : public ::testing::Test {
 protected:
  void SetUp() override { load(""); }

  void load(const std::string& tail, unsigned table = 1024) {
    std::string y = stakegate::testing::base_config("", tail);
    // An ejected consensus node, expressed inline.
    y.insert(y.find("roles:"), "    - {node_id: \"" + kEjected + "\", role: consensus, address: \"198.18.1.9:3569\", ejected: true}\n");
    f_.load(y, 1, table);
  }
  void rebuild(unsigned workers, unsigned table = 1024) { f_.plan_and_bind(workers, table); }
  Verdict send(const FrameSpec& f, uint64_t now) { return f_.send(build_frame(f), now); }
  Verdict send_raw(const std::vector<uint8_t>& b, uint64_t now) { return f_.send(b, now); }
  static FrameSpec from(const char* src, uint16_t port = 3569, uint8_t proto = 6) {
    FrameSpec f;
    f.src = *parse_ip(src);
    f.dst = f.src.is_v4 ? *parse_ip("198.18.255.1") : *parse_ip("2001:2::ff");
    f.dst_port = port;
    f.proto = proto;
    return f;
  }
  uint64_t count(TrafficClass c, Verdict v) const { return f_.count(c, v); }

  stakegate::testing::WorkerFixture f_;
  Config& cfg_ = f_.cfg;
  StakePlan& plan_ = f_.plan;
  std::unique_ptr<Worker>& worker_ = f_.worker;
};

}  // namespace

TEST_F(WorkerTest, ArpPassesWithinTheInfraBudgetOtherEtherTypesAreDenied) {
  auto arp = stakegate::testing::build_arp(*parse_ip("198.18.0.1"), *parse_ip("198.18.0.2"));
  int passed = 0;
  for (int i = 0; i < 300; ++i) passed += send_raw(arp, 0) == Verdict::kPass;
  EXPECT_EQ(passed, 100);  // infra: 1,000 pps, 100 ms of burst
  EXPECT_EQ(count(TrafficClass::kL2, Verdict::kInfraOverRate), 200u);
  EXPECT_EQ(send_raw(arp, 10 * kMs), Verdict::kPass);  // refilled
  EXPECT_EQ(send_raw(stakegate::testing::build_lldp(), 20 * kMs), Verdict::kL2Denied);
  load("infra: {ethertypes: [\"0x88cc\"]}\n");
  EXPECT_EQ(send_raw(stakegate::testing::build_lldp(), 0), Verdict::kPass);  // allowed by the config
  auto mpls = stakegate::testing::build_lldp();
  mpls[12] = 0x88;
  mpls[13] = 0x47;  // IP inside MPLS skips classification: never passed unless listed
  EXPECT_EQ(send_raw(mpls, 0), Verdict::kL2Denied);
}

TEST_F(WorkerTest, MalformedBeforeEverythingElse) {
  auto b = build_frame(from("198.18.1.1"));
  b[14] = 0x55;  // version 5
  EXPECT_EQ(send_raw(b, 0), Verdict::kMalformed);
  EXPECT_EQ(count(TrafficClass::kNone, Verdict::kMalformed), 1u);
}

TEST_F(WorkerTest, SourcesInsideTheClusterAndMartiansAreSpoofed) {
  EXPECT_EQ(send(from("198.18.255.7", 9000), 0), Verdict::kSpoofed);
  EXPECT_EQ(send(from("2001:2::ff", 9000), 0), Verdict::kSpoofed);
  EXPECT_EQ(send(from("127.0.0.1", 9000), 0), Verdict::kSpoofed);
  EXPECT_EQ(send(from("224.0.0.5", 9000), 0), Verdict::kSpoofed);
  EXPECT_EQ(count(TrafficClass::kNone, Verdict::kSpoofed), 4u);
  EXPECT_EQ(send(from("198.18.254.7", 9000), 0), Verdict::kPass);  // just outside the prefix
}

TEST_F(WorkerTest, AVerifiedConnectionGetsTheNodesAllowance) {
  // 198.18.1.1: 12,500 pps, burst 1,250, on its verified connections.
  TcpFlow flow;
  ASSERT_EQ(f_.accept(flow, 0), Verdict::kPass);
  int passed = 1;
  for (int i = 0; i < 2000; ++i) passed += send_raw(flow.remote_data(), 0) == Verdict::kPass;
  EXPECT_EQ(passed, 1250);
  EXPECT_EQ(count(TrafficClass::kConsensus, Verdict::kOverRate), 751u);
  EXPECT_EQ(send_raw(flow.remote_data(), 1 * kMs), Verdict::kPass);  // 12.5 tokens later
  const NodeMeter& m = f_.meter("198.18.1.1");
  EXPECT_EQ(m.passed, 1251u);
  EXPECT_EQ(m.dropped_over_rate, 751u);
  EXPECT_EQ(worker_->counters().sessions_verified, 1u);
  // The SYN itself came through the request channel.
  EXPECT_EQ(worker_->meter_cold(f_.slot_of("198.18.1.1")).passed_request, 1u);
}

TEST_F(WorkerTest, TrafficOffVerifiedConnectionsGetsOnlyTheRequestChannel) {
  // 5 % of 12,500 pps: 625 pps, a burst of 63. Anyone can send these: a flood of them takes
  // nothing from the node's verified connection.
  TcpFlow flow;
  ASSERT_EQ(f_.accept(flow, 0), Verdict::kPass);
  int passed = 0;
  for (int i = 0; i < 500; ++i) passed += send(from("198.18.1.1", 3569, 17), 0) == Verdict::kPass;  // UDP
  // They arrive with the hop limit of the node's verified connection, so they take the
  // bucket of it, which the SYN (before any connection verified) did not touch.
  EXPECT_EQ(passed, 63);
  EXPECT_EQ(count(TrafficClass::kConsensus, Verdict::kRequestOverRate), 437u);
  for (int i = 0; i < 100; ++i) ASSERT_EQ(send_raw(flow.remote_data(), 0), Verdict::kPass);
  // A spoofer who knows the 4-tuple but not the sequence numbers: request channel too.
  EXPECT_EQ(send_raw(flow.forged(0xdead0000, 0xbeef0000), 0), Verdict::kRequestOverRate);
  EXPECT_EQ(send_raw(flow.remote_data(), 0), Verdict::kPass);
}

TEST_F(WorkerTest, PortDeniedOffSessionsButNotOnThem) {
  EXPECT_EQ(send(from("198.18.1.1", 9000), 0), Verdict::kPortDenied);
  EXPECT_EQ(send(from("198.18.1.1", 3569, 1), 0), Verdict::kPortDenied);  // ICMP: no port, role lists ports
  EXPECT_EQ(send(from("2001:2::3", 9000), 0), Verdict::kPass);             // access allows 9000, over IPv6
  EXPECT_EQ(send(from("2001:2::3", 22), 0), Verdict::kPortDenied);
  FrameSpec frag = from("198.18.1.1", 0);
  frag.frag_offset = 100;  // non-first fragment: policed by source, no port to check
  EXPECT_EQ(send(frag, 0), Verdict::kPass);
  // The cluster dials the node from an ephemeral port: the node's answer to port 40000
  // is no port_denied, it is the session's (and, once it proves receipt, verified).
  TcpFlow out;
  out.lport = 40000;
  out.rport = 3569;
  f_.inside(out.local_syn(), 0);
  EXPECT_EQ(send_raw(out.remote_syn_ack(), 0), Verdict::kPass);
  EXPECT_EQ(send_raw(out.remote_data(), 0), Verdict::kPass);
  EXPECT_EQ(f_.meter("198.18.1.1").passed, 2u);  // both on the verified connection
}

TEST_F(WorkerTest, EjectedNodeDropsEvenOnAllowedPort) {
  EXPECT_EQ(send(from("198.18.1.9"), 0), Verdict::kEjected);
  EXPECT_EQ(count(TrafficClass::kConsensus, Verdict::kEjected), 1u);
}

TEST_F(WorkerTest, BlocklistComesBeforeNodeChecksAndCoversUnknownSources) {
  load("blocklist:\n  - {cidr: 198.18.1.0/30}\n  - {node_id: \"" + kEjected + "\"}\n  - {cidr: \"2001:db8::/32\"}\n");
  EXPECT_EQ(send(from("198.18.1.1"), 0), Verdict::kBlocklisted);  // a node inside the CIDR
  EXPECT_EQ(send(from("198.18.1.9"), 0), Verdict::kBlocklisted);  // ejected, but blocklisted first
  EXPECT_EQ(send(from("198.18.1.2"), 0), Verdict::kBlocklisted);
  EXPECT_EQ(send(from("198.18.1.3", 9000), 0), Verdict::kBlocklisted);  // unknown source in the CIDR
  EXPECT_EQ(send(from("2001:db8::77", 9000), 0), Verdict::kBlocklisted);
  EXPECT_EQ(send(from("198.18.1.4", 9000), 0), Verdict::kPass);
  EXPECT_EQ(count(TrafficClass::kUnregistered, Verdict::kBlocklisted), 2u);
}

TEST_F(WorkerTest, UnregisteredOnlyReachPublicPorts) {
  EXPECT_EQ(send(from("198.19.0.1", 3569), 0), Verdict::kUnregistered);
  EXPECT_EQ(send(from("198.19.0.1", 3569, 17), 0), Verdict::kUnregistered);
  EXPECT_EQ(send(from("198.19.0.1", 0, 1), 0), Verdict::kUnregistered);  // ICMP has no port
  FrameSpec frag = from("198.19.0.1", 9000);
  frag.frag_offset = 10;
  EXPECT_EQ(send(frag, 0), Verdict::kUnregistered);  // no first fragment passed: it cannot show where it goes
  EXPECT_EQ(send(from("198.19.0.1", 9000), 0), Verdict::kPass);
}

// A non-first fragment that overtook its first (run and replay hold them): held, nothing
// counted, and given back once its first passed it follows it as an in-order fragment;
// one whose first never passes is `unregistered` kHoldNs after it arrived; beyond kHoldMax
// held, a frame is decided at once.
TEST_F(WorkerTest, AFragmentAheadOfItsFirstIsHeldUntilItsFirstPasses) {
  cfg_.unregistered.per_source_pps = 100;  // a 10-packet burst: the fragments are not over the rate
  rebuild(1);
  Worker& w = *worker_;
  w.set_holding(true);
  auto fragment = [&](const char* src, uint16_t id, uint16_t port, uint16_t offset) {
    FrameSpec f = from(src, port, 17);
    f.frag_id = id;
    f.frag_offset = offset;
    f.more_fragments = offset == 0;
    return build_frame(f);
  };
  auto decide_held = [&](std::vector<std::vector<uint8_t>>& frames, uint64_t now) {
    std::vector<PacketView> views;
    for (auto& b : frames) views.push_back({b.data(), static_cast<uint32_t>(b.size())});
    std::vector<Verdict> v(views.size());
    w.process_held(views.data(), static_cast<uint16_t>(views.size()), now, v.data());
    std::vector<std::vector<uint8_t>> kept;
    for (size_t i = 0; i < v.size(); ++i)
      if (v[i] == Worker::kHold) kept.push_back(frames[i]);
    frames = kept;
    return v;
  };
  // The client sent before (a new source's bucket starts with one packet): it has its burst.
  EXPECT_EQ(send(from("198.19.0.1", 9000), 0), Verdict::kPass);
  constexpr uint64_t t0 = 200 * kMs;
  std::vector<std::vector<uint8_t>> held;
  // 198.19.0.1's datagram to the public port, its two last fragments first; 198.19.0.2's to
  // a closed one, same order.
  for (uint16_t off : {370, 185}) {
    held.push_back(fragment("198.19.0.1", 7, 9000, off));
    EXPECT_EQ(send_raw(held.back(), t0), Worker::kHold);
  }
  held.push_back(fragment("198.19.0.2", 8, 53, 185));
  EXPECT_EQ(send_raw(held.back(), t0 + 1 * kMs), Worker::kHold);
  EXPECT_EQ(w.held(), 3u);
  EXPECT_FALSE(w.held_due(t0 + 10 * kMs));
  const uint64_t total = count(TrafficClass::kUnregistered, Verdict::kPass) + count(TrafficClass::kUnregistered, Verdict::kUnregistered);
  EXPECT_EQ(total, 1u);  // nothing counted while held

  EXPECT_EQ(send_raw(fragment("198.19.0.2", 8, 53, 0), t0 + 10 * kMs), Verdict::kUnregistered);
  EXPECT_FALSE(w.held_due(t0 + 10 * kMs));  // a first that was dropped releases nothing
  EXPECT_EQ(send_raw(fragment("198.19.0.1", 7, 9000, 0), t0 + 10 * kMs), Verdict::kPass);
  EXPECT_TRUE(w.held_due(t0 + 10 * kMs));
  std::vector<Verdict> v = decide_held(held, t0 + 10 * kMs);
  EXPECT_EQ(v, (std::vector<Verdict>{Verdict::kPass, Verdict::kPass, Worker::kHold}));
  EXPECT_EQ(w.held(), 1u);
  EXPECT_EQ(count(TrafficClass::kUnregistered, Verdict::kPass), 4u);

  // The other keeps its own time: due 50 ms after it arrived, then unregistered.
  EXPECT_FALSE(w.held_due(t0 + 50 * kMs));
  EXPECT_TRUE(w.held_due(t0 + 51 * kMs));
  v = decide_held(held, t0 + 51 * kMs);
  EXPECT_EQ(v, (std::vector<Verdict>{Verdict::kUnregistered}));
  EXPECT_EQ(w.held(), 0u);
  EXPECT_EQ(count(TrafficClass::kUnregistered, Verdict::kUnregistered), 2u);
  EXPECT_EQ(w.counters().fragments_held, 3u);
  EXPECT_EQ(w.counters().non_first_fragments, 3u);

  // At most kHoldMax: the next is decided at once.
  for (uint16_t i = 0; i < Worker::kHoldMax; ++i) EXPECT_EQ(send_raw(fragment("198.19.0.3", 100 + i, 9000, 185), t0 + 100 * kMs), Worker::kHold);
  EXPECT_EQ(send_raw(fragment("198.19.0.3", 99, 9000, 185), t0 + 100 * kMs), Verdict::kUnregistered);
  EXPECT_EQ(w.counters().fragments_held, 3u + Worker::kHoldMax);
}

TEST_F(WorkerTest, UnregisteredPerSourceBucket) {
  // per_source_pps 10, burst 100 ms -> 1 packet.
  EXPECT_EQ(send(from("198.19.0.1", 9000), 0), Verdict::kPass);
  EXPECT_EQ(send(from("198.19.0.1", 9000), 0), Verdict::kUnregisteredOverRate);
  EXPECT_EQ(send(from("198.19.0.2", 9000), 0), Verdict::kPass);  // another source has its own bucket
  EXPECT_EQ(send(from("198.19.0.1", 9000), 100 * kMs), Verdict::kPass);
}

TEST_F(WorkerTest, AnIpv6SenderIsItsSlash64) {
  cfg_.unregistered.per_source_pps = 100;  // a 10-packet burst
  rebuild(1);
  int passed = 0;
  for (int i = 1; i <= 40; ++i) {  // one client cycling through addresses of its own /64
    FrameSpec f = from("2001:2:0:77::1", 9000);
    f.src.v6.bytes[15] = static_cast<uint8_t>(i);
    passed += send(f, 0) == Verdict::kPass;
  }
  EXPECT_EQ(passed, 1);  // a new /64 starts with one packet, and every address is that /64
  EXPECT_EQ(send(from("2001:2:0:78::1", 9000), 0), Verdict::kPass);  // another /64
  EXPECT_EQ(send(from("2001:2:0:77::1", 9000), 50 * kMs), Verdict::kPass);  // refills at its rate
}

TEST_F(WorkerTest, UnregisteredSharedPoolCapsTheTotal) {
  // Pool: 5% of 100k = 5000 pps, burst 500. 2000 distinct sources x 1 packet at t=0.
  int passed = 0;
  for (uint32_t s = 0; s < 2000; ++s) {
    FrameSpec f = from("198.19.0.0", 9000);
    f.src = IpAddr::from_v4(0xC6130000 + s);
    passed += send(f, 0) == Verdict::kPass;
  }
  EXPECT_EQ(passed, 500);
  EXPECT_EQ(count(TrafficClass::kUnregistered, Verdict::kUnregisteredOverRate), 1500u);
}

TEST_F(WorkerTest, FullUnregisteredTableRecyclesTheOldestSource) {
  load("", 64);  // 16 sets x 4 ways
  for (uint32_t s = 0; s < 64 * 8; ++s) {
    FrameSpec f = from("198.19.0.0", 9000);
    f.src = IpAddr::from_v4(0xC6140000 + s);
    send(f, s * kMs);
  }
  EXPECT_EQ(send(from("198.19.9.9", 9000), 10'000 * kMs), Verdict::kPass);
  // Sources that were active (not refilled) when recycled are counted.
  EXPECT_GT(worker_->counters().unregistered_evictions, 0u);
}

TEST_F(WorkerTest, VlanTaggedTrafficIsClassifiedLikeUntagged) {
  FrameSpec f = from("2001:2::3", 9000);
  f.vlans = {200, 100};
  EXPECT_EQ(send(f, 0), Verdict::kPass);
  f.dst_port = 22;
  EXPECT_EQ(send(f, 0), Verdict::kPortDenied);
}

TEST_F(WorkerTest, ByteBucketLimitsLargeFramesAndHoldsAtLeastOneFrame) {
  // 10 MB/s in all; consensus 0.5 -> node 1 (a quarter of the weight): 1.25 MB/s, 125 kB burst.
  cfg_.capacity_bps = 80'000'000;
  rebuild(1);
  TcpFlow flow;
  flow.frame_size = 1500;
  ASSERT_EQ(f_.accept(flow, 0), Verdict::kPass);
  int passed = 1;
  for (int i = 0; i < 200; ++i) passed += send_raw(flow.remote_data(), 0) == Verdict::kPass;
  EXPECT_EQ(passed, 125000 / 1500);  // pps alone would allow 1250
  // A tiny byte rate (min_pps 5: 5 x 1,538 B/s, 769 bytes of burst) still passes full frames.
  cfg_.capacity_bps = 1000;
  cfg_.roles[static_cast<int>(Role::kConsensus)].min_pps = 5;
  rebuild(1);
  TcpFlow slow;
  slow.frame_size = 1500;
  ASSERT_EQ(f_.accept(slow, 0), Verdict::kPass);
  EXPECT_EQ(send_raw(slow.remote_data(), 2000 * kMs), Verdict::kPass);
}

TEST_F(WorkerTest, RatesAreSplitAcrossWorkers) {
  rebuild(2);
  TcpFlow flow;
  f_.accept(flow, 0);
  int passed = 1;
  for (int i = 0; i < 2000; ++i) passed += send_raw(flow.remote_data(), 0) == Verdict::kPass;
  EXPECT_EQ(passed, 625);
}

// A rebind (here a full one: a new snapshot of the same table) keeps every meter's
// counters, including a source that never passes anything (ejected: rate 0).
TEST_F(WorkerTest, RebindKeepsCountersOfEverySource) {
  EXPECT_EQ(send(from("198.18.1.9"), 0), Verdict::kEjected);
  TcpFlow flow;
  EXPECT_EQ(f_.accept(flow, 0), Verdict::kPass);
  auto again = SnapshotBuilder::build(cfg_, plan_, Sharding::even(1));
  worker_->bind(again.get());
  f_.snap = again;
  EXPECT_EQ(worker_->meter_cold(plan_.sources[plan_.nodes[3].source].slot).dropped_ejected, 1u);
  EXPECT_EQ(worker_->meter(plan_.sources[plan_.nodes[0].source].slot).passed, 1u);
  EXPECT_EQ(send_raw(flow.remote_data(), 0), Verdict::kPass);  // and its sessions
}

// The unregistered table uses all of its sets: 512 sources active at once in a table of
// 1,024 (256 sets of 4) overflow only where hashing puts more than 4 in one set (21 with
// this seed); when only half the sets were used, 100.
TEST_F(WorkerTest, UnregisteredTableUsesEverySet) {
  load("", 1024);
  for (uint32_t s = 0; s < 512; ++s) {
    FrameSpec f = from("198.19.0.0", 9000);
    f.src = IpAddr::from_v4(0xC6130000 + s);
    send(f, 0);
  }
  EXPECT_LT(worker_->counters().unregistered_evictions, 40u);
}

// The periodic summary line (and the final one) names evicted sessions, the cluster's own
// connections losing their state, only when there are some.
TEST(SummaryLine, SaysWhenSessionsWereEvicted) {
  Totals t;
  EXPECT_EQ(summary_line(t, 0).find("sessions"), std::string::npos);
  t.c.sessions_evicted = 5;
  EXPECT_NE(summary_line(t, 2).find("| tx dropped 2 | sessions evicted 5 (raise limits.sessions)"), std::string::npos);
}
