// The staged burst path (Worker::decide_stage: parse all, look up all, police in order)
// must decide exactly as one packet at a time: same verdicts, same counters, same meters,
// same evidence records, for the same frames and timestamps. Every other unit test and
// `replay` send bursts of one, so this is what vouches for the burst path `run` takes.
#include <gtest/gtest.h>

#include <random>

#include "packet_builder.h"
#include "test_util.h"
#include "worker_fixture.h"

using namespace stakegate;
using stakegate::testing::build_frame;
using stakegate::testing::FrameSpec;

namespace {

// A mix with every verdict: honest and flooding nodes (IPv4 and IPv6, tagged or not),
// ports their role refuses, an ejected node, unregistered sources within and over their
// limits, blocklisted ones, fragments, malformed and non-IP frames.
std::vector<std::vector<uint8_t>> mixed_frames(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  const char* staked[] = {"198.18.1.1", "198.18.1.2", "2001:2::3", "198.18.1.9"};
  std::vector<std::vector<uint8_t>> out;
  for (size_t i = 0; i < n; ++i) {
    FrameSpec f;
    unsigned kind = rng() % 10;
    if (kind < 5) {
      f.src = *parse_ip(staked[rng() % 4]);
      f.dst_port = rng() % 8 == 0 ? 22 : 3569;
    } else if (kind < 8) {
      f.src = IpAddr::from_v4(0xC6130000u + static_cast<uint32_t>(rng() % 300));
      f.dst_port = rng() % 4 == 0 ? 3569 : 9000;
      f.proto = rng() % 2 ? 6 : 17;
    } else if (kind == 8) {
      f.src = *parse_ip("198.51.100.7");  // blocklisted range
      f.dst_port = 9000;
    } else {
      f.src = *parse_ip(staked[0]);
      f.frag_offset = 10;
    }
    f.dst = f.src.is_v4 ? *parse_ip("198.18.255.1") : *parse_ip("2001:2::ff");
    if (rng() % 4 == 0) f.vlans = {100};
    f.frame_size = rng() % 3 == 0 ? 1200 : 64;
    auto b = build_frame(f);
    if (rng() % 50 == 0) b[14] = 0x55;  // malformed
    if (rng() % 60 == 0) b = stakegate::testing::build_arp(*parse_ip("198.18.0.1"), *parse_ip("198.18.0.2"));
    out.push_back(std::move(b));
  }
  return out;
}

struct Outcome {
  std::vector<Verdict> verdicts;
  std::vector<SampleRecord> records;
};

// Feeds `frames` in bursts of `burst`, every packet of a burst at the burst's time; with
// `one_by_one`, the same packets and times, one call per packet.
Outcome feed(stakegate::testing::WorkerFixture& f, const std::vector<std::vector<uint8_t>>& frames, uint16_t burst,
             bool one_by_one) {
  Outcome o;
  o.verdicts.resize(frames.size());
  std::vector<PacketView> views;
  for (const auto& b : frames) views.push_back({b.data(), static_cast<uint32_t>(b.size())});
  uint64_t now = 0;
  for (size_t at = 0; at < views.size(); at += burst) {
    now += 37'000;  // 37 us between bursts: buckets run dry and refill within the run
    const uint16_t n = static_cast<uint16_t>(std::min<size_t>(burst, views.size() - at));
    if (one_by_one)
      for (uint16_t i = 0; i < n; ++i) f.worker->process_outside(&views[at + i], 1, now, &o.verdicts[at + i]);
    else
      f.worker->process_outside(&views[at], n, now, &o.verdicts[at]);
    f.worker->samples().drain([&](const SampleRecord& r) { o.records.push_back(r); });
  }
  return o;
}

void expect_same_state(const stakegate::testing::WorkerFixture& a, const stakegate::testing::WorkerFixture& b) {
  EXPECT_EQ("", stakegate::testing::counters_differ(a.worker->counters(), b.worker->counters()));
  for (uint32_t s = 0; s < a.snap->source_count(); ++s) {
    EXPECT_EQ(0, std::memcmp(&a.worker->meter(s), &b.worker->meter(s), sizeof(NodeMeter))) << "slot " << s;
    const NodeMeterCold &x = a.worker->meter_cold(s), &y = b.worker->meter_cold(s);
    EXPECT_EQ(x.bytes.tokens, y.bytes.tokens);
    EXPECT_EQ(x.dropped_port_denied, y.dropped_port_denied);
    EXPECT_EQ(x.dropped_blocklisted + x.dropped_ejected, y.dropped_blocklisted + y.dropped_ejected);
    EXPECT_EQ(x.peer.score, y.peer.score) << "slot " << s;
  }
}

class BurstEquivalence : public ::testing::TestWithParam<std::tuple<uint16_t, const char*>> {};

TEST_P(BurstEquivalence, SameVerdictsCountersMetersAndEvidence) {
  const auto [burst, tail] = GetParam();
  std::string y = stakegate::testing::base_config("", std::string(tail) + "blocklist: [{cidr: 198.51.100.0/24}]\n");
  if (std::string(tail) == "# bps\n") {  // byte buckets as well: capacity.bps (the tail is just a YAML comment)
    y.replace(y.find("capacity: {pps: 100000}"), 23, "capacity: {pps: 100000, bps: 80000000}");
  }
  y.insert(y.find("roles:"), "    - {node_id: \"" + std::string(63, 'e') + "9\", role: consensus, address: \"198.18.1.9:3569\", ejected: true}\n");
  stakegate::testing::WorkerFixture staged, single;
  staged.load(y, 1, 256);  // a small unregistered table: recycling happens too
  single.load(y, 1, 256);
  const auto frames = mixed_frames(20000, 42);
  Outcome a = feed(staged, frames, burst, false), b = feed(single, frames, burst, true);
  ASSERT_EQ(a.verdicts, b.verdicts);
  std::map<Verdict, size_t> seen;
  for (Verdict v : a.verdicts) seen[v]++;
  EXPECT_GE(seen.size(), 7u) << "the mix must reach (almost) every verdict";  // all but ejected's neighbours
  expect_same_state(staged, single);
  ASSERT_EQ(a.records.size(), b.records.size());
  for (size_t i = 0; i < a.records.size(); ++i) {
    EXPECT_EQ(a.records[i].kind, b.records[i].kind);
    EXPECT_EQ(a.records[i].slot, b.records[i].slot);
    EXPECT_EQ(a.records[i].ns, b.records[i].ns);
    EXPECT_EQ(a.records[i].caplen, b.records[i].caplen);
  }
}

INSTANTIATE_TEST_SUITE_P(Bursts, BurstEquivalence,
                         ::testing::Combine(::testing::Values<uint16_t>(7, 32, 64, 256),
                                            ::testing::Values("", "# bps\n",
                                                              "scoring: {graylist: -5, half_life_s: 1}\n"
                                                              "evidence: {max_samples: 1000}\n")));

}  // namespace
