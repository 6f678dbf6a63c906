#include "stakegate/pipeline/worker.h"

#include <bit>
#include <cstring>

#include "stakegate/net/parse.h"

namespace stakegate {
namespace {

constexpr uint32_t kFragmentTicks = 2'000'000'000ull >> kTickShift;  // fragments of one datagram arrive within 2 s

bool is_v4(const PacketMeta& m) { return m.kind == L3Kind::kIpv4; }

// Sources that cannot come from the outside: loopback, multicast, broadcast.
bool martian(const PacketMeta& m) { return is_v4(m) ? martian_v4(m.src_v4) : martian_v6(m.src_v6); }

bool in_cluster(const PolicySnapshot& s, const PacketMeta& m, bool source) {
  if (is_v4(m)) return s.cluster().contains_v4(source ? m.src_v4 : m.dst_v4);
  return s.cluster().contains_v6(source ? m.src_v6 : m.dst_v6);
}

// IPv6 neighbour discovery (router/neighbour solicitation and advertisement, redirect)
// only ever has hop limit 255 (RFC 4861); multicast listener queries and reports, 1.
bool neighbour_discovery(const PacketMeta& m) {
  if (m.kind != L3Kind::kIpv6 || !m.has_icmp || m.l4_proto != kProtoIcmp6) return false;
  if (m.icmp_type >= 133 && m.icmp_type <= 137) return m.ttl == 255;
  if ((m.icmp_type >= 130 && m.icmp_type <= 132) || m.icmp_type == 143) return m.ttl == 1;
  return false;
}

bool icmp_error(const PacketMeta& m) {
  if (!m.has_icmp) return false;
  if (m.l4_proto == kProtoIcmp) return m.icmp_type == 3 || m.icmp_type == 11 || m.icmp_type == 12;
  return m.l4_proto == kProtoIcmp6 && m.icmp_type >= 1 && m.icmp_type <= 4;
}

// The session key of an outside packet: a reply to the cluster (TCP, UDP, ICMP echo
// reply), or the cluster's packet quoted by an ICMP error. False when it has none.
bool outside_key(const PacketView& p, const PacketMeta& m, SessionKey& k) {
  if (m.has_port) {
    k.local = is_v4(m) ? mapped_v4(m.dst_v4) : m.dst_v6;
    k.remote = is_v4(m) ? mapped_v4(m.src_v4) : m.src_v6;
    k.lport = m.dst_port;
    k.rport = m.src_port;
    k.proto = m.l4_proto;
    return true;
  }
  if (!m.has_icmp || m.non_first_fragment) return false;
  const bool echo_reply = m.l4_proto == kProtoIcmp ? m.icmp_type == 0 : m.icmp_type == 129;
  if (echo_reply) {
    k.local = is_v4(m) ? mapped_v4(m.dst_v4) : m.dst_v6;
    k.remote = is_v4(m) ? mapped_v4(m.src_v4) : m.src_v6;
    k.lport = m.icmp_id;
    k.rport = 0;
    k.proto = m.l4_proto;
    return true;
  }
  if (!icmp_error(m)) return false;
  // The quoted packet went from the cluster (its source) to the remote (its destination).
  const uint8_t* q = p.data + m.l4_off + 8;
  const uint32_t avail = m.l4_len - 8;  // has_icmp: at least 8 bytes of ICMP header
  uint32_t l4 = 0;
  uint8_t proto = 0;
  if (m.l4_proto == kProtoIcmp) {
    if (avail < 28 || (q[0] >> 4) != 4) return false;
    l4 = (q[0] & 0x0f) * 4u;
    if (l4 < 20 || l4 + 8 > avail || (detail::rd16(q + 6) & 0x1fff) != 0) return false;
    proto = q[9];
    k.local = mapped_v4(detail::rd32(q + 12));
    k.remote = mapped_v4(detail::rd32(q + 16));
  } else {
    if (avail < 48 || (q[0] >> 4) != 6) return false;
    l4 = 40;
    proto = q[6];
    std::memcpy(k.local.bytes.data(), q + 8, 16);
    std::memcpy(k.remote.bytes.data(), q + 24, 16);
  }
  k.proto = proto;
  if (proto == kProtoTcp || proto == kProtoUdp) {
    k.lport = detail::rd16(q + l4);
    k.rport = detail::rd16(q + l4 + 2);
    return true;
  }
  if (proto == m.l4_proto && q[l4] == (proto == kProtoIcmp ? 8 : 128)) {  // the cluster's echo request
    k.lport = detail::rd16(q + l4 + 4);
    k.rport = 0;
    return true;
  }
  return false;
}

}  // namespace

// The lookups of one outside packet, made in decide_stage's first two stages.
struct Worker::Lookup {
  uint64_t hash;
  SessionKey key;
  bool keyed;
  bool lazy;  // a packet to a public port: its session is looked up only for a staked sender
};

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

void Worker::start_meter(uint32_t slot, const SourcePolicy& s) noexcept {
  meters_[slot] = NodeMeter{};
  cold_[slot] = NodeMeterCold{};
  meters_[slot].pkt = Meter{s.pps.burst, 0};
  meters_[slot].epoch = s.epoch;
  cold_[slot].bytes = Meter{s.bps.burst, 0};
  cold_[slot].request = Meter{s.request.burst, 0};
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
  }
  snap_ = snap;
  bound_generation_ = snap->generation;
}

