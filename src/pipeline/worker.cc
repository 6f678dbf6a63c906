#include "stakegate/pipeline/worker.h"

#include <bit>
#include <cstring>

#include "stakegate/net/parse.h"

namespace stakegate {

Worker::Worker(unsigned table_size, size_t source_capacity, uint64_t hash_seed)
    : meters_(source_capacity), cold_(source_capacity), seed_(mix64(hash_seed) | 1) {
  for (NodeMeter& m : meters_) m.epoch = kUnstarted;  // no snapshot uses it: the first bind starts every meter
  uint64_t sets = std::bit_ceil(std::max<uint64_t>(1, table_size / kWays));
  unregistered_.assign(sets * kWays, UnregisteredEntry{0, {}});
  unregistered_mask_ = sets - 1;
}

void Worker::start_meter(uint32_t slot, const SourcePolicy& s) noexcept {
  meters_[slot] = NodeMeter{};
  cold_[slot] = NodeMeterCold{};
  meters_[slot].pkt = Meter{s.pps.burst, 0};
  meters_[slot].epoch = s.epoch;
  cold_[slot].bytes = Meter{s.bps.burst, 0};
}

void Worker::bind(const PolicySnapshot* snap) noexcept {
  // Slots are stable: a meter keeps its tokens and counters across snapshots and only
  // takes the new policy; a slot that now belongs to another source starts afresh.
  const bool incremental = snap_ && snap_->generation == snap->base_generation;
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
    if ((s.flags & SourcePolicy::kSample) && !sampled_before) cold_[i].peer.samples_left = snap->score.evidence_samples;
  };
  if (incremental) {
    for (uint32_t i : snap->changed_slots) adopt(i);
  } else {
    for (uint32_t i = 0; i < snap->source_count(); ++i) adopt(i);
  }
  if (!snap_) {
    pool_pkts_ = Meter{snap->unregistered_pool_pps.burst, 0};
    pool_bytes_ = Meter{snap->unregistered_pool_bps.burst, 0};
  }
  snap_ = snap;
}

[[gnu::always_inline]] inline Verdict Worker::police_source(uint32_t slot, const PacketMeta& m, uint32_t len,
                                                            uint64_t now_ns) {
  NodeMeter& nm = meters_[slot];
  if (nm.flags & (SourcePolicy::kBlocked | SourcePolicy::kEjected | SourcePolicy::kGraylisted)) [[unlikely]] {
    if (nm.flags & (SourcePolicy::kBlocked | SourcePolicy::kEjected)) {
      bool blocked = nm.flags & SourcePolicy::kBlocked;
      (blocked ? cold_[slot].dropped_blocklisted : cold_[slot].dropped_ejected)++;
      return blocked ? Verdict::kBlocklisted : Verdict::kEjected;
    }
    PeerScore& ps = cold_[slot].peer;
    if (now_ns >= ps.score_ns + kDecayStepNs) check_recovery(slot, now_ns);  // has its score recovered?
    if (nm.flags & SourcePolicy::kGraylisted) ps.check_normal(now_ns);
  }
  // A non-first fragment has no port: it is policed by source only. A port-less
  // protocol (ICMP, ...) is refused where the role lists ports.
  if (!m.non_first_fragment && (m.has_port ? !snap_->port_allowed(nm.port_set, m.dst_port)
                                           : nm.port_set != SourcePolicy::kAllPorts)) {
    cold_[slot].dropped_port_denied++;
    return Verdict::kPortDenied;
  }
  if (nm.flags & SourcePolicy::kHasBytes) return police_bytes(slot, len, now_ns);
  if (!meter_take(nm.pkt, nm.pkt_profile, now_ns, kTokenScale)) {
    nm.dropped_over_rate++;
    return Verdict::kOverRate;
  }
  nm.passed++;
  return Verdict::kPass;
}

// With capacity.bps a packet must fit both the packet and the byte meter, or it costs neither.
Verdict Worker::police_bytes(uint32_t slot, uint32_t len, uint64_t now_ns) {
  NodeMeter& nm = meters_[slot];
  NodeMeterCold& c = cold_[slot];
  meter_refill(nm.pkt, nm.pkt_profile, now_ns);
  meter_refill(c.bytes, c.bps_profile, now_ns);
  const uint64_t byte_cost = meter_cost(len);
  if (nm.pkt.tokens < kTokenScale || c.bytes.tokens < byte_cost) {
    nm.dropped_over_rate++;
    return Verdict::kOverRate;
  }
  nm.pkt.tokens -= kTokenScale;
  c.bytes.tokens -= byte_cost;
  nm.passed++;
  return Verdict::kPass;
}

