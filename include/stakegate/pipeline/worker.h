#pragma once
// One worker's share of the data path: parse -> classify -> police for a burst of
// frames. A Worker owns all state it writes (node meters, unregistered buckets,
// counters); it reads a PolicySnapshot that nobody writes. No allocation, lock,
// exception, log line or system call happens per packet, and time is passed in.
#include <atomic>
#include <cstdint>
#include <vector>

#include "stakegate/base/verdict.h"
#include "stakegate/pipeline/peer_score.h"
#include "stakegate/pipeline/sample_ring.h"
#include "stakegate/policy/meter.h"
#include "stakegate/policy/snapshot.h"

namespace stakegate {

struct PacketView {
  const uint8_t* data;
  uint32_t len;
};

// Everything a packet from a known source touches, in one cache line written only by
// its worker: the packet meter and its profile (a worker-local copy of the source's
// policy, taken at bind time, so the snapshot's line need not be read per packet) and
// the common counters.
struct alignas(64) NodeMeter {
  Meter pkt;
  MeterProfile pkt_profile;  // this worker's share; scaled down while graylisted
  uint64_t passed;
  uint64_t dropped_over_rate;
  uint16_t port_set;
  TrafficClass cls;
  uint8_t flags;       // SourcePolicy flags, plus kGraylisted (this worker's own)
  uint32_t epoch;      // SourcePolicy::epoch this meter was started for
};
static_assert(sizeof(NodeMeter) == 64, "a node's hot state is one cache line");

// What only rare verdicts, byte limits and peer scoring need: kept out of the hot line.
struct NodeMeterCold {
  MeterProfile bps_profile;
  Meter bytes;
  uint64_t dropped_blocklisted;
  uint64_t dropped_ejected;
  uint64_t dropped_port_denied;
  PeerScore peer;
};

struct alignas(64) WorkerCounters {
  uint64_t packets[kDirectionCount][kTrafficClassCount][kVerdictCount];
  uint64_t bytes[kDirectionCount][kTrafficClassCount][kVerdictCount];
  uint64_t unregistered_evictions;   // an active per-source bucket was recycled (table full)
  uint64_t non_first_fragments;
};

class Worker {
 public:
  // `unregistered_table_size` is rounded up to a power of two, in sets of kWays.
  // `source_capacity` meters are allocated here, once: binding never allocates.
  Worker(unsigned unregistered_table_size, size_t source_capacity, uint64_t hash_seed = 0x5eed);

  // Adopts a snapshot (which must outlive its use, and hold at most source_capacity slots):
  // copies each changed source's policy into its meter; a slot given to another source
  // (new epoch) restarts with a full bucket and zero counters. Called by the worker itself
  // between bursts, so no meter ever has two writers.
  void bind(const PolicySnapshot* snap) noexcept;

  // Decides every frame from the outside port. Returns n; out[i] is frame i's verdict.
  uint16_t process_outside(const PacketView* pkts, uint16_t n, uint64_t now_ns, Verdict* out) noexcept;
  // Counts frames from the inside port (they always pass).
  void count_inside(const PacketView* pkts, uint16_t n) noexcept;

  const WorkerCounters& counters() const { return counters_; }
  const NodeMeter& meter(uint32_t slot) const { return meters_[slot]; }
  const NodeMeterCold& meter_cold(uint32_t slot) const { return cold_[slot]; }
  const PolicySnapshot& snapshot() const { return *snap_; }
  // Evidence and graylist events, for a non-worker thread to drain.
  SampleRing& samples() { return samples_; }
  const SampleRing& samples() const { return samples_; }
  // The worker's own clock, as it last saw it (process_outside, or tick() from an idle
  // loop). Readers on other threads judge this worker's state by it: CPUs' clocks need
  // not agree (TSCs of virtual CPUs drift apart).
  void tick(uint64_t now_ns) noexcept { clock_ns_.store(now_ns, std::memory_order_relaxed); }
  uint64_t clock_ns() const noexcept { return clock_ns_.load(std::memory_order_relaxed); }
  size_t source_capacity() const { return meters_.size(); }

  static constexpr unsigned kWays = 4;
  static constexpr uint16_t kStage = 32;  // packets decided together (see decide_stage)

 private:
  struct UnregisteredEntry {
    uint64_t tag;  // 0: empty
    Meter meter;
  };

  void decide_stage(const PacketView* pkts, uint16_t n, uint64_t now_ns, Verdict* out) noexcept;
  Verdict police_source(uint32_t slot, const struct PacketMeta& m, uint32_t len, uint64_t now_ns);
  Verdict police_bytes(uint32_t slot, uint32_t len, uint64_t now_ns);
  Verdict police_unregistered(uint64_t tag, uint32_t len, uint64_t now_ns);
  void on_source_drop(uint32_t slot, Verdict v, const PacketView& p, uint64_t now_ns) noexcept;
  void check_recovery(uint32_t slot, uint64_t now_ns) noexcept;
  void set_graylisted(uint32_t slot, bool on, uint64_t now_ns) noexcept;
  void set_rates(uint32_t slot, const SourcePolicy& s, double factor, const ScoreParams& sp) noexcept;
  void push_event(uint8_t kind, uint32_t slot, uint64_t now_ns) noexcept;

  void start_meter(uint32_t slot, const SourcePolicy& s) noexcept;
  // The set of an unregistered source. Tags are forced odd (0 marks an empty way), so the
  // set comes from the high half of the tag, never from bit 0.
  UnregisteredEntry* unregistered_set(uint64_t tag) noexcept {
    return &unregistered_[((tag >> 32) & unregistered_mask_) * kWays];
  }
  static constexpr uint32_t kUnstarted = UINT32_MAX;

  const PolicySnapshot* snap_ = nullptr;
  std::vector<NodeMeter> meters_;
  std::vector<NodeMeterCold> cold_;
  std::vector<UnregisteredEntry> unregistered_;
  uint64_t unregistered_mask_ = 0;  // set count - 1
  uint64_t seed_;
  Meter pool_pkts_, pool_bytes_;
  WorkerCounters counters_{};
  SampleRing samples_{1024};
  alignas(64) std::atomic<uint64_t> clock_ns_{0};
};

}  // namespace stakegate
