// The packet parser and the whole verdict path (classify, police, score, sample) on
// arbitrary frames. The input is a burst: frames separated by the 4 bytes "SGFB"; the
// first byte of each frame also moves the clock; the second makes some of them chained
// (bit 7: only a first part readable) and some the cluster's own (bit 6: from the inside
// port, opening and refreshing sessions that the outside frames after them may match).
// Each frame is copied into a buffer of exactly its readable size, so reading one byte
// past it is an AddressSanitizer report.
#include <cstring>
#include <memory>
#include <vector>

#include "fuzz_common.h"
#include "stakegate/net/parse.h"
#include "worker_fixture.h"

using namespace stakegate;

namespace {

struct Setup : stakegate::testing::WorkerFixture {
  uint64_t now = 0;
  Setup() {
    load(R"(dataplane: {eal: [], outside: {vdev: net_null0}, inside: {vdev: net_null1}}
capacity: {pps: 100000, bps: 100000000}
identity:
  nodes:
    - {node_id: "aa00000000000000000000000000000000000000000000000000000000000001", role: consensus, address: "198.18.1.1:3569"}
    - {node_id: "aa00000000000000000000000000000000000000000000000000000000000002", role: access, address: "[2001:2::2]:3569"}
    - {node_id: "aa00000000000000000000000000000000000000000000000000000000000003", role: execution, address: "198.18.1.3:3569", ejected: true}
    - {node_id: "aa00000000000000000000000000000000000000000000000000000000000004", role: collection, address: "198.18.1.4:3569"}
roles:
  consensus: {share: 0.3, min_pps: 10, ports: [3569]}
  access: {share: 0.2, min_pps: 10, ports: [3569, 9000]}
  execution: {share: 0.2, min_pps: 10}
  collection: {share: 0.1, min_pps: 10, ports: [3569]}
unregistered: {share: 0.05, per_source_pps: 10, ports: [9000], table_size: 64, icmp_echo: true}
blocklist: [{cidr: 198.51.100.0/24}, {node_id: "aa00000000000000000000000000000000000000000000000000000000000004"}]
scoring: {graylist: -5, half_life_s: 1}
evidence: {max_samples: 100000, snaplen: 256}
cluster: {prefixes: [198.18.255.0/24, "2001:2::ff/128"]}
infra: {neighbours: [{mac: "02:00:00:00:00:01", addresses: [198.18.0.1, "fe80::1"]}], routing: [bgp, bfd, ospf, pim, vrrp, rip, ldp], routing_pps: 50}
)", 1, 64);
  }
};

uint64_t total(const WorkerCounters& c, int direction) {
  uint64_t n = 0;
  for (auto& cls : c.packets[direction])
    for (uint64_t v : cls) n += v;
  return n;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Setup s;
  std::vector<std::vector<uint8_t>> frames;
  const uint8_t* p = data;
  const uint8_t* end = data + size;
  while (p <= end && frames.size() < 32) {
    const uint8_t* sep = static_cast<const uint8_t*>(memmem(p, static_cast<size_t>(end - p), "SGFB", 4));
    const uint8_t* stop = sep ? sep : end;
    frames.emplace_back(p, stop);
    if (!sep) break;
    p = sep + 4;
  }
  std::vector<std::unique_ptr<uint8_t[]>> owned;
  std::vector<PacketView> views;
  std::vector<bool> inside;
  for (const auto& f : frames) {
    inside.push_back(f.size() > 1 && (f[1] & 0x40));
    // Some frames arrive in chained buffers (a multi-segment mbuf): only their first part
    // is at `data`, and only that part is allocated.
    const size_t first = f.size() > 20 && (f[1] & 0x80) ? 14 + f[1] % (f.size() - 14) : f.size();
    owned.emplace_back(new uint8_t[first ? first : 1]);
    if (first) std::memcpy(owned.back().get(), f.data(), first);
    views.push_back({owned.back().get(), static_cast<uint32_t>(first), static_cast<uint32_t>(f.size())});
    PacketMeta m;
    parse_view(views.back(), m);  // the parser alone, too
    s.now += f.empty() ? 1 : uint64_t{f[0]} * 1'000'000;
  }
  // Each run of frames of one direction is one burst, in order: an outside frame sees the
  // sessions the inside frames before it opened.
  // Fragments ahead of their first are held (as run and replay hold them) and given back
  // when due, and at the end of the input, when all of them are decided.
  s.worker->set_holding(true);
  std::vector<PacketView> held;
  auto release = [&](uint64_t now) {
    std::vector<Verdict> v(held.size());
    const uint64_t before = total(s.worker->counters(), 0);
    s.worker->process_held(held.data(), static_cast<uint16_t>(held.size()), now, v.data());
    std::vector<PacketView> kept;
    for (size_t k = 0; k < held.size(); ++k) {
      if (v[k] == Worker::kHold) kept.push_back(held[k]);
      else if (static_cast<int>(v[k]) >= kVerdictCount) __builtin_trap();
    }
    if (total(s.worker->counters(), 0) != before + held.size() - kept.size()) __builtin_trap();
    held = kept;
    if (held.size() != s.worker->held()) __builtin_trap();
  };
  std::vector<Verdict> out(views.size());
  for (size_t i = 0; i < views.size();) {
    size_t j = i;
    while (j < views.size() && inside[j] == inside[i]) ++j;
    const auto n = static_cast<uint16_t>(j - i);
    const int d = inside[i] ? 1 : 0;
    const uint64_t before = total(s.worker->counters(), d);
    if (inside[i]) {
      s.worker->process_inside(views.data() + i, n, s.now);
    } else if (s.worker->process_outside(views.data() + i, n, s.now, out.data() + i) != n) {
      __builtin_trap();
    }
    size_t holds = 0;
    for (size_t k = i; k < j && !inside[i]; ++k) {
      if (out[k] == Worker::kHold) {
        held.push_back(views[k]);
        holds++;
      } else if (static_cast<int>(out[k]) >= kVerdictCount) {
        __builtin_trap();
      }
    }
    if (total(s.worker->counters(), d) != before + n - holds) __builtin_trap();  // a lost count
    if (held.size() != s.worker->held()) __builtin_trap();
    if (s.worker->held_due(s.now)) release(s.now);
    i = j;
  }
  if (!held.empty()) {
    s.now += Worker::kHoldNs;
    release(s.now);
  }
  if (s.worker->held() != 0) __builtin_trap();
  s.worker->tick(s.now);  // between bursts, as the lcore loop does: sweeps the tables now and then
  s.worker->samples().drain([](const SampleRecord& r) {
    if (r.caplen > kMaxSnap) __builtin_trap();
  });
  return 0;
}