Verdict Worker::police_unregistered(uint64_t tag, uint32_t len, uint64_t now_ns) {
  const PolicySnapshot& snap = *snap_;
  const MeterProfile& sp = snap.unregistered_source_pps;
  UnregisteredEntry* set = unregistered_set(tag);
  UnregisteredEntry* e = nullptr;
  for (unsigned w = 0; w < kWays && !e; ++w)
    if (set[w].tag == tag) e = &set[w];
  if (!e) {
    UnregisteredEntry* victim = set;
    for (unsigned w = 1; w < kWays && victim->tag != 0; ++w)
      if (set[w].tag == 0 || set[w].meter.last_ns < victim->meter.last_ns) victim = &set[w];
    // Table full for this set: recycle its least recently seen source. A source idle
    // long enough to refill loses nothing; the shared pool still bounds the total.
    if (victim->tag != 0 && meter_level(victim->meter, sp, now_ns) < sp.burst) counters_.unregistered_evictions++;
    *victim = UnregisteredEntry{tag, meter_full(sp, now_ns)};
    e = victim;
  }
  const bool bytes = snap.unregistered_pool_bps.rate != 0;
  meter_refill(e->meter, sp, now_ns);
  meter_refill(pool_pkts_, snap.unregistered_pool_pps, now_ns);
  if (bytes) meter_refill(pool_bytes_, snap.unregistered_pool_bps, now_ns);
  const uint64_t byte_cost = meter_cost(len);
  if (e->meter.tokens < kTokenScale || pool_pkts_.tokens < kTokenScale || (bytes && pool_bytes_.tokens < byte_cost))
    return Verdict::kUnregisteredOverRate;
  e->meter.tokens -= kTokenScale;
  pool_pkts_.tokens -= kTokenScale;
  if (bytes) pool_bytes_.tokens -= byte_cost;
  return Verdict::kPass;
}

// A burst is decided in stages so that each stage's memory accesses for all packets are
// in flight together: frame bytes, then the address table, then each source's meter
// (or unregistered bucket). Stages never wait on a miss they could have started earlier.
uint16_t Worker::process_outside(const PacketView* pkts, uint16_t n, uint64_t now_ns, Verdict* out) noexcept {
  tick(now_ns);
  for (uint16_t done = 0; done < n;) {
    uint16_t k = static_cast<uint16_t>(std::min<int>(n - done, kStage));
    decide_stage(pkts + done, k, now_ns, out + done);
    done = static_cast<uint16_t>(done + k);
  }
  return n;
}

void Worker::decide_stage(const PacketView* pkts, uint16_t n, uint64_t now_ns, Verdict* out) noexcept {
  const PolicySnapshot& snap = *snap_;
  PacketMeta meta[kStage];
  uint32_t slot[kStage];
  uint64_t tag[kStage];
  for (uint16_t i = 0; i < n; ++i) __builtin_prefetch(pkts[i].data);

  for (uint16_t i = 0; i < n; ++i) {
    parse_frame(pkts[i].data, pkts[i].len, meta[i]);
    if (meta[i].kind == L3Kind::kIpv4) snap.prefetch_v4(meta[i].src_v4);
    else if (meta[i].kind == L3Kind::kIpv6) snap.prefetch_v6(meta[i].src_v6);
  }
  for (uint16_t i = 0; i < n; ++i) {
    const PacketMeta& m = meta[i];
    slot[i] = PolicySnapshot::kNoSource;
    if (m.kind == L3Kind::kIpv4) slot[i] = snap.find_v4(m.src_v4);
    else if (m.kind == L3Kind::kIpv6) slot[i] = snap.find_v6(m.src_v6);
    else continue;
    if (slot[i] != PolicySnapshot::kNoSource) {
      __builtin_prefetch(&meters_[slot[i]], 1);
    } else {
      // Sources choose these addresses: a seeded, well-mixed hash keeps them from aiming at one set.
      tag[i] = (m.kind == L3Kind::kIpv4 ? mix64(m.src_v4 ^ seed_) : mix64(hash_v6(m.src_v6) ^ seed_)) | 1;
      const UnregisteredEntry* set = unregistered_set(tag[i]);
      __builtin_prefetch(set, 1);
      __builtin_prefetch(set + kWays - 1, 1);  // a set spans two cache lines
    }
  }

  auto& pk = counters_.packets[static_cast<int>(Direction::kOutside)];
  auto& by = counters_.bytes[static_cast<int>(Direction::kOutside)];
  for (uint16_t i = 0; i < n; ++i) {
    const PacketMeta& m = meta[i];
    TrafficClass cls;
    Verdict v;
    if (m.kind == L3Kind::kNonIp) {
      cls = TrafficClass::kL2;
      v = Verdict::kPass;
    } else if (m.kind == L3Kind::kMalformed) {
      cls = TrafficClass::kNone;
      v = Verdict::kMalformed;
    } else {
      counters_.non_first_fragments += m.non_first_fragment;
      if (slot[i] != PolicySnapshot::kNoSource) {
        cls = meters_[slot[i]].cls;
        v = police_source(slot[i], m, pkts[i].len, now_ns);
        if (v != Verdict::kPass && !cold_[slot[i]].peer.settled(snap.score, now_ns))
          on_source_drop(slot[i], v, pkts[i], now_ns);
      } else {
        cls = TrafficClass::kUnregistered;
        bool v4 = m.kind == L3Kind::kIpv4;
        if (v4 ? snap.blocklist().match_v4(m.src_v4) : snap.blocklist().match_v6(m.src_v6)) v = Verdict::kBlocklisted;
        // Unregistered sources reach only the public ports; a fragment without its L4
        // header cannot show that it goes to one, so it is refused too.
        else if (!m.has_port || !snap.unregistered_port(m.dst_port)) v = Verdict::kUnregistered;
        else v = police_unregistered(tag[i], pkts[i].len, now_ns);
      }
    }
    out[i] = v;
    pk[static_cast<int>(cls)][static_cast<int>(v)]++;
    by[static_cast<int>(cls)][static_cast<int>(v)] += pkts[i].len;
  }
}

