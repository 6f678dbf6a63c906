// The fast paths (Worker::decide_fast: a staked node's segment on its verified connection,
// from parse_l4v4's few fields; and process_inside's for the cluster's segments and
// datagrams on live sessions) must decide exactly as the full paths do. Two workers
// get the same traffic, in the same calls at the same times, one with the fast path off:
// every verdict, counter, meter, session entry and evidence record must agree. The traffic
// is built to sit on the fast path's edges: connections opened by either side, in-window
// and forged segments, FIN and RST, blocked, ejected, graylisted and spoofed nodes, a node
// on a public port, VLAN tags, IP options, unregistered TCP and more.
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <utility>

#include "packet_builder.h"
#include "tcp_flow.h"
#include "test_util.h"
#include "worker_fixture.h"

using namespace stakegate;
using stakegate::testing::build_frame;
using stakegate::testing::FrameSpec;
using stakegate::testing::TcpFlow;
using stakegate::testing::WorkerFixture;

namespace {

// A segment of `flow` from its remote end as parse_l4v4 would refuse it (VLAN tag or
// IP options), advancing the remote's sequence like remote_data.
std::vector<uint8_t> odd_segment(TcpFlow& flow, bool vlan) {
  FrameSpec f = flow.from_remote(0x10);
  if (vlan) f.vlans = {100};
  else f.ipv4_options = {1, 1, 1, 0};  // NOP NOP NOP EOL
  f.payload.assign(6, 0x5a);
  flow.remote_seq += 6;
  return build_frame(f);
}

struct Step {
  bool inside;
  std::vector<uint8_t> frame;
};

// The traffic: connections set up by both sides, then a random mix of what each can send.
std::vector<Step> traffic(uint64_t seed, size_t steps) {
  std::mt19937_64 rng(seed);
  const char* remotes[] = {"198.18.1.1", "198.18.1.2", "198.18.1.4", "198.18.1.5",
                           "198.18.1.9", "198.19.0.7", "198.19.0.8", "2001:2::3"};
  std::vector<TcpFlow> flows;
  std::vector<Step> out;
  for (size_t i = 0; i < 24; ++i) {
    TcpFlow f;
    f.remote = *parse_ip(remotes[i % 8]);
    if (!f.remote.is_v4) f.local = *parse_ip("2001:2::ff");
    f.rport = static_cast<uint16_t>(40000 + i);
    f.lport = (i / 8) == 1 ? 9000 : 3569;  // a third to the public port (looked up lazily)
    f.remote_seq = static_cast<uint32_t>(rng());
    f.local_seq = static_cast<uint32_t>(rng());
    f.frame_size = rng() % 2 ? 64 : 300;
    flows.push_back(f);
  }
  auto open = [&](TcpFlow& f) {
    if (rng() % 2) {  // the remote dials in
      out.push_back({false, f.remote_syn()});
      out.push_back({true, f.local_syn_ack()});
      out.push_back({false, f.remote_data()});
    } else {  // the cluster dials out
      out.push_back({true, f.local_syn()});
      out.push_back({false, f.remote_syn_ack()});
      out.push_back({true, f.local_data()});
    }
  };
  for (auto& f : flows) open(f);
  // A node floods its own verified connection far over its rate: over_rate, a graylisting,
  // and (after feed's pause) a recovery, whatever the seed makes of the rest.
  open(flows[0]);
  for (int i = 0; i < 3000; ++i) out.push_back({false, flows[0].remote_data()});
  for (size_t s = 0; s < steps; ++s) {
    TcpFlow& f = flows[rng() % flows.size()];
    const unsigned r = rng() % 100;
    if (r < 55) out.push_back({false, f.remote_data()});
    else if (r < 65) out.push_back({true, f.local_data()});
    else if (r < 72) out.push_back({false, f.forged(static_cast<uint32_t>(rng()), static_cast<uint32_t>(rng()))});
    else if (r < 78) {  // near misses: the right numbers, one of them off by a little or a lot
      const uint32_t d = (rng() % 2 ? 1u : 1u << 27) * static_cast<uint32_t>(1 + rng() % 3);
      out.push_back({false, rng() % 2 ? f.forged(f.remote_seq + d, f.local_seq) : f.forged(f.remote_seq, f.local_seq + d)});
    } else if (r < 82) out.push_back({false, odd_segment(f, rng() % 2)});
    else if (r < 84) out.push_back({false, f.remote_data(rng() % 2 ? 0x01 : 0x04)});  // FIN or RST
    else if (r < 86) out.push_back({true, f.local_data(0x01)});
    else if (r < 88) open(f);  // a new connection on the same 4-tuple
    else if (r < 90) {  // unregistered TCP and UDP to the public port
      FrameSpec u;
      u.src = IpAddr::from_v4(0xC6130100u + static_cast<uint32_t>(rng() % 50));
      u.dst = *parse_ip("198.18.255.1");
      u.dst_port = 9000;
      u.proto = rng() % 2 ? 6 : 17;
      out.push_back({false, build_frame(u)});
    } else if (r < 94) {  // the cluster's UDP queries, and their replies
      FrameSpec q;
      q.proto = 17;
      q.src = *parse_ip(rng() % 8 ? "198.18.255.1" : "10.0.0.1");  // and one not the cluster's: no session
      q.dst = IpAddr::from_v4(0xC6130200u + static_cast<uint32_t>(rng() % 6));
      q.src_port = rng() % 4 ? static_cast<uint16_t>(33000 + rng() % 3) : 3569;  // or an answer from a served port
      q.dst_port = 53;
      out.push_back({true, build_frame(q)});
      std::swap(q.src, q.dst);
      std::swap(q.src_port, q.dst_port);
      if (rng() % 2) out.push_back({false, build_frame(q)});
    } else if (r < 96) {  // a forged cluster source, and a node inside the cluster's prefixes
      FrameSpec u;
      u.src = *parse_ip(rng() % 2 ? "198.18.255.9" : "198.18.255.7");
      u.dst = *parse_ip("198.18.255.1");
      out.push_back({false, build_frame(u)});
    } else {
      auto b = f.remote_data();
      b.resize(b.size() - 1 - rng() % 8);  // cut short: its IP length no longer fits
      out.push_back({false, std::move(b)});
    }
  }
  return out;
}

struct Outcome {
  std::vector<Verdict> verdicts;
  std::vector<SampleRecord> records, events;
};

// Outside frames go in bursts of 1 to 40 (a burst ends early where an inside frame comes),
// each burst 20 us after the last (buckets run dry and refill), one in 300 after a 6 s
// pause (graylisted nodes recover, and are graylisted again).
Outcome feed(WorkerFixture& f, const std::vector<Step>& steps, uint64_t seed, const PolicySnapshot& changed) {
  std::mt19937_64 rng(seed);
  Outcome r;
  std::vector<PacketView> burst;
  uint64_t now = 1'000'000;
  size_t limit = 1 + rng() % 40;
  bool pause = false;
  auto flush = [&] {
    if (burst.empty()) return;
    // Now and then a pause, and always one after the flood: scores decay, nodes recover.
    now += rng() % 300 == 0 || std::exchange(pause, false) ? 6'000'000'000 : 20'000;
    std::vector<Verdict> v(burst.size());
    f.worker->process_outside(burst.data(), static_cast<uint16_t>(burst.size()), now, v.data());
    r.verdicts.insert(r.verdicts.end(), v.begin(), v.end());
    burst.clear();
    limit = 1 + rng() % 40;
    f.worker->samples().drain([&](const SampleRecord& x) { r.records.push_back(x); });
    f.worker->events().drain([&](const SampleRecord& x) { r.events.push_back(x); });
  };
  for (size_t k = 0; k < steps.size(); ++k) {
    const Step& s = steps[k];
    // For the middle third, a reload ejects one node, blocks another and makes a third's
    // address the cluster's: their verified connections stay, their packets must not.
    if (k == steps.size() / 3 || k == 2 * steps.size() / 3) {
      flush();
      f.worker->bind(k == steps.size() / 3 ? &changed : f.snap.get());
    }
    if (k == steps.size() / 6) {
      flush();
      pause = true;
    }
    if (s.inside) {
      flush();
      f.inside(s.frame, now);
      continue;
    }
    burst.push_back({s.frame.data(), static_cast<uint32_t>(s.frame.size())});
    if (burst.size() == limit) flush();
  }
  flush();
  return r;
}

void expect_same_records(const std::vector<SampleRecord>& a, const std::vector<SampleRecord>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].kind, b[i].kind) << i;
    EXPECT_EQ(a[i].verdict, b[i].verdict) << i;
    EXPECT_EQ(a[i].verified, b[i].verified) << i;
    EXPECT_EQ(a[i].slot, b[i].slot) << i;
    EXPECT_EQ(a[i].ns, b[i].ns) << i;
    EXPECT_EQ(a[i].score, b[i].score) << i;
    ASSERT_EQ(a[i].caplen, b[i].caplen) << i;
    EXPECT_EQ(0, std::memcmp(a[i].data, b[i].data, a[i].caplen)) << i;
  }
}