// ---- the meters ----------------------------------------------------------------------

// A node's allowance, for packets on its verified connections. With capacity.bps a packet
// must fit both the packet and the byte meter, or it costs neither.
[[gnu::always_inline]] inline Verdict Worker::police_verified(uint32_t slot, uint32_t len, uint64_t now_ns) {
  NodeMeter& nm = meters_[slot];
  if (nm.flags & SourcePolicy::kHasBytes) [[unlikely]] {
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
  } else if (!meter_take(nm.pkt, nm.pkt_profile, now_ns, kTokenScale)) {
    nm.dropped_over_rate++;
    return Verdict::kOverRate;
  }
  nm.passed++;
  return Verdict::kPass;
}

// The request channel: what a staked address sends off verified connections.
Verdict Worker::police_request(uint32_t slot, uint64_t now_ns) {
  NodeMeterCold& c = cold_[slot];
  if (!meter_take(c.request, c.request_profile, now_ns, kTokenScale)) {
    c.dropped_request++;
    return Verdict::kRequestOverRate;
  }
  c.passed_request++;
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
    // A new source starts with one packet, not a whole burst: a sender cycling through
    // addresses gains nothing by it.
    *victim = UnregisteredEntry{tag, Meter{std::min(kTokenScale, sp.burst), now_ns}};
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

// Replies of unregistered senders on sessions the cluster opened.
Verdict Worker::police_sessions(uint32_t len, uint64_t now_ns) {
  const PolicySnapshot& snap = *snap_;
  const bool bytes = snap.sessions_bps.rate != 0;
  meter_refill(sessions_pkts_, snap.sessions_pps, now_ns);
  if (bytes) meter_refill(sessions_bytes_, snap.sessions_bps, now_ns);
  const uint64_t byte_cost = meter_cost(len);
  if (sessions_pkts_.tokens < kTokenScale || (bytes && sessions_bytes_.tokens < byte_cost))
    return Verdict::kSessionOverRate;
  sessions_pkts_.tokens -= kTokenScale;
  if (bytes) sessions_bytes_.tokens -= byte_cost;
  return Verdict::kPass;
}

bool Worker::take_infra(uint64_t now_ns) { return meter_take(infra_, snap_->infra_pps, now_ns, kTokenScale); }

// ---- sessions ------------------------------------------------------------------------

// Is this outside packet on session `s`? TCP: only on the verified connection, within its
// windows (a spoofer who guessed the 4-tuple is not enough); UDP and ICMP: the 4-tuple is
// all there is to match (a reply keeps the session alive, as conntrack does).
[[gnu::always_inline]] inline bool Worker::remote_on_session(Session* s, const PacketMeta& m, const PacketView& p,
                                                             uint64_t now_ns) {
  if (!s) return false;
  const SessionTimeouts& to = snap_->timeouts;
  const uint32_t now = session_tick(now_ns);
  if (m.l4_proto == kProtoTcp && m.has_port) {
    const bool was_verified = s->flags & Session::kVerified;
    const int wscale = (m.tcp_flags & kTcpSyn) ? tcp_window_scale(p.data, m) : -1;
    if (!on_remote_tcp(*s, m.tcp_flags, m.tcp_seq, m.tcp_ack, m.tcp_win, wscale)) return false;
    if (was_verified) [[likely]] {
      sessions_.extend(s, tcp_deadline(*s, to, now));
    } else {
      counters_.sessions_verified++;
      sessions_.extend_keep(s, tcp_deadline(*s, to, now));
    }
    return true;
  }
  sessions_.extend(s, now + (m.l4_proto == kProtoUdp ? to.udp : to.icmp));
  return true;
}

// The session key of a packet the cluster sends, or false when it opens none: not from a
// cluster address, or neither TCP/UDP nor an ICMP echo request.
bool Worker::inside_key(const PacketMeta& m, SessionKey& k) const noexcept {
  const PolicySnapshot& snap = *snap_;
  if (m.kind != L3Kind::kIpv4 && m.kind != L3Kind::kIpv6) return false;
  if (!snap.cluster().empty() && !in_cluster(snap, m, true)) return false;  // only the cluster's own addresses
  k.local = is_v4(m) ? mapped_v4(m.src_v4) : m.src_v6;
  k.remote = is_v4(m) ? mapped_v4(m.dst_v4) : m.dst_v6;
  k.proto = m.l4_proto;
  if (m.has_port) {
    k.lport = m.src_port;
    k.rport = m.dst_port;
    return true;
  }
  if (m.has_icmp && !m.non_first_fragment && m.icmp_type == (m.l4_proto == kProtoIcmp ? 8 : 128)) {
    k.lport = m.icmp_id;  // an echo request: its reply comes back with the identifier
    k.rport = 0;
    return true;
  }
  return false;
}

void Worker::inside_packet(const PacketView& p, const PacketMeta& m, const SessionKey& k, uint64_t h,
                           uint64_t now_ns) noexcept {
  const PolicySnapshot& snap = *snap_;
  const uint32_t now = session_tick(now_ns);
  const SessionTimeouts& to = snap.timeouts;
  bool created = false, evicted = false;
  Session* s = sessions_.upsert(k, h, now, created, evicted);
  counters_.sessions_created += created;
  counters_.sessions_evicted += evicted;
  if (m.l4_proto == kProtoTcp) {
    const int wscale = (m.tcp_flags & kTcpSyn) ? tcp_window_scale(p.data, m) : -1;
    on_cluster_tcp(*s, created, m.tcp_flags, m.tcp_seq, m.tcp_ack, m.tcp_win, tcp_seq_len(m), wscale,
                   snap.service_port(m.src_port));
    sessions_.extend_keep(s, tcp_deadline(*s, to, now));
    return;
  }
  if (created) {
    s->state = m.l4_proto == kProtoUdp ? Session::kUdp : Session::kIcmp;
    // A datagram from a port the cluster serves answers a client: a session it accepted.
    s->flags = (m.has_port && snap.service_port(m.src_port)) ? 0 : Session::kOpened;
    sessions_.extend_keep(s, now + (m.l4_proto == kProtoUdp ? to.udp : to.icmp));
    return;
  }
  sessions_.extend(s, now + (m.l4_proto == kProtoUdp ? to.udp : to.icmp));
}

// Staged like the outside path: keys and tag-line prefetches for the whole stage, then
// the matching entries' prefetches, then the updates.
void Worker::process_inside(const PacketView* pkts, uint16_t n, uint64_t now_ns) noexcept {
  constexpr int kDir = static_cast<int>(Direction::kInside), kCls = static_cast<int>(TrafficClass::kNone);
  PacketMeta meta[kStage];
  Lookup look[kStage];
  for (uint16_t done = 0; done < n;) {
    const uint16_t k = static_cast<uint16_t>(std::min<int>(n - done, kStage));
    const PacketView* p = pkts + done;
    for (uint16_t i = 0; i < k; ++i) __builtin_prefetch(p[i].data);
    for (uint16_t i = 0; i < k; ++i) {
      counters_.packets[kDir][kCls][0]++;
      counters_.bytes[kDir][kCls][0] += p[i].len;
      parse_frame(p[i].data, p[i].len, meta[i]);
      if ((look[i].keyed = inside_key(meta[i], look[i].key))) {
        look[i].hash = sessions_.hash(look[i].key);
        sessions_.prefetch(look[i].hash);
      }
    }
    for (uint16_t i = 0; i < k; ++i)
      if (look[i].keyed) sessions_.prefetch_entry(look[i].hash);
    for (uint16_t i = 0; i < k; ++i)
      if (look[i].keyed) inside_packet(p[i], meta[i], look[i].key, look[i].hash, now_ns);
    done = static_cast<uint16_t>(done + k);
  }
}

uint64_t Worker::fragment_tag(const PacketMeta& m) const noexcept {
  uint64_t h = is_v4(m) ? (uint64_t{m.src_v4} << 32 | m.dst_v4) : hash_v6(m.src_v6) ^ (hash_v6(m.dst_v6) << 1);
  return mix64(h ^ (uint64_t{m.frag_id} << 8 | m.l4_proto) ^ seed_) | 1;
}

// ---- the verdict ---------------------------------------------------------------------

// A burst is decided in stages so that each stage's memory accesses for all packets are
// in flight together: frame bytes; the address table line and the session set's tags;
// each source's meter (or unregistered bucket) and the matching session entry; then each
// packet is decided in order. Stages never wait on a miss they could have started earlier.
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
  // Working storage, filled before it is read (parse_frame and outside_key set what is used):
  // not value-initialised, which would cost more than deciding a small packet.
  union Scratch {
    Scratch() {}
    PacketMeta meta[kStage];
  } scratch;
  union Lookups {
    Lookups() {}
    Lookup look[kStage];
  } lookups;
  PacketMeta* meta = scratch.meta;
  Lookup* look = lookups.look;
  uint32_t slot[kStage];
  uint64_t tag[kStage];
  for (uint16_t i = 0; i < n; ++i) __builtin_prefetch(pkts[i].data);

  for (uint16_t i = 0; i < n; ++i) {
    PacketMeta& m = meta[i];
    parse_frame(pkts[i].data, pkts[i].len, m);
    look[i].keyed = false;
    if (m.kind == L3Kind::kIpv4) snap.prefetch_v4(m.src_v4);
    else if (m.kind == L3Kind::kIpv6) snap.prefetch_v6(m.src_v6);
    else continue;
    if ((look[i].keyed = outside_key(pkts[i], m, look[i].key))) {
      look[i].hash = sessions_.hash(look[i].key);
      // To a public port, only a staked sender's packet needs its session (an unregistered
      // client there gets its per-source limit whatever it holds): decided in stage 2.
      look[i].lazy = m.has_port && snap.unregistered_port(m.dst_port);
      if (!look[i].lazy) sessions_.prefetch(look[i].hash);
    }
  }
  for (uint16_t i = 0; i < n; ++i) {
    const PacketMeta& m = meta[i];
    slot[i] = PolicySnapshot::kNoSource;
    if (m.kind == L3Kind::kIpv4) slot[i] = snap.find_v4(m.src_v4);
    else if (m.kind == L3Kind::kIpv6) slot[i] = snap.find_v6(m.src_v6);
    else continue;
    if (look[i].keyed && look[i].lazy) {
      if (slot[i] != PolicySnapshot::kNoSource) sessions_.prefetch(look[i].hash);
      else look[i].keyed = false;
    } else if (look[i].keyed) {
      sessions_.prefetch_entry(look[i].hash);
    }
    if (slot[i] != PolicySnapshot::kNoSource) {
      __builtin_prefetch(&meters_[slot[i]], 1);
    } else {
      // Sources choose these addresses: a seeded, well-mixed hash keeps them from aiming at
      // one set. An IPv6 sender is one /64 (its own subnet), not one address of it.
      uint64_t upper;
      std::memcpy(&upper, m.src_v6.bytes.data(), 8);
      tag[i] = mix64((m.kind == L3Kind::kIpv4 ? uint64_t{m.src_v4} : upper * 0x9e3779b97f4a7c15ull) ^ seed_) | 1;
      const UnregisteredEntry* set = unregistered_set(tag[i]);
      __builtin_prefetch(set, 1);
      __builtin_prefetch(set + kWays - 1, 1);  // a set spans two cache lines
    }
  }

  auto& pk = counters_.packets[static_cast<int>(Direction::kOutside)];
  auto& by = counters_.bytes[static_cast<int>(Direction::kOutside)];
  const uint32_t now = session_tick(now_ns);
  for (uint16_t i = 0; i < n; ++i) {
    const PacketMeta& m = meta[i];
    TrafficClass cls;
    Verdict v;
    if (m.kind == L3Kind::kNonIp) {
      // ARP and the EtherTypes the config lists, within the infra budget; nothing else.
      cls = TrafficClass::kL2;
      v = !snap.infra_ethertype(m.ethertype) ? Verdict::kL2Denied
          : take_infra(now_ns)              ? Verdict::kPass
                                            : Verdict::kInfraOverRate;
    } else if (m.kind == L3Kind::kMalformed) {
      cls = TrafficClass::kNone;
      v = Verdict::kMalformed;
    } else {
      counters_.non_first_fragments += m.non_first_fragment;
      Session* s = look[i].keyed ? sessions_.find(look[i].key, look[i].hash, now) : nullptr;
      // A source claiming the cluster's own address, or one no host can have, is spoofed
      // (for a table's address the snapshot marked it; others are checked here).
      if (slot[i] != PolicySnapshot::kNoSource && !(meters_[slot[i]].flags & SourcePolicy::kNotOutside)) {
        cls = meters_[slot[i]].cls;
        v = decide_node(slot[i], m, s, pkts[i], now_ns, cls);
      } else if (slot[i] != PolicySnapshot::kNoSource || (!snap.cluster().empty() && in_cluster(snap, m, true)) ||
                 martian(m)) {
        cls = TrafficClass::kNone;
        v = Verdict::kSpoofed;
      } else {
        v = decide_unknown(m, s, tag[i], pkts[i], now_ns, cls);
      }
    }
    out[i] = v;
    pk[static_cast<int>(cls)][static_cast<int>(v)]++;
    by[static_cast<int>(cls)][static_cast<int>(v)] += pkts[i].len;
  }
}

