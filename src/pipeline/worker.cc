#include "stakegate/pipeline/worker.h"

#include <bit>

#include "stakegate/net/parse.h"

namespace stakegate {
namespace {

inline uint64_t refilled(uint64_t tokens, uint64_t last_ns, uint64_t now_ns, const BucketParams& p) {
  if (now_ns <= last_ns) return tokens;
  uint64_t elapsed = std::min(now_ns - last_ns, p.fill_ns);
  return std::min(tokens + elapsed * p.rate_per_s, p.burst_scaled);
}

}  // namespace

Worker::Worker(unsigned table_size, uint64_t hash_seed) : seed_(mix64(hash_seed) | 1) {
  uint64_t sets = std::bit_ceil(std::max<uint64_t>(1, table_size / kWays));
  unregistered_.assign(sets * kWays, UnregisteredEntry{0, 0, 0});
  unregistered_mask_ = sets - 1;
}

void Worker::bind(std::shared_ptr<const PolicySnapshot> snap) {
  size_t old = meters_.size();
  if (snap->source_count() > old) meters_.resize(snap->source_count());
  for (size_t i = old; i < meters_.size(); ++i) {
    const SourcePolicy& s = snap->source(static_cast<uint32_t>(i));
    meters_[i] = NodeMeter{s.pps.burst_scaled, s.bps.burst_scaled, 0, 0, 0, 0, 0, 0};
  }
  if (!snap_) {
    pool_pkts_ = snap->unregistered_pool_pps.burst_scaled;
    pool_bytes_ = snap->unregistered_pool_bps.burst_scaled;
  }
  snap_ = std::move(snap);
}

Verdict Worker::police_source(uint32_t slot, const PacketMeta& m, uint32_t len, uint64_t now_ns) {
  const SourcePolicy& s = snap_->source(slot);
  NodeMeter& nm = meters_[slot];
  if (s.flags & SourcePolicy::kBlocked) { nm.dropped_blocklisted++; return Verdict::kBlocklisted; }
  if (s.flags & SourcePolicy::kEjected) { nm.dropped_ejected++; return Verdict::kEjected; }
  // A non-first fragment has no port: it is policed by source only. A port-less
  // protocol (ICMP, ...) is refused where the role lists ports.
  if (!m.non_first_fragment && (m.has_port ? !snap_->port_allowed(s, m.dst_port)
                                           : s.port_set != SourcePolicy::kAllPorts)) {
    nm.dropped_port_denied++;
    return Verdict::kPortDenied;
  }
  uint64_t pk = refilled(nm.tokens_pkts, nm.last_ns, now_ns, s.pps);
  uint64_t by = s.bps.rate_per_s ? refilled(nm.tokens_bytes, nm.last_ns, now_ns, s.bps) : 0;
  if (now_ns > nm.last_ns) nm.last_ns = now_ns;
  nm.tokens_pkts = pk;
  nm.tokens_bytes = by;
  uint64_t byte_cost = uint64_t{len} * kTokenScale;
  if (pk < kTokenScale || (s.bps.rate_per_s && by < byte_cost)) {
    nm.dropped_over_rate++;
    return Verdict::kOverRate;
  }
  nm.tokens_pkts = pk - kTokenScale;
  if (s.bps.rate_per_s) nm.tokens_bytes = by - byte_cost;
  nm.passed++;
  return Verdict::kPass;
}

Verdict Worker::police_unregistered(uint64_t tag, uint32_t len, uint64_t now_ns) {
  const PolicySnapshot& snap = *snap_;
  UnregisteredEntry* set = &unregistered_[(tag & unregistered_mask_) * kWays];
  UnregisteredEntry* e = nullptr;
  for (unsigned w = 0; w < kWays && !e; ++w)
    if (set[w].tag == tag) e = &set[w];
  if (!e) {
    UnregisteredEntry* victim = set;
    for (unsigned w = 1; w < kWays && victim->tag != 0; ++w)
      if (set[w].tag == 0 || set[w].last_ns < victim->last_ns) victim = &set[w];
    // Table full for this set: recycle its least recently seen source. A source idle
    // long enough to refill loses nothing; the shared pool still bounds the total.
    const BucketParams& sp = snap.unregistered_source_pps;
    if (victim->tag != 0 && refilled(victim->tokens, victim->last_ns, now_ns, sp) < sp.burst_scaled)
      counters_.unregistered_evictions++;
    *victim = UnregisteredEntry{tag, sp.burst_scaled, now_ns};
    e = victim;
  }
  const BucketParams& sp = snap.unregistered_source_pps;
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

Verdict Worker::decide(const PacketView& p, uint64_t now_ns, TrafficClass& cls) {
  PacketMeta m;
  parse_frame(p.data, p.len, m);
  switch (m.kind) {
    case L3Kind::kNonIp: cls = TrafficClass::kL2; return Verdict::kPass;
    case L3Kind::kMalformed: cls = TrafficClass::kNone; return Verdict::kMalformed;
    default: break;
  }
  const PolicySnapshot& snap = *snap_;
  bool v4 = m.kind == L3Kind::kIpv4;
  counters_.non_first_fragments += m.non_first_fragment;
  uint32_t slot = v4 ? snap.find_v4(m.src_v4) : snap.find_v6(m.src_v6);
  if (slot != PolicySnapshot::kNoSource) {
    cls = snap.source(slot).cls;
    return police_source(slot, m, p.len, now_ns);
  }
  cls = TrafficClass::kUnregistered;
  if (v4 ? snap.blocklist().match_v4(m.src_v4) : snap.blocklist().match_v6(m.src_v6)) return Verdict::kBlocklisted;
  // Unregistered sources reach only the public ports; a fragment without its L4 header
  // cannot show that it goes to one, so it is refused too.
  if (!m.has_port || !snap.unregistered_port(m.dst_port)) return Verdict::kUnregistered;
  uint64_t tag = v4 ? mix64(m.src_v4 ^ seed_) : mix64(hash_v6(m.src_v6) ^ seed_);
  return police_unregistered(tag | 1, p.len, now_ns);
}

uint16_t Worker::process_outside(const PacketView* pkts, uint16_t n, uint64_t now_ns, Verdict* out) noexcept {
  auto& pk = counters_.packets[static_cast<int>(Direction::kOutside)];
  auto& by = counters_.bytes[static_cast<int>(Direction::kOutside)];
  for (uint16_t i = 0; i < n; ++i) {
    if (i + 1 < n) __builtin_prefetch(pkts[i + 1].data);
    TrafficClass cls;
    Verdict v = decide(pkts[i], now_ns, cls);
    out[i] = v;
    pk[static_cast<int>(cls)][static_cast<int>(v)]++;
    by[static_cast<int>(cls)][static_cast<int>(v)] += pkts[i].len;
  }
  return n;
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
