// Hot-path discipline, checked rather than claimed: once a worker is bound to its
// snapshot, deciding packets allocates nothing. (This binary counts every operator new.)
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>

#include "packet_builder.h"
#include "tcp_flow.h"
#include "test_util.h"
#include "worker_fixture.h"

static std::atomic<uint64_t> g_allocations{0};

void* operator new(std::size_t n) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) { return operator new(n); }
// Not inlined: GCC would otherwise see the free() inside them paired with an operator new
// it treats as the builtin one, and warn (-Wmismatched-new-delete) about a correct pair.
[[gnu::noinline]] void operator delete(void* p) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete[](void* p) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete(void* p, std::size_t) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete[](void* p, std::size_t) noexcept { std::free(p); }

using namespace stakegate;
using stakegate::testing::build_frame;
using stakegate::testing::FrameSpec;

TEST(HotPath, DecidingPacketsAllocatesNothing) {
  stakegate::testing::WorkerFixture fx;
  fx.load(stakegate::testing::base_config("", "blocklist: [{cidr: 198.51.100.0/24}]\nscoring: {graylist: -5}\nevidence: {max_samples: 5000}\n"), 1, 256);
  Worker& w = *fx.worker;

  // Every branch of the verdict order, IPv4 and IPv6, tagged and not, and broken frames.
  std::vector<std::vector<uint8_t>> frames;
  for (uint32_t i = 0; i < 4000; ++i) {
    FrameSpec f;
    const char* srcs[] = {"198.18.1.1", "198.18.1.2", "2001:2::3", "198.51.100.9", "198.19.0.1", "2001:2::99"};
    f.src = *parse_ip(srcs[i % 6]);
    if (i % 6 == 4) f.src = IpAddr::from_v4(0xC6130000 + i);  // many unregistered sources: table churn
    f.dst = f.src.is_v4 ? *parse_ip("198.18.255.1") : *parse_ip("2001:2::ff");
    f.dst_port = (i % 3 == 0) ? 9000 : (i % 3 == 1) ? 3569 : 22;
    if (i % 5 == 0) f.vlans = {100};
    if (i % 7 == 0) f.proto = 17;
    frames.push_back(build_frame(f));
    if (i % 11 == 0) frames.back()[frames.back().size() > 20 ? 14 : 0] = 0x55;  // malformed
  }
  frames.push_back(stakegate::testing::build_arp(IpAddr::from_v4(1), IpAddr::from_v4(2)));
  // 198.18.1.1 floods over its verified connection (its drops score and are sampled), and
  // the cluster opens UDP and TCP sessions whose replies come back among the rest.
  stakegate::testing::TcpFlow flow;
  fx.accept(flow, 0);
  for (int i = 0; i < 500; ++i) frames.push_back(flow.remote_data());
  std::vector<std::vector<uint8_t>> inside;
  for (uint16_t p = 0; p < 200; ++p) {
    FrameSpec q;
    q.src = *parse_ip("198.18.255.1");
    q.dst = IpAddr::from_v4(0xC6330000u + p);
    q.proto = p % 2 ? 17 : 6;
    q.src_port = static_cast<uint16_t>(30000 + p);
    q.dst_port = 443;
    inside.push_back(build_frame(q));
    std::swap(q.src, q.dst);
    std::swap(q.src_port, q.dst_port);
    frames.push_back(build_frame(q));
  }
  std::vector<PacketView> views, inside_views;
  for (auto& f : frames) views.push_back({f.data(), static_cast<uint32_t>(f.size())});
  for (auto& f : inside) inside_views.push_back({f.data(), static_cast<uint32_t>(f.size())});
  std::vector<Verdict> out(32);

  uint64_t before = g_allocations.load();
  uint64_t passed = 0, dropped = 0;
  for (uint64_t round = 0; round < 50; ++round) {
    for (size_t i = 0; i < inside_views.size(); i += 32)
      w.process_inside(&inside_views[i], static_cast<uint16_t>(std::min<size_t>(32, inside_views.size() - i)), round * 1'000'000);
    for (size_t i = 0; i < views.size(); i += 32) {
      auto n = static_cast<uint16_t>(std::min<size_t>(32, views.size() - i));
      w.process_outside(&views[i], n, round * 1'000'000, out.data());
      for (uint16_t k = 0; k < n; ++k) (out[k] == Verdict::kPass ? passed : dropped)++;
    }
  }
  EXPECT_EQ(g_allocations.load() - before, 0u);
  EXPECT_GT(passed, 0u);   // the loop did exercise both outcomes
  EXPECT_GT(dropped, 0u);
  EXPECT_GT(w.counters().sessions_created, 200u);
  // The peer-score paths ran too: the flooding node was graylisted, and its dropped
  // packets went to the evidence ring until it was full (then counted as lost).
  EXPECT_TRUE(fx.meter("198.18.1.1").flags & SourcePolicy::kGraylisted);
  EXPECT_GT(w.samples().lost(), 0u);
  EXPECT_EQ(w.samples().drain([](const SampleRecord&) {}), w.samples().capacity());
}