// A staked source's packet was dropped: its score takes the reason's penalty (entering
// the graylist below the threshold), and a graylisted or watched source's packet is
// copied for evidence while its case wants samples.
[[gnu::noinline]] void Worker::on_source_drop(uint32_t slot, Verdict v, const PacketView& p, uint64_t now_ns) noexcept {
  const ScoreParams& sp = snap_->score;
  NodeMeter& nm = meters_[slot];
  PeerScore& ps = cold_[slot].peer;
  const bool gray = nm.flags & SourcePolicy::kGraylisted;
  const double penalty = ps.penalty(sp, v, gray);
  if (sp.enabled && penalty > 0 && ps.penalise(sp, penalty, now_ns, gray)) set_graylisted(slot, true, now_ns);
  if ((nm.flags & (SourcePolicy::kGraylisted | SourcePolicy::kSample)) && ps.samples_left) {
    ps.samples_left--;
    if (SampleRecord* r = samples_.claim()) {
      r->kind = SampleRecord::kSample;
      r->verdict = static_cast<uint8_t>(v);
      r->slot = slot;
      r->epoch = nm.epoch;
      r->orig_len = p.len;
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
  c.peer.set_normal(s.pps, sp);
}

void Worker::set_graylisted(uint32_t slot, bool on, uint64_t now_ns) noexcept {
  NodeMeter& m = meters_[slot];
  PeerScore& ps = cold_[slot].peer;
  set_rates(slot, snap_->source(slot), on ? snap_->score.penalty_factor : 1.0, snap_->score);
  if (on) {
    m.flags |= SourcePolicy::kGraylisted;
    ps.normal_meter = Meter{0, now_ns};  // it was just over its allowance
    if (snap_->score.evidence_on_graylist) ps.samples_left = snap_->score.evidence_samples;
  } else {
    m.flags &= static_cast<uint8_t>(~SourcePolicy::kGraylisted);
    if (!(m.flags & SourcePolicy::kSample)) ps.samples_left = 0;
  }
  push_event(on ? SampleRecord::kGraylistEnter : SampleRecord::kGraylistExit, slot, now_ns);
}

void Worker::push_event(uint8_t kind, uint32_t slot, uint64_t now_ns) noexcept {
  if (SampleRecord* r = samples_.claim()) {
    r->kind = kind;
    r->slot = slot;
    r->epoch = meters_[slot].epoch;
    r->caplen = 0;
    r->orig_len = 0;
    r->ns = now_ns;
    r->score = cold_[slot].peer.score;
    samples_.publish();
  }
}

void Worker::count_inside(const PacketView* pkts, uint16_t n) noexcept {
  // Traffic from the protected cluster is not classified: it is counted under `none`.
  constexpr int kDir = static_cast<int>(Direction::kInside), kCls = static_cast<int>(TrafficClass::kNone);
  for (uint16_t i = 0; i < n; ++i) {
    counters_.packets[kDir][kCls][0]++;
    counters_.bytes[kDir][kCls][0] += pkts[i].len;
  }
}

}  // namespace stakegate
