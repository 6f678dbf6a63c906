// Peer score and graylist in the worker, with injected time: when a flooder is
// graylisted, what it is then allowed, when it recovers, that honest bursts never score,
// and what the evidence ring carries.
#include <gtest/gtest.h>

#include <cmath>

#include "packet_builder.h"
#include "test_util.h"
#include "worker_fixture.h"

using namespace stakegate;
using stakegate::testing::build_frame;
using stakegate::testing::FrameSpec;

namespace {

constexpr uint64_t kMs = 1'000'000, kS = 1'000'000'000;
// 198.18.1.1: consensus, 12,500 pps, burst 1,250 (base_config). 198.18.1.2: 37,500 pps.
constexpr double kRate = 12500, kBurst = 1250;

class ScoreTest : public ::testing::Test {
 protected:
  void SetUp() override { load(""); }

  void load(const std::string& tail, std::vector<std::string> evidence_nodes = {}) {
    f_.load(stakegate::testing::base_config("", tail));
    if (!evidence_nodes.empty()) {
      f_.cfg.evidence_nodes = std::move(evidence_nodes);
      f_.plan_and_bind();
    }
    // 198.18.1.1's connection to the cluster, verified: its packets are attributable.
    flow_ = stakegate::testing::TcpFlow{};
    f_.accept(flow_, 0);
    frame_ = flow_.remote_data();
  }
  static FrameSpec from(const char* src) {
    FrameSpec f;
    f.src = *parse_ip(src);
    f.dst = *parse_ip("198.18.255.1");
    f.dst_port = 3569;
    return f;
  }
  Verdict send(const std::vector<uint8_t>& b, uint64_t now) { return f_.send(b, now); }
  uint32_t slot_of(const char* ip) const { return f_.slot_of(ip); }
  bool graylisted(const char* ip = "198.18.1.1") const {
    return worker_->meter(slot_of(ip)).flags & SourcePolicy::kGraylisted;
  }
  // Sends `pps` packets per second from 198.18.1.1 during [from, to); returns passes.
  // Stops at the first packet after which `until` holds, and records when.
  template <typename Until>
  uint64_t flood(double pps, uint64_t from_ns, uint64_t to_ns, Until until, uint64_t* when = nullptr) {
    uint64_t passed = 0;
    const double step = 1e9 / pps;
    for (double t = static_cast<double>(from_ns); t < static_cast<double>(to_ns); t += step) {
      passed += send(frame_, static_cast<uint64_t>(t)) == Verdict::kPass;
      if (until()) {
        if (when) *when = static_cast<uint64_t>(t);
        break;
      }
    }
    return passed;
  }
  uint64_t flood(double pps, uint64_t from_ns, uint64_t to_ns) {
    return flood(pps, from_ns, to_ns, [] { return false; });
  }

