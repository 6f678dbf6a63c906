#include "stakegate/pipeline/worker.h"

#include <bit>
#include <cmath>
#include <cstring>

#include "stakegate/net/parse.h"

namespace stakegate {
namespace {

inline uint64_t refilled(uint64_t tokens, uint64_t last_ns, uint64_t now_ns, const BucketParams& p) {
  if (now_ns <= last_ns) return tokens;
  uint64_t elapsed = std::min(now_ns - last_ns, p.fill_ns);
  return std::min(tokens + elapsed * p.rate_per_s, p.burst_scaled);
}

// A score is decayed at most once per millisecond: under a flood, penalties between two
// decays just add up (the error is under 1e-5 of a step for any half-life over a second).
constexpr uint64_t kDecayStepNs = 1'000'000;

// Decays a cold meter's score to now, at most once per decay step.
inline void decay(NodeMeterCold& c, uint64_t now_ns, double half_life_ns) {
  if (now_ns < c.score_ns + kDecayStepNs) return;
  c.score = Worker::decayed(c.score, c.score_ns, now_ns, half_life_ns);
  c.score_ns = now_ns;
}

// A source's buckets while graylisted: its policy's rates and bursts times the factor.
BucketParams scaled(const BucketParams& p, double f) {
  if (p.rate_per_s == 0) return p;
  uint64_t floor_one = f > 0 ? 1 : 0;
  return BucketParams::make(std::max<uint64_t>(floor_one, std::llround(p.rate_per_s * f)),
                            std::max<uint64_t>(floor_one, std::llround(p.burst_scaled / kTokenScale * f)));
}

}  // namespace

double Worker::decayed(double score, uint64_t score_ns, uint64_t now_ns, double half_life_ns) {
  if (now_ns <= score_ns || score == 0 || half_life_ns <= 0) return score;
  return score * std::exp2(-static_cast<double>(now_ns - score_ns) / half_life_ns);
}

Worker::Worker(unsigned table_size, size_t source_capacity, uint64_t hash_seed)
    : meters_(source_capacity), cold_(source_capacity), seed_(mix64(hash_seed) | 1) {
  for (NodeMeter& m : meters_) m.epoch = kUnstarted;  // no snapshot uses it: the first bind starts every meter
  uint64_t sets = std::bit_ceil(std::max<uint64_t>(1, table_size / kWays));
  unregistered_.assign(sets * kWays, UnregisteredEntry{0, 0, 0});
  unregistered_mask_ = sets - 1;
}

void Worker::start_meter(uint32_t slot, const SourcePolicy& s) noexcept {
  meters_[slot] = NodeMeter{};
  cold_[slot] = NodeMeterCold{};
  meters_[slot].tokens = s.pps.burst_scaled;
  meters_[slot].epoch = s.epoch;
  cold_[slot].tokens_bytes = s.bps.burst_scaled;
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
    if ((s.flags & SourcePolicy::kSample) && !sampled_before) cold_[i].samples_left = snap->score.evidence_samples;
  };
  if (incremental) {
    for (uint32_t i : snap->changed_slots) adopt(i);
  } else {
    for (uint32_t i = 0; i < snap->source_count(); ++i) adopt(i);
  }
  if (!snap_) {
    pool_pkts_ = snap->unregistered_pool_pps.burst_scaled;
    pool_bytes_ = snap->unregistered_pool_bps.burst_scaled;
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
    NodeMeterCold& c = cold_[slot];
    if (now_ns >= c.score_ns + kDecayStepNs) check_recovery(slot, now_ns);  // has its score recovered?
    if (nm.flags & SourcePolicy::kGraylisted) {
      // Would the packet have fitted the source's normal allowance? Only if not is a drop
      // penalised: the reduced rate alone must not keep a source graylisted.
      c.normal_tokens = refilled(c.normal_tokens, c.normal_last_ns, now_ns, c.normal);
      if (now_ns > c.normal_last_ns) c.normal_last_ns = now_ns;
      c.beyond_normal = c.normal_tokens < kTokenScale;
      if (!c.beyond_normal) c.normal_tokens -= kTokenScale;
    }
  }
  // A non-first fragment has no port: it is policed by source only. A port-less
  // protocol (ICMP, ...) is refused where the role lists ports.
  if (!m.non_first_fragment && (m.has_port ? !snap_->port_allowed(nm.port_set, m.dst_port)
                                           : nm.port_set != SourcePolicy::kAllPorts)) {
    cold_[slot].dropped_port_denied++;
    return Verdict::kPortDenied;
  }
  uint64_t tokens = nm.tokens;
  if (now_ns > nm.last_ns) {
    tokens = std::min(tokens + std::min(now_ns - nm.last_ns, nm.fill_ns) * nm.rate, nm.burst);
    nm.last_ns = now_ns;
  }
  if (nm.flags & SourcePolicy::kHasBytes) return police_bytes(slot, tokens, len, now_ns);
  if (tokens < kTokenScale) {
    nm.tokens = tokens;
    nm.dropped_over_rate++;
    return Verdict::kOverRate;
  }
  nm.tokens = tokens - kTokenScale;
  nm.passed++;
  return Verdict::kPass;
}

