#pragma once
// PolicySnapshot: everything a worker needs to decide a verdict, built once by the
// control plane from a Config and a StakePlan and never written afterwards. Rates in it
// are already divided among the workers (virtual devices and NICs without RSS spread a
// source over every worker, so each enforces rate / workers).
#include <array>
#include <cstdint>
#include <memory>
#include <vector>

#include "stakegate/config/config.h"
#include "stakegate/policy/addr_map.h"
#include "stakegate/policy/stake_plan.h"
#include "stakegate/policy/token_bucket.h"
#include "stakegate/policy/verdict.h"

namespace stakegate {

using PortBitmap = std::array<uint64_t, 1024>;  // one bit per port

inline bool port_in(const PortBitmap& b, uint16_t port) { return (b[port >> 6] >> (port & 63)) & 1; }

struct SourcePolicy {
  // kAbsent: a slot no source of this table uses (its meter is kept for when it returns).
  // kSample: an operator asked for evidence: its dropped packets are sampled.
  // kGraylisted is never in a snapshot: a worker sets it on its own meter.
  static constexpr uint8_t kBlocked = 1, kEjected = 2, kHasBytes = 4, kAbsent = 8, kSample = 16, kGraylisted = 32;
  static constexpr uint16_t kAllPorts = UINT16_MAX;
  BucketParams pps;
  BucketParams bps;      // unlimited when capacity.bps is not set
  uint16_t port_set = kAllPorts;
  TrafficClass cls = TrafficClass::kNone;
  uint8_t flags = 0;
  uint32_t epoch = 0;    // changes when the slot is given to another source: its meter restarts
  friend bool operator==(const SourcePolicy&, const SourcePolicy&) = default;
};

// CIDR blocklist for sources that are not nodes: one exact-match table per prefix
// length in use, longest first.
class CidrMatcher {
 public:
  void add(const Cidr& c);
  bool match_v4(uint32_t a) const {
    for (const auto& [len, map] : v4_)
      if (map.find(a & v4_mask(len)) != V4Map::kEmpty) return true;
    return false;
  }
  bool match_v6(const Ip6& a) const {
    for (const auto& [len, map] : v6_)
      if (map.find(v6_mask_apply(a, len)) != V6Map::kEmpty) return true;
    return false;
  }
  size_t size() const { return count_; }

 private:
  std::vector<std::pair<uint8_t, V4Map>> v4_;
  std::vector<std::pair<uint8_t, V6Map>> v6_;
  size_t count_ = 0;
};

// Peer scoring as a worker applies it: thresholds are divided among the workers like
// rates (each sees its share of a source's drops), penalties are per dropped packet.
struct ScoreParams {
  bool enabled = false;
  double graylist = 0, recover = 0, floor = 0;  // per worker
  double penalty[kVerdictCount] = {};
  double penalty_factor = 1;
  double half_life_ns = 0;
  uint32_t evidence_samples = 0;  // dropped packets sampled per case (0: none)
  uint16_t snaplen = 0;
  bool evidence_on_graylist = false;
};

class PolicySnapshot {
 public:
  // `previous`, when given, is the snapshot this one replaces: slots whose policy did not
  // change are listed as unchanged, so workers bound to it copy only what changed.
  static std::shared_ptr<const PolicySnapshot> build(const Config& cfg, const StakePlan& plan, unsigned workers,
                                                     const PolicySnapshot* previous = nullptr,
                                                     size_t slot_count = 0);

  uint32_t find_v4(uint32_t a) const { return v4_.find(a); }
  uint32_t find_v6(const Ip6& a) const { return v6_.find(a); }
  void prefetch_v4(uint32_t a) const { v4_.prefetch(a); }
  void prefetch_v6(const Ip6& a) const { v6_.prefetch(a); }
  static constexpr uint32_t kNoSource = V4Map::kEmpty;

  const SourcePolicy& source(uint32_t slot) const { return sources_[slot]; }
  size_t source_count() const { return sources_.size(); }
  bool port_allowed(uint16_t port_set, uint16_t port) const {
    return port_set == SourcePolicy::kAllPorts || port_in(port_sets_[port_set], port);
  }
  bool unregistered_port(uint16_t port) const { return port_in(unregistered_ports_, port); }
  const CidrMatcher& blocklist() const { return blocklist_; }

  BucketParams unregistered_pool_pps, unregistered_pool_bps, unregistered_source_pps;
  ScoreParams score;
  unsigned workers = 1;
  uint64_t generation = 1;
  uint64_t base_generation = 0;          // the generation `changed_slots` is relative to
  std::vector<uint32_t> changed_slots;   // slots whose SourcePolicy differs from base_generation's

 private:
  std::vector<SourcePolicy> sources_;
  V4Map v4_;
  V6Map v6_;
  std::vector<PortBitmap> port_sets_;
  PortBitmap unregistered_ports_{};
  CidrMatcher blocklist_;
};

}  // namespace stakegate