// A staked source (DESIGN.md steps 4-7). Its verified connections get its allowance;
// anything else from its address (SYNs, UDP, packets matching no verified connection:
// what anyone could forge) only its small request channel, and never moves its score.
[[gnu::always_inline]] inline Verdict Worker::decide_node(uint32_t slot, const PacketMeta& m, Session* s,
                                                         const PacketView& p, uint64_t now_ns, TrafficClass& cls) {
  NodeMeter& nm = meters_[slot];
  if (nm.flags & (SourcePolicy::kBlocked | SourcePolicy::kEjected | SourcePolicy::kGraylisted)) [[unlikely]] {
    if (nm.flags & (SourcePolicy::kBlocked | SourcePolicy::kEjected)) {
      bool blocked = nm.flags & SourcePolicy::kBlocked;
      (blocked ? cold_[slot].dropped_blocklisted : cold_[slot].dropped_ejected)++;
      return blocked ? Verdict::kBlocklisted : Verdict::kEjected;
    }
    if (now_ns >= cold_[slot].peer.score_ns + kDecayStepNs) check_recovery(slot, now_ns);  // has its score recovered?
  }
  if (neighbour_discovery(m) || (s && icmp_error(m))) {
    cls = TrafficClass::kInfra;
    return take_infra(now_ns) ? Verdict::kPass : Verdict::kInfraOverRate;
  }
  if (s && m.l4_proto == kProtoTcp && m.has_port && remote_on_session(s, m, p, now_ns)) [[likely]] {
    if (nm.flags & SourcePolicy::kGraylisted) cold_[slot].peer.check_normal(now_ns);
    Verdict v = police_verified(slot, p.len, now_ns);
    if (v != Verdict::kPass && !cold_[slot].peer.settled(snap_->score, now_ns)) on_source_drop(slot, v, true, p, now_ns);
    return v;
  }
  Verdict v;
  if (s && m.l4_proto != kProtoTcp && (s->flags & Session::kOpened)) {
    // A UDP or ICMP reply on a session the cluster opened: traffic it asked for, but proving
    // nothing about its sender, so neither the node's allowance nor its request channel
    // (a spoofer fills that one): the shared sessions budget, as for unregistered senders.
    remote_on_session(s, m, p, now_ns);
    v = police_sessions(p.len, now_ns);
    (v == Verdict::kPass ? cold_[slot].passed_session : cold_[slot].dropped_session)++;
  } else if (s) {
    // On a session's 4-tuple but not (provably) its traffic: a datagram to a port the
    // cluster serves, or a TCP packet out of the connection's windows. No port check: the
    // cluster chose the port.
    if (m.l4_proto != kProtoTcp) remote_on_session(s, m, p, now_ns);
    v = police_request(slot, now_ns);
  } else if (!m.non_first_fragment && (m.has_port ? !snap_->port_allowed(nm.port_set, m.dst_port)
                                                  : nm.port_set != SourcePolicy::kAllPorts)) {
    // A non-first fragment has no port: it is policed by source only. A port-less
    // protocol (ICMP, ...) is refused where the role lists ports.
    cold_[slot].dropped_port_denied++;
    v = Verdict::kPortDenied;
  } else {
    v = police_request(slot, now_ns);
  }
  if (v != Verdict::kPass && (nm.flags & (SourcePolicy::kGraylisted | SourcePolicy::kSample)) && cold_[slot].peer.unverified_left)
    on_source_drop(slot, v, false, p, now_ns);
  return v;
}