// The byte bucket, when capacity.bps is set: refilled on the same clock as the packet
// bucket (whose last_ns was just advanced, so the cold line keeps its own time).
Verdict Worker::police_bytes(uint32_t slot, uint64_t tokens, uint32_t len, uint64_t now_ns) {
  NodeMeter& nm = meters_[slot];
  NodeMeterCold& c = cold_[slot];
  c.tokens_bytes = refilled(c.tokens_bytes, c.last_ns, now_ns, c.bps);
  if (now_ns > c.last_ns) c.last_ns = now_ns;
  uint64_t byte_cost = uint64_t{len} * kTokenScale;
  nm.tokens = tokens;
  if (tokens < kTokenScale || c.tokens_bytes < byte_cost) {
    nm.dropped_over_rate++;
    return Verdict::kOverRate;
  }
  nm.tokens = tokens - kTokenScale;
  c.tokens_bytes -= byte_cost;
  nm.passed++;
  return Verdict::kPass;
}

Verdict Worker::police_unregistered(uint64_t tag, uint32_t len, uint64_t now_ns) {
  const PolicySnapshot& snap = *snap_;
  const BucketParams& sp = snap.unregistered_source_pps;
  UnregisteredEntry* set = unregistered_set(tag);
  UnregisteredEntry* e = nullptr;
  for (unsigned w = 0; w < kWays && !e; ++w)
    if (set[w].tag == tag) e = &set[w];
  if (!e) {
    UnregisteredEntry* victim = set;
    for (unsigned w = 1; w < kWays && victim->tag != 0; ++w)
      if (set[w].tag == 0 || set[w].last_ns < victim->last_ns) victim = &set[w];
    // Table full for this set: recycle its least recently seen source. A source idle
    // long enough to refill loses nothing; the shared pool still bounds the total.
    if (victim->tag != 0 && refilled(victim->tokens, victim->last_ns, now_ns, sp) < sp.burst_scaled)
      counters_.unregistered_evictions++;
    *victim = UnregisteredEntry{tag, sp.burst_scaled, now_ns};
    e = victim;
  }
  e->tokens = refilled(e->tokens, e->last_ns, now_ns, sp);
  if (now_ns > e->last_ns) e->last_ns = now_ns;

  pool_pkts_ = refilled(pool_pkts_, pool_last_ns_, now_ns, snap.unregistered_pool_pps);
  if (snap.unregistered_pool_bps.rate_per_s)
    pool_bytes_ = refilled(pool_bytes_, pool_last_ns_, now_ns, snap.unregistered_pool_bps);
  if (now_ns > pool_last_ns_) pool_last_ns_ = now_ns;

  uint64_t byte_cost = uint64_t{len} * kTokenScale;
  if (e->tokens < kTokenScale || pool_pkts_ < kTokenScale ||
      (snap.unregistered_pool_bps.rate_per_s && pool_bytes_ < byte_cost))
    return Verdict::kUnregisteredOverRate;
  e->tokens -= kTokenScale;
  pool_pkts_ -= kTokenScale;
  if (snap.unregistered_pool_bps.rate_per_s) pool_bytes_ -= byte_cost;
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
        if (v != Verdict::kPass) {
          // A source already at the floor within the same decay step, with no sample
          // wanted, would not change: the common case of a sustained flood stays inline.
          const NodeMeterCold& c = cold_[slot[i]];
          if (!(c.score == snap.score.floor && now_ns < c.score_ns + kDecayStepNs && c.samples_left == 0))
            on_source_drop(slot[i], v, pkts[i], now_ns);
        }
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
  NodeMeterCold& c = cold_[slot];
  // over_rate costs its penalty per second's worth of the source's normal allowance, so
  // the score measures excess traffic whatever the source's stake; while graylisted, only
  // what exceeds that normal allowance counts.
  const double penalty = v != Verdict::kOverRate ? sp.penalty[static_cast<int>(v)]
                         : (nm.flags & SourcePolicy::kGraylisted) && !c.beyond_normal ? 0
                                                                                     : c.over_rate_cost;
  if (sp.enabled && penalty > 0) {
    decay(c, now_ns, sp.half_life_ns);
    c.score = std::max(c.score - penalty, sp.floor);
    if (!(nm.flags & SourcePolicy::kGraylisted) && c.score < sp.graylist) set_graylisted(slot, true, now_ns);
  }
  if ((nm.flags & (SourcePolicy::kGraylisted | SourcePolicy::kSample)) && c.samples_left) {
    c.samples_left--;
    if (SampleRecord* r = samples_.claim()) {
      r->kind = SampleRecord::kSample;
      r->verdict = static_cast<uint8_t>(v);
      r->slot = slot;
      r->epoch = nm.epoch;
      r->orig_len = p.len;
      r->caplen = static_cast<uint16_t>(std::min<uint32_t>(p.len, std::min<uint32_t>(sp.snaplen, kMaxSnap)));
      std::memcpy(r->data, p.data, r->caplen);
      r->ns = now_ns;
      r->score = c.score;
      samples_.publish();
    }
  }
}

