// The worker's cold side: construction, adopting a snapshot, peer score and evidence
// events. Nothing here runs per packet except on drops of graylisted or watched sources.
#include <algorithm>
#include <bit>
#include <cstring>

#include "stakegate/pipeline/worker.h"
#include "worker_internal.h"

namespace stakegate {

Worker::Worker(const Sizes& sizes, uint64_t hash_seed)
    : meters_(sizes.sources),
      cold_(sizes.sources),
      seed_(mix64(hash_seed) | 1),
      sessions_(sizes.sessions, hash_seed ^ 0x5e55) {
  for (NodeMeter& m : meters_) m.epoch = kUnstarted;  // no snapshot uses it: the first bind starts every meter
  uint64_t sets = std::bit_ceil(std::max<uint64_t>(1, sizes.unregistered / kWays));
  unregistered_.assign(sets * kWays, UnregisteredEntry{0, {}});
  unregistered_mask_ = sets - 1;
  const uint64_t frags = std::bit_ceil(std::max<uint64_t>(16, sizes.fragments));
  fragments_.assign(frags, FragmentEntry{0, 0, kNoChannel});
  fragment_mask_ = frags - 1;
}

void Worker::sweep(uint64_t now_ns) noexcept {
  const uint32_t now = session_tick(now_ns);
  swept_tick_ = now;
  sessions_.sweep(now, kSweepSets);
  for (unsigned i = 0; i < kSweepSets; ++i, ++sweep_next_) {
    FragmentEntry& f = fragments_[sweep_next_ & fragment_mask_];
    if (f.tag != 0 && tick_before(f.deadline, now)) f = FragmentEntry{0, 0, kNoChannel};
    solicitations_->sweep(sweep_next_, now);
    dhcp_->sweep(sweep_next_, now);
  }
}

void Worker::start_meter(uint32_t slot, const SourcePolicy& s) noexcept {
  meters_[slot] = NodeMeter{};
  cold_[slot] = NodeMeterCold{};
  meters_[slot].pkt = Meter{s.pps.burst, 0};
  meters_[slot].epoch = s.epoch;
  cold_[slot].bytes = Meter{s.bps.burst, 0};
  cold_[slot].request = Meter{s.request.burst, 0};
  cold_[slot].request_hop = Meter{s.request.burst, 0};
}

void Worker::bind(const PolicySnapshot* snap) noexcept {
  // Slots are stable: a meter keeps its tokens and counters across snapshots and only
  // takes the new policy; a slot that now belongs to another source starts afresh.
  const bool incremental = snap_ && bound_generation_ == snap->base_generation;
  auto adopt = [&](uint32_t i) {
    const SourcePolicy& s = snap->source(i);
    NodeMeter& m = meters_[i];
    if (s.flags & SourcePolicy::kAbsent) return;  // keep the meter for when its source returns
    if (m.epoch != s.epoch) start_meter(i, s);
    // The graylist is this worker's own state: it survives a new policy for the source.
    const uint8_t gray = m.flags & SourcePolicy::kGraylisted;
    const bool sampled_before = m.flags & SourcePolicy::kSample;
    set_rates(i, s, gray ? snap->score.penalty_factor : 1.0, snap->score);
    m.port_set = s.port_set;
    m.cls = s.cls;
    m.flags = static_cast<uint8_t>(s.flags | gray);
    if ((s.flags & SourcePolicy::kSample) && !sampled_before) cold_[i].peer.want_samples(snap->score.evidence_samples);
  };
  if (incremental) {
    for (uint32_t i : snap->changed_slots) adopt(i);
  } else {
    for (uint32_t i = 0; i < snap->source_count(); ++i) adopt(i);
  }
  if (!snap_) {
    pool_pkts_ = Meter{snap->unregistered_pool_pps.burst, 0};
    pool_bytes_ = Meter{snap->unregistered_pool_bps.burst, 0};
    sessions_pkts_ = Meter{snap->sessions_pps.burst, 0};
    sessions_bytes_ = Meter{snap->sessions_bps.burst, 0};
    infra_ = Meter{snap->infra_pps.burst, 0};
    icmp_errors_ = Meter{snap->icmp_errors_pps.burst, 0};
  }
  for (unsigned i = 0; i < PolicySnapshot::kMaxNeighbours; ++i)
    if (bound_neighbours_[i] != snap->neighbours()[i]) {
      bound_neighbours_[i] = snap->neighbours()[i];
      neighbour_meters_[i] = Meter{snap->infra_pps.burst, 0};
      routing_meters_[i] = Meter{snap->routing_pps.burst, 0};
    }
  snap_ = snap;
  bound_generation_ = snap->generation;
}

// ---- peer score and evidence ---------------------------------------------------------

// A staked source's packet was dropped. If the drop is attributable (a packet of its own
// verified connection), its score takes the reason's penalty, entering the graylist below
// the threshold; a graylisted or watched source's packet is copied for evidence while its
// case wants samples, marked verified or not.
[[gnu::noinline]] void Worker::on_source_drop(uint32_t slot, Verdict v, bool attributable, const PacketView& p,
                                              uint64_t now_ns) noexcept {
  const ScoreParams& sp = snap_->score;
  NodeMeter& nm = meters_[slot];
  PeerScore& ps = cold_[slot].peer;
  const bool gray = nm.flags & SourcePolicy::kGraylisted;
  if (attributable && sp.enabled) {
    const double penalty = ps.penalty(sp, v, gray);
    if (penalty > 0 && ps.penalise(sp, penalty, now_ns, gray)) set_graylisted(slot, true, now_ns);
  }
  uint32_t& left = attributable ? ps.samples_left : ps.unverified_left;
  if ((nm.flags & (SourcePolicy::kGraylisted | SourcePolicy::kSample)) && left) {
    left--;
    if (SampleRecord* r = samples_.claim()) {
      r->kind = SampleRecord::kSample;
      r->verdict = static_cast<uint8_t>(v);
      r->verified = attributable;
      r->slot = slot;
      r->epoch = nm.epoch;
      r->orig_len = wire_length(p);
      r->caplen = static_cast<uint16_t>(std::min<uint32_t>(p.len, std::min<uint32_t>(sp.snaplen, kMaxSnap)));
      std::memcpy(r->data, p.data, r->caplen);
      r->ns = now_ns;
      r->score = ps.score;
      samples_.publish();
    }
  }
}

[[gnu::noinline]] void Worker::check_recovery(uint32_t slot, uint64_t now_ns) noexcept {
  const ScoreParams& sp = snap_->score;
  PeerScore& ps = cold_[slot].peer;
  ps.decay(now_ns, sp.half_life_ns);
  if (!sp.enabled || ps.score > sp.recover) set_graylisted(slot, false, now_ns);
}

// The meter's profiles from its policy, times `factor` (1 normally, penalty_factor while
// graylisted); tokens above a lower depth are cut to it.
void Worker::set_rates(uint32_t slot, const SourcePolicy& s, double factor, const ScoreParams& sp) noexcept {
  NodeMeter& m = meters_[slot];
  NodeMeterCold& c = cold_[slot];
  m.pkt_profile = scaled_profile(s.pps, factor);
  m.pkt.tokens = std::min(m.pkt.tokens, m.pkt_profile.burst);
  c.bps_profile = scaled_profile(s.bps, factor);
  c.bytes.tokens = std::min(c.bytes.tokens, c.bps_profile.burst);
  c.request_profile = scaled_profile(s.request, factor);
  c.request.tokens = std::min(c.request.tokens, c.request_profile.burst);
  c.request_hop.tokens = std::min(c.request_hop.tokens, c.request_profile.burst);
  c.peer.set_normal(s.pps, sp);
}

void Worker::set_graylisted(uint32_t slot, bool on, uint64_t now_ns) noexcept {
  NodeMeter& m = meters_[slot];
  PeerScore& ps = cold_[slot].peer;
  set_rates(slot, snap_->source(slot), on ? snap_->score.penalty_factor : 1.0, snap_->score);
  if (on) {
    m.flags |= SourcePolicy::kGraylisted;
    ps.normal_meter = Meter{0, now_ns};  // it was just over its allowance
    if (snap_->score.evidence_on_graylist) ps.want_samples(snap_->score.evidence_samples);
  } else {
    m.flags &= static_cast<uint8_t>(~SourcePolicy::kGraylisted);
    if (!(m.flags & SourcePolicy::kSample)) ps.want_samples(0);
  }
  push_event(on ? SampleRecord::kGraylistEnter : SampleRecord::kGraylistExit, slot, now_ns);
}

void Worker::push_event(uint8_t kind, uint32_t slot, uint64_t now_ns) noexcept {
  if (SampleRecord* r = events_.claim()) {
    r->kind = kind;
    r->slot = slot;
    r->epoch = meters_[slot].epoch;
    r->caplen = 0;
    r->orig_len = 0;
    r->ns = now_ns;
    r->score = cold_[slot].peer.score;
    events_.publish();
  }
}

}  // namespace stakegate