// A source that is not a node (steps 4-6 and 8).
Verdict Worker::decide_unknown(const PacketMeta& m, Session* s, uint64_t tag, const PacketView& p, uint64_t now_ns,
                               TrafficClass& cls) {
  const PolicySnapshot& snap = *snap_;
  cls = TrafficClass::kUnregistered;
  if (is_v4(m) ? snap.blocklist().match_v4(m.src_v4) : snap.blocklist().match_v6(m.src_v6)) return Verdict::kBlocklisted;
  if (neighbour_discovery(m) || (s && icmp_error(m))) {
    cls = TrafficClass::kInfra;
    return take_infra(now_ns) ? Verdict::kPass : Verdict::kInfraOverRate;
  }
  const uint32_t now = session_tick(now_ns);
  // A reply on a session the cluster opened: no port check, the sessions budget. (On one it
  // accepted, the sender is a client like any other: its per-source limit below.)
  if (remote_on_session(s, m, p, now_ns) && (s->flags & Session::kOpened)) {
    Verdict v = police_sessions(p.len, now_ns);
    if (v == Verdict::kPass && m.first_fragment) *fragment_slot(fragment_tag(m)) = {fragment_tag(m), now + kFragmentTicks, kSessionChannel};
    return v;
  }
  if (m.non_first_fragment) {
    // No L4 header to show where it goes: it follows its first fragment, if that passed.
    const uint64_t ft = fragment_tag(m);
    const FragmentEntry* f = fragment_slot(ft);
    if (f->tag != ft || tick_before(f->deadline, now)) return Verdict::kUnregistered;
    return f->channel == kSessionChannel ? police_sessions(p.len, now_ns) : police_unregistered(tag, p.len, now_ns);
  }
  // Unregistered sources reach only the public ports.
  if (!m.has_port || !snap.unregistered_port(m.dst_port)) return Verdict::kUnregistered;
  Verdict v = police_unregistered(tag, p.len, now_ns);
  if (v == Verdict::kPass && m.first_fragment) *fragment_slot(fragment_tag(m)) = {fragment_tag(m), now + kFragmentTicks, kUnregisteredChannel};
  return v;
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
  c.request_profile = scaled_profile(s.request, factor);
  c.request.tokens = std::min(c.request.tokens, c.request_profile.burst);
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
