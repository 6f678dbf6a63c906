#include "stakegate/policy/snapshot_builder.h"

#include <algorithm>
#include <cmath>
#include <map>

namespace stakegate {
namespace {

// Whole units per second per worker; a positive rate never rounds down to zero.
uint64_t per_worker(double rate, unsigned workers) {
  if (rate <= 0) return 0;
  return std::max<uint64_t>(1, static_cast<uint64_t>(std::llround(rate / workers)));
}

MeterProfile profile(double rate, double burst, unsigned workers) {
  return MeterProfile::make(per_worker(rate, workers), static_cast<uint64_t>(std::llround(burst / workers)));
}

PortBitmap bitmap(const std::vector<uint16_t>& ports) {
  PortBitmap b{};
  for (uint16_t p : ports) b[p >> 6] |= uint64_t{1} << (p & 63);
  return b;
}

ScoreParams score_params(const Config& cfg, unsigned workers) {
  const ScoringConfig& sc = cfg.scoring;
  ScoreParams sp;
  sp.enabled = sc.enabled;
  sp.graylist = sc.graylist / workers;
  sp.recover = sc.recover / workers;
  sp.floor = sc.floor / workers;
  sp.penalty[static_cast<int>(Verdict::kOverRate)] = sc.penalty_over_rate;
  sp.penalty[static_cast<int>(Verdict::kPortDenied)] = sc.penalty_port_denied;
  sp.penalty[static_cast<int>(Verdict::kBlocklisted)] = sc.penalty_blocklisted;
  sp.penalty[static_cast<int>(Verdict::kEjected)] = sc.penalty_ejected;
  sp.penalty_factor = sc.penalty_factor;
  sp.half_life_ns = sc.half_life_s * 1e9;
  sp.evidence_samples = cfg.evidence.max_samples;
  sp.snaplen = static_cast<uint16_t>(cfg.evidence.snaplen);
  sp.evidence_on_graylist = cfg.evidence.on_graylist;
  return sp;
}

}  // namespace

std::shared_ptr<const PolicySnapshot> SnapshotBuilder::build(const Config& cfg, const StakePlan& plan, unsigned workers,
                                                             const PolicySnapshot* previous, size_t slot_count) {
  auto snap = std::make_shared<PolicySnapshot>();
  snap->workers = workers;
  std::map<std::vector<uint16_t>, uint16_t> set_index;
  size_t v4_count = 0, v6_count = 0;
  for (const auto& s : plan.sources)
    for (const auto& a : s.addrs) (a.is_v4 ? v4_count : v6_count)++;
  snap->v4_.reserve(v4_count);
  snap->v6_.reserve(v6_count);

  for (const auto& s : plan.sources) slot_count = std::max<size_t>(slot_count, s.slot + 1);
  SourcePolicy absent;
  absent.flags = SourcePolicy::kAbsent;
  snap->sources_.assign(slot_count, absent);  // reachable by no address of this table
  for (const SourcePlan& s : plan.sources) {
    SourcePolicy p;
    p.epoch = s.slot_epoch;
    p.cls = class_of(s.role);
    p.pps = profile(s.rate_pps, s.burst_pkts, workers);
    if (s.rate_bps > 0) {
      p.bps = profile(s.rate_bps / 8, s.burst_bytes, workers);
      p.flags |= SourcePolicy::kHasBytes;
    }
    if (s.blocked) p.flags |= SourcePolicy::kBlocked;
    if (s.sampled) p.flags |= SourcePolicy::kSample;
    if (s.ejected) p.flags |= SourcePolicy::kEjected;
    if (!s.all_ports) {
      auto [it, fresh] = set_index.emplace(s.ports, static_cast<uint16_t>(snap->port_sets_.size()));
      if (fresh) snap->port_sets_.push_back(bitmap(s.ports));
      p.port_set = it->second;
    }
    snap->sources_[s.slot] = p;
    for (const IpAddr& a : s.addrs) {
      if (a.is_v4) snap->v4_.insert(a.v4, s.slot);
      else snap->v6_.insert(a.v6, s.slot);
    }
  }
  snap->unregistered_ports_ = bitmap(cfg.unregistered.ports);
  for (const auto& b : cfg.blocklist)
    if (b.cidr) snap->blocklist_.add(*b.cidr);

  const UnregisteredPlan& u = plan.unregistered;
  snap->unregistered_pool_pps = profile(u.pool_pps, u.pool_burst, workers);
  if (u.pool_bps > 0) snap->unregistered_pool_bps = profile(u.pool_bps / 8, u.pool_burst_bytes, workers);
  snap->unregistered_source_pps = profile(u.per_source_pps, u.per_source_burst, workers);
  snap->score = score_params(cfg, workers);
  if (previous) {
    snap->generation = previous->generation + 1;
    snap->base_generation = previous->generation;
    for (uint32_t i = 0; i < snap->sources_.size(); ++i)
      if (i >= previous->sources_.size() || !(snap->sources_[i] == previous->sources_[i])) snap->changed_slots.push_back(i);
  } else {
    for (uint32_t i = 0; i < snap->sources_.size(); ++i) snap->changed_slots.push_back(i);
  }
  return snap;
}

}  // namespace stakegate