// Both workers in the same state after the same traffic, and the same verdicts and records.
void expect_same_state(const WorkerFixture& fast, const WorkerFixture& full, const Outcome& a, const Outcome& b) {
  ASSERT_EQ(a.verdicts.size(), b.verdicts.size());
  for (size_t i = 0; i < a.verdicts.size(); ++i)
    ASSERT_EQ(a.verdicts[i], b.verdicts[i]) << "outside packet " << i << ": " << verdict_name(a.verdicts[i]) << " vs "
                                            << verdict_name(b.verdicts[i]);
  const WorkerCounters &ca = fast.worker->counters(), &cb = full.worker->counters();
  EXPECT_GT(ca.fast_path, a.verdicts.size() / 20) << "the traffic must reach the fast path";
  EXPECT_EQ(cb.fast_path, 0u);
  EXPECT_EQ(cb.fast_path_inside, 0u);
  EXPECT_EQ("", stakegate::testing::counters_differ(ca, cb, false));
  for (uint32_t s = 0; s < fast.snap->source_count(); ++s) {
    EXPECT_EQ(0, std::memcmp(&fast.worker->meter(s), &full.worker->meter(s), sizeof(NodeMeter))) << "slot " << s;
    const NodeMeterCold &x = fast.worker->meter_cold(s), &z = full.worker->meter_cold(s);
    EXPECT_EQ(x.bytes.tokens, z.bytes.tokens);
    EXPECT_EQ(x.request.tokens, z.request.tokens);
    EXPECT_EQ(x.request_hop.tokens, z.request_hop.tokens);
    EXPECT_EQ(x.hop, z.hop) << "slot " << s;
    EXPECT_EQ(x.passed_request, z.passed_request);
    EXPECT_EQ(x.dropped_request, z.dropped_request);
    EXPECT_EQ(x.dropped_port_denied, z.dropped_port_denied);
    EXPECT_EQ(x.dropped_blocklisted, z.dropped_blocklisted);
    EXPECT_EQ(x.dropped_ejected, z.dropped_ejected);
    EXPECT_EQ(x.peer.score, z.peer.score) << "slot " << s;
    EXPECT_EQ(x.peer.score_ns, z.peer.score_ns) << "slot " << s;
    EXPECT_EQ(x.peer.samples_left, z.peer.samples_left) << "slot " << s;
    EXPECT_EQ(x.peer.unverified_left, z.peer.unverified_left) << "slot " << s;
    EXPECT_EQ(x.peer.normal_meter.tokens, z.peer.normal_meter.tokens) << "slot " << s;
    EXPECT_EQ(x.peer.normal_meter.last_ns, z.peer.normal_meter.last_ns) << "slot " << s;
    EXPECT_EQ(x.peer.beyond_normal, z.peer.beyond_normal) << "slot " << s;
  }
  const SessionTable &sa = fast.worker->sessions(), &sb = full.worker->sessions();
  for (size_t i = 0; i < sa.capacity(); ++i) {
    ASSERT_EQ("", stakegate::testing::session_differs(sa.entry(i), sb.entry(i))) << "session " << i;
    ASSERT_EQ(sa.deadline(&sa.entry(i)), sb.deadline(&sb.entry(i))) << "session " << i;
  }
  expect_same_records(a.records, b.records);
  expect_same_records(a.events, b.events);
}