  stakegate::testing::WorkerFixture f_;
  std::unique_ptr<Worker>& worker_ = f_.worker;
  stakegate::testing::TcpFlow flow_;
  std::vector<uint8_t> frame_;
};

// Flooding at k x its rate, a source empties its burst after burst_ms / (k - 1) and then
// loses (k - 1) seconds' worth of its rate every second, each costing the over_rate
// penalty (10): it crosses the threshold |graylist| / (penalty x (k - 1)) later
// (docs/operations.md): 11 ms + 1.11 s at 10x.
TEST_F(ScoreTest, FlooderAtTenTimesItsRateIsGraylistedWithinTheDocumentedBound) {
  uint64_t entered = 0;
  flood(10 * kRate, 0, 3 * kS, [&] { return graylisted(); }, &entered);
  ASSERT_TRUE(graylisted());
  const double bound_s = 0.100 / 9 + 100.0 / (10.0 * 9);
  EXPECT_LE(entered, static_cast<uint64_t>(bound_s * 1e9 * 1.02) + kMs);
  EXPECT_GE(entered, static_cast<uint64_t>(bound_s * 0.97 * 1e9));
  EXPECT_FALSE(graylisted("198.18.1.2"));

  // Graylisted, it gets penalty_factor (0.1) of its rate: over the next second, 1,250
  // packets plus what is left of its reduced burst (125).
  uint64_t passed = flood(10 * kRate, entered + kMs, entered + kMs + kS);
  EXPECT_GE(passed, static_cast<uint64_t>(0.1 * kRate * 0.98));
  EXPECT_LE(passed, static_cast<uint64_t>(0.1 * kRate + 0.1 * kBurst + 1));
  size_t entries = 0;
  worker_->events().drain([&](const SampleRecord& r) { entries += r.kind == SampleRecord::kGraylistEnter; });
  EXPECT_EQ(entries, 1u);  // entered once, though it kept flooding: not once per dropped packet
}

TEST_F(ScoreTest, HonestBurstsUpToTheBurstNeverScore) {
  // Every 100 ms, a burst of exactly `burst` packets at once: the bucket refills it.
  for (uint64_t t = 100 * kMs; t < 30 * kS; t += 100 * kMs)
    for (int i = 0; i < static_cast<int>(kBurst); ++i) ASSERT_EQ(send(frame_, t), Verdict::kPass) << t;
  EXPECT_FALSE(graylisted());
  EXPECT_EQ(worker_->meter_cold(slot_of("198.18.1.1")).peer.score, 0.0);
  EXPECT_EQ(worker_->samples().drain([](const SampleRecord&) {}), 0u);
}

// After it stops flooding, the score (at worst at the floor) decays by half every
// half-life: it is back above `recover` within half_life x log2(floor / recover)
// (60 s x log2(20) = 259 s), even though it goes back to sending at half its normal
// rate, which the reduced rate still cuts: drops within the normal allowance cost nothing.
TEST_F(ScoreTest, GraylistedNodeThatStopsFloodingRecoversInTheDocumentedTimeWithHysteresis) {
  const uint64_t stop = 15 * kS;
  flood(10 * kRate, 0, stop);  // long enough to sit at the floor
  ASSERT_TRUE(graylisted());
  const NodeMeterCold& c = worker_->meter_cold(slot_of("198.18.1.1"));
  EXPECT_DOUBLE_EQ(c.peer.score, -1000.0);
  const double recovery_s = 60 * std::log2(1000.0 / 50.0);
  uint64_t recovered = 0, dropped = 0;
  bool seen_hysteresis = false;
  for (uint64_t t = stop; t < stop + 400 * kS && !recovered; t += static_cast<uint64_t>(1e9 / (kRate / 2))) {
    dropped += send(frame_, t) != Verdict::kPass;
    double s = decayed_score(c.peer.score, c.peer.score_ns, t, 60e9);
    if (s < -50 && s > -100) seen_hysteresis |= graylisted();  // between the thresholds: still graylisted
    if (!graylisted()) recovered = t;
  }
  EXPECT_GT(dropped, 1000000u);  // the reduced rate did cut it meanwhile
  EXPECT_TRUE(seen_hysteresis);
  ASSERT_NE(recovered, 0u);
  EXPECT_GE(recovered - stop, static_cast<uint64_t>((recovery_s - 1) * 1e9));
  EXPECT_LE(recovered - stop, static_cast<uint64_t>((recovery_s + 1) * 1e9));
  // Recovered, its full rate is back: a whole burst passes at once.
  uint64_t t = recovered + 200 * kMs;
  int passed = 0;
  for (int i = 0; i < static_cast<int>(kBurst); ++i) passed += send(frame_, t) == Verdict::kPass;
  EXPECT_EQ(passed, static_cast<int>(kBurst));
}

TEST_F(ScoreTest, EvidenceRingCarriesTheEntryAndOnlyThatSourcesDroppedPackets) {
  load("evidence: {max_samples: 50, snaplen: 64}\n");
  auto other = build_frame(from("198.18.1.2"));
  for (uint64_t t = 0; t < 2 * kS; t += 8000) {  // 125,000 pps from .1, honest .2 alongside
    send(frame_, t);
    if (t % (100 * 1000) == 0) send(other, t);
  }
  ASSERT_TRUE(graylisted());
  std::vector<SampleRecord> events, got;
  worker_->events().drain([&](const SampleRecord& r) { events.push_back(r); });
  worker_->samples().drain([&](const SampleRecord& r) { got.push_back(r); });
  ASSERT_EQ(events.size(), 1u);  // the entry, on its own ring
  EXPECT_EQ(events[0].kind, SampleRecord::kGraylistEnter);
  EXPECT_EQ(events[0].slot, slot_of("198.18.1.1"));
  EXPECT_LT(events[0].score, -100);
  ASSERT_EQ(got.size(), 50u);  // max_samples samples
  for (const SampleRecord& r : got) {
    EXPECT_EQ(r.kind, SampleRecord::kSample);
    EXPECT_EQ(r.slot, slot_of("198.18.1.1"));
    EXPECT_EQ(r.verdict, static_cast<uint8_t>(Verdict::kOverRate));
    EXPECT_EQ(r.verified, 1);  // on its verified connection: attributable
    EXPECT_EQ(r.caplen, 64);
    EXPECT_EQ(r.orig_len, frame_.size());
    EXPECT_EQ(0, std::memcmp(r.data, frame_.data(), 64));
    EXPECT_GE(r.ns, events[0].ns);
  }
  EXPECT_EQ(worker_->samples().lost(), 0u);
}

TEST_F(ScoreTest, ExitIsAnEventToo) {
  load("scoring: {half_life_s: 1}\n");  // the score settles near -130 at 10x: below -100 after about 2 s
  flood(10 * kRate, 0, 5 * kS);
  ASSERT_TRUE(graylisted());
  send(frame_, 40 * kS);  // far past recovery
  EXPECT_FALSE(graylisted());
  std::vector<uint8_t> kinds;
  worker_->events().drain([&](const SampleRecord& r) { kinds.push_back(r.kind); });
  EXPECT_EQ(kinds, (std::vector<uint8_t>{SampleRecord::kGraylistEnter, SampleRecord::kGraylistExit}));
}

TEST_F(ScoreTest, OperatorRequestedEvidenceSamplesWithoutAGraylist) {
  load("scoring: {enabled: false}\nevidence: {max_samples: 10}\n",
       {"aa00000000000000000000000000000000000000000000000000000000000001"});
  flood(10 * kRate, 0, 200 * kMs);
  EXPECT_FALSE(graylisted());  // scoring is off
  size_t samples = worker_->samples().drain([](const SampleRecord& r) { EXPECT_EQ(r.kind, SampleRecord::kSample); });
  EXPECT_EQ(samples, 10u);
}

TEST_F(ScoreTest, ARebindKeepsTheGraylistAndItsReducedRate) {
  uint64_t entered = 0;
  flood(10 * kRate, 0, 3 * kS, [&] { return graylisted(); }, &entered);
  ASSERT_TRUE(graylisted());
  // A new table (another node's weight changes): the flooder's meter keeps its state.
  f_.cfg.roles[static_cast<int>(Role::kAccess)].min_pps = 200;
  f_.plan = make_stake_plan(f_.cfg, f_.nodes);
  auto next = SnapshotBuilder::build(f_.cfg, f_.plan, Sharding::even(1), f_.snap.get());
  worker_->bind(next.get());
  f_.snap = next;
  EXPECT_TRUE(graylisted());
  EXPECT_EQ(worker_->meter(slot_of("198.18.1.1")).pkt_profile.rate, static_cast<uint64_t>(0.1 * kRate));
}

// Only attributable behaviour moves a score: whatever arrives off the node's verified
// connections (port probes, UDP, forged TCP) could have been sent by anyone.
TEST_F(ScoreTest, UnattributableDropsNeverScore) {
  auto probe = build_frame([] { auto f = from("198.18.1.1"); f.dst_port = 22; return f; }());
  auto udp = build_frame([] { auto f = from("198.18.1.1"); f.proto = 17; return f; }());
  auto forged = flow_.forged(0x10000000, 0x20000000);
  for (int i = 0; i < 100000; ++i) {
    send(probe, i * 10'000);
    send(udp, i * 10'000);
    send(forged, i * 10'000);
  }
  EXPECT_FALSE(graylisted());
  EXPECT_EQ(worker_->meter_cold(slot_of("198.18.1.1")).peer.score, 0.0);
  EXPECT_GT(worker_->meter_cold(slot_of("198.18.1.1")).dropped_request, 100000u);
  EXPECT_EQ(worker_->events().drain([](const SampleRecord&) {}), 0u);
  // The node's own connection still has its whole allowance.
  int passed = 0;
  for (int i = 0; i < static_cast<int>(kBurst); ++i) passed += send(flow_.remote_data(), 1000 * kMs) == Verdict::kPass;
  EXPECT_EQ(passed, static_cast<int>(kBurst));
}

}  // namespace
