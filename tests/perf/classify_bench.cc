// classify + police per packet (parse, lookup, token bucket, counters) on in-memory
// bursts of 32, by table size and workload. `ns/packet` = 1e9 / items_per_second.
#include <benchmark/benchmark.h>

#include <memory>

#include "bench_workload.h"
#include "worker_fixture.h"

using namespace stakegate;

namespace {

struct Fixture {
  testing::BenchWorkload w;
  testing::WorkerFixture policy;
  std::vector<PacketView> views;
};

// Built once per (size, workload): building a 1M-node plan takes seconds.
Fixture& fixture(size_t nodes, bool mixed) {
  static std::pair<size_t, bool> key{0, false};
  static std::unique_ptr<Fixture> f;  // one table in memory at a time
  if (!f || key != std::pair{nodes, mixed}) {
    f.reset();
    key = {nodes, mixed};
    f = std::make_unique<Fixture>();
    f->w = testing::make_bench_workload(nodes, mixed, 64);
    Config cfg;
    testing::bench_policy(cfg);
    f->policy.load(cfg, f->w.nodes);
    for (size_t i = 0; i < f->w.count; ++i) f->views.push_back({f->w.frame(i), f->w.frame_size});
  }
  return *f;
}

void BM_ClassifyPolice(benchmark::State& st) {
  Fixture& f = fixture(static_cast<size_t>(st.range(0)), st.range(1) != 0);
  Verdict out[32];
  size_t pos = 0, passed = 0;
  uint64_t now = 0;
  for (auto _ : st) {
    f.policy.worker->process_outside(&f.views[pos], 32, now, out);
    passed += out[0] == Verdict::kPass;
    pos += 32;
    if (pos + 32 > f.views.size()) pos = 0;
    now += 1000;  // 1 us per burst: 32 Mpps of offered load
  }
  benchmark::DoNotOptimize(passed);
  st.SetItemsProcessed(st.iterations() * 32);
  st.SetLabel(st.range(1) ? "mixed" : "staked");
}

}  // namespace

BENCHMARK(BM_ClassifyPolice)
    ->ArgsProduct({{1000, 10000, 100000, 1000000}, {0, 1}})
    ->ArgNames({"nodes", "mixed"})
    ->MinTime(1.0);

// `classify_bench --count NODES staked|mixed PACKETS`: decides exactly PACKETS packets (a
// multiple of 32) and exits, for instruction counts under callgrind:
//   valgrind --tool=callgrind --toggle-collect='*process_outside*' classify_bench --count ...
// Ir of process_outside / PACKETS = instructions per packet.
int main(int argc, char** argv) {
  if (argc == 5 && std::string(argv[1]) == "--count") {
    Fixture& f = fixture(std::stoull(argv[2]), std::string(argv[3]) == "mixed");
    uint64_t packets = std::stoull(argv[4]);
    Verdict out[32];
    uint64_t now = 0;
    for (uint64_t done = 0, pos = 0; done < packets; done += 32, pos += 32) {
      if (pos + 32 > f.views.size()) pos = 0;
      f.policy.worker->process_outside(&f.views[pos], 32, now += 1000, out);
    }
    return 0;
  }
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