class FastPath : public ::testing::TestWithParam<std::tuple<uint64_t, const char*>> {};

TEST_P(FastPath, DecidesAsTheFullPath) {
  const auto [seed, tail] = GetParam();
  std::string y = stakegate::testing::base_config(
      "", std::string("blocklist: [{cidr: 198.18.1.5/32}]\nscoring: {graylist: -5, floor: -150, half_life_s: 1, penalties: {over_rate: 1000}}\n"
                      "evidence: {max_samples: 1000}\n") + tail);
  if (std::string(tail) == "# bps\n")  // byte buckets as well
    y.replace(y.find("capacity: {pps: 100000}"), 23, "capacity: {pps: 100000, bps: 80000000}");
  y.replace(y.find("capacity: {pps: 100000"), 22, "capacity: {pps: 20000");  // rates the traffic exceeds
  const std::string id = "    - {node_id: \"" + std::string(62, 'e');
  y.insert(y.find("roles:"), id + "04\", role: access, address: \"198.18.1.4:3569\", weight: 100}\n" + id +
                                 "05\", role: consensus, address: \"198.18.1.5:3569\", weight: 100}\n" + id +
                                 "07\", role: consensus, address: \"198.18.255.7:3569\", weight: 100}\n" + id +
                                 "09\", role: consensus, address: \"198.18.1.9:3569\", weight: 100, ejected: true}\n");
  WorkerFixture fast, full;
  fast.sessions = full.sessions = 16;  // 16 entries for 24 connections: some are evicted
  fast.load(y, 1, 64);
  full.load(y, 1, 64);
  full.worker->set_fast_path(false);
  // The same table after a reload that ejects 198.18.1.1, blocks 198.18.1.4 and takes
  // 198.18.1.2 into the cluster's prefixes (its packets from the outside are spoofed).
  std::string changed_yaml = y;
  auto edit = [&](const std::string& from, const std::string& to) {
    changed_yaml.replace(changed_yaml.find(from), from.size(), to);
  };
  edit("198.18.1.1:3569\", weight: 100}", "198.18.1.1:3569\", weight: 100, ejected: true}");
  edit("{cidr: 198.18.1.5/32}", "{cidr: 198.18.1.5/32}, {cidr: 198.18.1.4/32}");
  edit("prefixes: [198.18.255.0/24,", "prefixes: [198.18.255.0/24, 198.18.1.2/32,");  // 198.18.1.2 is now the cluster's
  WorkerFixture reloaded;
  reloaded.load(changed_yaml, 1, 64);
  const auto changed = SnapshotBuilder::build(reloaded.cfg, reloaded.plan, Sharding::even(1), fast.snap.get());
  ASSERT_EQ(changed->find_v4(0xC6120101), fast.snap->find_v4(0xC6120101));
  ASSERT_EQ(changed->find_v4(0xC6120104), fast.snap->find_v4(0xC6120104));
  ASSERT_TRUE(changed->source(changed->find_v4(0xC6120102)).flags & SourcePolicy::kNotOutside);

  const auto steps = traffic(seed, 30000);
  const Outcome a = feed(fast, steps, seed, *changed), b = feed(full, steps, seed, *changed);

  expect_same_state(fast, full, a, b);
  const WorkerCounters& ca = fast.worker->counters();
  EXPECT_GT(ca.fast_path_inside, 1000u) << "the cluster's packets must reach the inside fast path";

  // The traffic reached the fast path's edges: each of these verdicts was given.
  std::map<Verdict, size_t> seen;
  for (Verdict v : a.verdicts) seen[v]++;
  for (Verdict v : {Verdict::kPass, Verdict::kOverRate, Verdict::kRequestOverRate, Verdict::kBlocklisted,
                    Verdict::kEjected, Verdict::kSpoofed, Verdict::kMalformed})
    EXPECT_GT(seen[v], 0u) << verdict_name(v);
  EXPECT_GT(ca.sessions_evicted, 0u);
  size_t exits = 0;
  for (const SampleRecord& e : a.events) exits += e.kind == SampleRecord::kGraylistExit;
  EXPECT_GT(exits, 0u) << "a node was graylisted and recovered; events " << a.events.size();
}

