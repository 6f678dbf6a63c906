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

MeterProfile profile(double rate, double burst, unsigned workers, uint64_t min_burst = 1) {
  return MeterProfile::make(per_worker(rate, workers), static_cast<uint64_t>(std::llround(burst / workers)), min_burst);
}

// A byte meter holds at least one frame of the largest size a port can receive, or
// frames of that size would never pass (5 pps x 1,538 B x 100 ms is 769 bytes).
uint64_t max_frame_bytes(const Config& cfg) {
  return std::max<uint64_t>(static_cast<uint64_t>(kFullFrameBytes), cfg.dataplane.mbuf_data_room);
}

// Deepens an unregistered meter (the pool's, a source's) by a reserve for verified
// connections (PolicySnapshot::unregistered_reserve): half its burst, at least `least` (one
// packet, or one frame of bytes), so that they keep passing while a flood holds the rest empty.
uint64_t add_reserve(MeterProfile& p, uint64_t least) {
  if (p.rate == 0) return 0;
  const uint64_t reserve = std::max(p.burst / 2, least);
  p.burst += reserve;
  p.fill_ns = p.burst / p.rate + 1;
  return reserve;
}

SessionTimeouts timeouts(const SessionConfig& s) {
  return {ticks_of_seconds(s.tcp_syn_s),  ticks_of_seconds(s.tcp_established_s), ticks_of_seconds(s.tcp_closing_s),
          ticks_of_seconds(s.tcp_closed_s), ticks_of_seconds(s.udp_s),              ticks_of_seconds(s.icmp_s)};
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

void ClusterPrefixes::add(const Cidr& c) {
  if (c.base.is_v4) {
    v4_.push_back({c.base.v4, v4_mask(c.prefix_len)});
    return;
  }
  Ip6 ones{};
  ones.bytes.fill(0xff);
  const Ip6 mask = v6_mask_apply(ones, c.prefix_len);
  V6 p{};
  std::memcpy(&p.hi, c.base.v6.bytes.data(), 8);
  std::memcpy(&p.lo, c.base.v6.bytes.data() + 8, 8);
  std::memcpy(&p.mask_hi, mask.bytes.data(), 8);
  std::memcpy(&p.mask_lo, mask.bytes.data() + 8, 8);
  v6_.push_back(p);
}

std::shared_ptr<const PolicySnapshot> SnapshotBuilder::build(const Config& cfg, const StakePlan& plan, Sharding sharding,
                                                             const PolicySnapshot* previous, size_t slot_count) {
  auto snap = std::make_shared<PolicySnapshot>();
  const unsigned workers = sharding.per_source, pools = sharding.pools;
  snap->workers = workers;
  snap->pool_workers = pools;
  const uint64_t frame = max_frame_bytes(cfg);
  std::map<std::vector<uint16_t>, uint16_t> set_index;
  size_t v4_count = 0, v6_count = 0;
  for (const auto& s : plan.sources)
    for (const auto& a : s.addrs) (a.is_v4 ? v4_count : v6_count)++;
  snap->v4_.reserve(v4_count);
  snap->v6_.reserve(v6_count);

  for (const auto& s : plan.sources) slot_count = std::max<size_t>(slot_count, s.slot + 1);
  for (const Cidr& c : cfg.cluster.prefixes) snap->cluster_.add(c);
  SourcePolicy absent;
  absent.flags = SourcePolicy::kAbsent;
  snap->sources_.assign(slot_count, absent);  // reachable by no address of this table
  for (const SourcePlan& s : plan.sources) {
    SourcePolicy p;
    p.epoch = s.slot_epoch;
    p.cls = class_of(s.role);
    p.pps = profile(s.rate_pps, s.burst_pkts, workers);
    p.request = profile(s.request_pps, s.request_burst, workers);
    if (s.rate_bps > 0) {
      p.bps = profile(s.rate_bps / 8, s.burst_bytes, workers, frame);
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
    for (const IpAddr& a : s.addrs) {
      if (a.is_v4) snap->v4_.insert(a.v4, s.slot);
      else snap->v6_.insert(a.v6, s.slot);
      // Marked once here, so the data path tests a flag instead of the prefixes per packet.
      if (a.is_v4 ? (martian_v4(a.v4) || snap->cluster_.contains_v4(a.v4)) : (martian_v6(a.v6) || snap->cluster_.contains_v6(a.v6)))
        p.flags |= SourcePolicy::kNotOutside;
    }
    snap->sources_[s.slot] = p;
  }
  snap->unregistered_ports_ = bitmap(cfg.unregistered.ports);
  snap->icmp_echo = cfg.unregistered.icmp_echo;
  std::vector<uint16_t> service = cfg.unregistered.ports;
  for (const RoleQos& r : cfg.roles) service.insert(service.end(), r.ports.begin(), r.ports.end());
  snap->service_ports_ = bitmap(service);
  for (const auto& b : cfg.blocklist)
    if (b.cidr) snap->blocklist_.add(*b.cidr);
  snap->ethertypes_ = cfg.infra.ethertypes;
  snap->ra_guard = cfg.infra.ra_guard;
  snap->routing = cfg.infra.routing;
  snap->monitor = cfg.monitor;
  for (size_t i = 0; i < cfg.infra.neighbours.size() && i < PolicySnapshot::kMaxNeighbours; ++i)
    std::memcpy(&snap->neighbours_[i], cfg.infra.neighbours[i].data(), 6);
  for (const auto& a : cfg.infra.neighbour_addresses) {
    PolicySnapshot::GuardedAddress g{a.address.is_v4 ? mapped_v4(a.address.v4) : a.address.v6, 0};
    std::memcpy(&g.mac, a.mac.data(), 6);
    snap->guarded_.push_back(g);
  }

  // Per-source buckets are split like a source's traffic; pools always over every worker.
  const UnregisteredPlan& u = plan.unregistered;
  snap->unregistered_pool_pps = profile(u.pool_pps, u.pool_burst, pools);
  if (u.pool_bps > 0) snap->unregistered_pool_bps = profile(u.pool_bps / 8, u.pool_burst_bytes, pools, frame);
  snap->unregistered_reserve = add_reserve(snap->unregistered_pool_pps, kTokenScale);
  snap->unregistered_reserve_bytes = add_reserve(snap->unregistered_pool_bps, meter_cost(frame));
  snap->unregistered_source_pps = profile(u.per_source_pps, u.per_source_burst, workers);
  snap->unregistered_source_reserve = add_reserve(snap->unregistered_source_pps, kTokenScale);
  snap->sessions_pps = profile(plan.sessions.pps, plan.sessions.burst, pools);
  if (plan.sessions.bps > 0) snap->sessions_bps = profile(plan.sessions.bps / 8, plan.sessions.burst_bytes, pools, frame);
  snap->infra_pps = profile(plan.infra.pps, plan.infra.burst, pools);
  snap->icmp_errors_pps = profile(plan.icmp_errors.pps, plan.icmp_errors.burst, pools);
  // A neighbour's routing packets come from its own addresses: split like a source's traffic.
  snap->routing_pps = profile(plan.routing.pps, plan.routing.burst, workers);
  snap->timeouts = timeouts(cfg.sessions);
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
