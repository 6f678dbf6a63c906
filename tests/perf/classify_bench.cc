// classify + police per packet (parse, lookup, sessions, token bucket, counters) on
// in-memory bursts of 32, by table size and workload (tests/support/bench_workload.h);
// the `inside` workload times the inside path (a session lookup-or-insert per packet).
// `ns/packet` = 1e9 / items_per_second.
#include <benchmark/benchmark.h>

#include <memory>

#include "bench_workload.h"
#include "worker_fixture.h"

using namespace stakegate;
using stakegate::testing::BenchKind;

namespace {

struct Fixture {
  testing::BenchWorkload w;
  testing::WorkerFixture policy;
  std::vector<PacketView> outside, inside;
};

constexpr BenchKind kKinds[] = {BenchKind::kStaked, BenchKind::kMixed, BenchKind::kSessions, BenchKind::kInside};
constexpr const char* kNames[] = {"staked", "mixed", "sessions", "inside"};

// Built once per (size, workload): building a 1M-node plan takes seconds. The cluster's
// frames go in first (they open the sessions), except for `inside`, which loops them.
Fixture& fixture(size_t nodes, BenchKind kind) {
  static std::pair<size_t, BenchKind> key{0, BenchKind::kStaked};
  static std::unique_ptr<Fixture> f;  // one table in memory at a time
  if (!f || key != std::pair{nodes, kind}) {
    f.reset();
    key = {nodes, kind};
    f = std::make_unique<Fixture>();
    f->w = testing::make_bench_workload(nodes, kind, 64);
    Config cfg;
    testing::bench_policy(cfg, f->w.sessions);
    f->policy.sessions = f->w.sessions;
    f->policy.load(cfg, f->w.nodes);
    for (size_t i = 0; i < f->w.outside.count; ++i) f->outside.push_back({f->w.outside.frame(i), f->w.outside.size});
    for (size_t i = 0; i < f->w.inside.count; ++i) f->inside.push_back({f->w.inside.frame(i), f->w.inside.size});
    if (kind != BenchKind::kInside)
      for (size_t i = 0; i < f->inside.size(); i += 32)
        f->policy.worker->process_inside(&f->inside[i], static_cast<uint16_t>(std::min<size_t>(32, f->inside.size() - i)), 0);
  }
  return *f;
}

// One burst of 32 of the workload's looped direction at `now`; `pos` advances.
void burst(Fixture& f, BenchKind kind, size_t& pos, uint64_t now, Verdict* out) {
  std::vector<PacketView>& v = kind == BenchKind::kInside ? f.inside : f.outside;
  if (pos + 32 > v.size()) pos = 0;
  if (kind == BenchKind::kInside) f.policy.worker->process_inside(&v[pos], 32, now);
  else f.policy.worker->process_outside(&v[pos], 32, now, out);
  pos += 32;
}

void BM_ClassifyPolice(benchmark::State& st) {
  const BenchKind kind = kKinds[st.range(1)];
  Fixture& f = fixture(static_cast<size_t>(st.range(0)), kind);
  Verdict out[32] = {};
  size_t pos = 0, passed = 0;
  uint64_t now = 1'000'000;
  for (auto _ : st) {
    burst(f, kind, pos, now, out);
    passed += out[0] == Verdict::kPass;
    now += 1000;  // 1 us per burst: 32 Mpps of offered load
  }
  benchmark::DoNotOptimize(passed);
  st.SetItemsProcessed(st.iterations() * 32);
  st.SetLabel(kNames[st.range(1)]);
}

}  // namespace

BENCHMARK(BM_ClassifyPolice)
    ->ArgsProduct({{1000, 10000, 100000, 1000000}, {0, 1, 2, 3}})
    ->ArgNames({"nodes", "workload"})
    ->MinTime(1.0);

// `classify_bench --count NODES WORKLOAD PACKETS`: decides exactly PACKETS packets (a
// multiple of 32) of the looped direction and exits, for instruction counts under callgrind:
//   valgrind --tool=callgrind --toggle-collect='*process_outside*' classify_bench --count ...
// (process_inside for `inside`). Ir / PACKETS = instructions per packet.
int main(int argc, char** argv) {
  if (argc == 5 && std::string(argv[1]) == "--count") {
    const BenchKind kind = testing::bench_kind(argv[3]);
    Fixture& f = fixture(std::stoull(argv[2]), kind);
    uint64_t packets = std::stoull(argv[4]);
    Verdict out[32];
    size_t pos = 0;
    uint64_t now = 1'000'000;
    for (uint64_t done = 0; done < packets; done += 32) burst(f, kind, pos, now += 1000, out);
    return 0;
  }
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