INSTANTIATE_TEST_SUITE_P(Traffic, FastPath,
                         ::testing::Combine(::testing::Values<uint64_t>(1, 2, 3, 4, 5, 6, 7, 8),
                                            ::testing::Values("", "# bps\n")));

}  // namespace

namespace {

// A node floods its own verified connection until it is graylisted, then sends within its
// normal rate (but over its graylisted one) until it recovers, then floods again. While
// graylisted, only packets beyond the normal rate are penalised: the fast path must keep
// that shadow bucket and the recovery check as the full path does, packet by packet.
TEST(FastPath, GraylistAndRecoveryAsTheFullPath) {
  const std::string y = stakegate::testing::base_config(
      "", "scoring: {graylist: -5, half_life_s: 1, penalties: {over_rate: 1000}}\nevidence: {max_samples: 100}\n");
  WorkerFixture fast, full;
  fast.load(y);
  full.load(y);
  full.worker->set_fast_path(false);
  const double normal_pps = static_cast<double>(fast.snap->source(fast.slot_of("198.18.1.1")).pps.rate);
  ASSERT_GT(normal_pps, 100);
  Outcome a, b;
  for (WorkerFixture* f : {&fast, &full}) {
    Outcome& o = f == &fast ? a : b;
    TcpFlow flow;
    uint64_t now = 1'000'000'000;
    o.verdicts.push_back(f->accept(flow, now));
    auto send = [&](uint64_t gap_ns, int packets) {
      for (int i = 0; i < packets; ++i) {
        now += gap_ns;
        o.verdicts.push_back(f->send(flow.remote_data(), now));
        if (i % 64 == 0) f->inside(flow.local_data(), now);  // the cluster acknowledges now and then
        f->worker->samples().drain([&](const SampleRecord& x) { o.records.push_back(x); });
        f->worker->events().drain([&](const SampleRecord& x) { o.events.push_back(x); });
      }
    };
    const auto normal_gap = static_cast<uint64_t>(1e9 / normal_pps * 1.25);  // 80 % of the normal rate
    send(10'000, 3000);              // 100k pps: graylisted
    send(normal_gap, static_cast<int>(8 * normal_pps));  // 8 s under the normal rate: recovers
    send(10'000, 3000);              // and floods again
  }
  expect_same_state(fast, full, a, b);
  size_t enter = 0, exit = 0;
  for (const SampleRecord& e : a.events) (e.kind == SampleRecord::kGraylistEnter ? enter : exit)++;
  EXPECT_EQ(enter, 2u);
  EXPECT_EQ(exit, 1u);
}

}  // namespace
