// The benchmark workloads exercise the paths they claim to (docs/performance.md): a
// benchmark of the wrong path would be a number about nothing.
#include <gtest/gtest.h>

#include "bench_workload.h"
#include "worker_fixture.h"

using namespace stakegate;
using stakegate::testing::BenchKind;

namespace {

struct WorkloadRun {
  stakegate::testing::BenchWorkload w;
  stakegate::testing::WorkerFixture f;
  explicit WorkloadRun(BenchKind kind, size_t nodes = 1000) {
    w = stakegate::testing::make_bench_workload(nodes, kind, 64);
    Config cfg;
    stakegate::testing::bench_policy(cfg, w.sessions);
    f.sessions = w.sessions;
    f.load(cfg, w.nodes);
    for (size_t i = 0; i < w.inside.count; ++i) {
      PacketView v{w.inside.frame(i), w.inside.size};
      f.worker->process_inside(&v, 1, 1000);
    }
  }
  void outside() {
    Verdict out;
    for (size_t i = 0; i < w.outside.count; ++i) {
      PacketView v{w.outside.frame(i), w.outside.size};
      f.worker->process_outside(&v, 1, 2000 + i, &out);
    }
  }
  uint64_t verified_passes() const {
    uint64_t n = 0;
    for (uint32_t s = 0; s < f.snap->source_count(); ++s) n += f.worker->meter(s).passed;
    return n;
  }
};

}  // namespace

TEST(BenchWorkload, StakedIsEveryNodeOnItsVerifiedConnection) {
  WorkloadRun r(BenchKind::kStaked);
  r.outside();
  EXPECT_EQ(r.f.worker->counters().sessions_verified, 1000u);
  EXPECT_EQ(r.verified_passes(), r.w.outside.count);
}

TEST(BenchWorkload, MixedFloodsOverTheNodesOwnConnectionAndFromUnregisteredSources) {
  WorkloadRun r(BenchKind::kMixed);
  r.outside();
  EXPECT_GT(r.f.meter(stakegate::testing::bench_node_addr(0).to_string()).dropped_over_rate, 0u);  // the flooder, verified
  EXPECT_EQ(r.verified_passes() + r.f.meter(stakegate::testing::bench_node_addr(0).to_string()).dropped_over_rate, r.w.outside.count / 2);
  EXPECT_GT(r.f.count(TrafficClass::kUnregistered, Verdict::kUnregisteredOverRate), 0u);
}

TEST(BenchWorkload, SessionsIsHalfRepliesOnSessionsTheClusterOpened) {
  WorkloadRun r(BenchKind::kSessions);
  r.outside();
  // A few of 66,536 sessions in a table four times as large share a full set: within 0.1 %.
  EXPECT_GE(r.f.count(TrafficClass::kUnregistered, Verdict::kPass), r.w.outside.count / 2 * 999 / 1000);
  EXPECT_LE(r.f.count(TrafficClass::kUnregistered, Verdict::kPass), r.w.outside.count / 2);
  EXPECT_GE(r.verified_passes(), r.w.outside.count / 2 * 999 / 1000);
}

TEST(BenchWorkload, InsideOpensASessionPerDistinctFlow) {
  WorkloadRun r(BenchKind::kInside);
  EXPECT_EQ(r.w.outside.count, 0u);
  EXPECT_EQ(r.f.worker->counters().sessions_created, r.w.inside.count);
  EXPECT_LE(r.f.worker->counters().sessions_evicted, r.w.inside.count / 1000);
}