[[gnu::noinline]] void Worker::check_recovery(uint32_t slot, uint64_t now_ns) noexcept {
  const ScoreParams& sp = snap_->score;
  NodeMeterCold& c = cold_[slot];
  decay(c, now_ns, sp.half_life_ns);
  if (!sp.enabled || c.score > sp.recover) set_graylisted(slot, false, now_ns);
}

// The meter's buckets from its policy, times `factor` (1 normally, penalty_factor while
// graylisted); tokens above a lower burst are cut to it.
void Worker::set_rates(uint32_t slot, const SourcePolicy& s, double factor, const ScoreParams& sp) noexcept {
  NodeMeter& m = meters_[slot];
  NodeMeterCold& c = cold_[slot];
  const BucketParams pps = factor != 1.0 ? scaled(s.pps, factor) : s.pps;
  m.rate = pps.rate_per_s;
  m.burst = pps.burst_scaled;
  m.fill_ns = pps.fill_ns;
  m.tokens = std::min(m.tokens, m.burst);
  c.bps = factor != 1.0 ? scaled(s.bps, factor) : s.bps;
  c.tokens_bytes = std::min(c.tokens_bytes, c.bps.burst_scaled);
  c.normal = s.pps;
  c.over_rate_cost = sp.penalty[static_cast<int>(Verdict::kOverRate)] /
                     static_cast<double>(std::max<uint64_t>(s.pps.rate_per_s, 1));
}

void Worker::set_graylisted(uint32_t slot, bool on, uint64_t now_ns) noexcept {
  NodeMeter& m = meters_[slot];
  NodeMeterCold& c = cold_[slot];
  set_rates(slot, snap_->source(slot), on ? snap_->score.penalty_factor : 1.0, snap_->score);
  if (on) {
    m.flags |= SourcePolicy::kGraylisted;
    c.normal_tokens = 0;  // it was just over its allowance
    c.normal_last_ns = now_ns;
    if (snap_->score.evidence_on_graylist) c.samples_left = snap_->score.evidence_samples;
  } else {
    m.flags &= static_cast<uint8_t>(~SourcePolicy::kGraylisted);
    if (!(m.flags & SourcePolicy::kSample)) c.samples_left = 0;
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
    r->score = cold_[slot].score;
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
