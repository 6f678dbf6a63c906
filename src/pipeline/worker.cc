#include "stakegate/pipeline/worker.h"

#include <bit>
#include <cstring>

#include "stakegate/base/prefetch.h"
#include "stakegate/base/routing.h"
#include "stakegate/net/parse.h"
#include "worker_internal.h"

namespace stakegate {
namespace {

constexpr uint32_t kFragmentTicks = 2'000'000'000ull >> kTickShift;  // fragments of one datagram arrive within 2 s

using worker_detail::in_cluster;
using worker_detail::is_v4;
using worker_detail::martian;

// IPv6 neighbour discovery (router/neighbour solicitation and advertisement, redirect)
// only ever has hop limit 255 (RFC 4861) and no fragment header (RFC 6980: hosts ignore
// such messages, which serve only to slip past RA guards); multicast listener queries
// and reports, hop limit 1.
bool neighbour_discovery(const PacketMeta& m) {
  if (m.kind != L3Kind::kIpv6 || !m.has_icmp || m.l4_proto != kProtoIcmp6) return false;
  if (m.icmp_type >= 133 && m.icmp_type <= 137) return m.ttl == 255 && !m.ip6_fragment_header;
  if ((m.icmp_type >= 130 && m.icmp_type <= 132) || m.icmp_type == 143) return m.ttl == 1;
  return false;
}

// (has_icmp: ICMP or ICMPv6, its header read.)
bool echo_request(const PacketMeta& m) { return m.has_icmp && m.icmp_type == (m.l4_proto == kProtoIcmp ? 8 : 128); }

bool icmp_error(const PacketMeta& m) {
  if (!m.has_icmp) return false;
  if (m.l4_proto == kProtoIcmp) return m.icmp_type == 3 || m.icmp_type == 11 || m.icmp_type == 12;
  return m.l4_proto == kProtoIcmp6 && m.icmp_type >= 1 && m.icmp_type <= 4;
}

// A RST refusing the cluster's SYN-ACK (Worker::pass_refusal): on a connection the cluster
// accepted and the remote never acknowledged, at exactly the number the SYN-ACK acknowledged.
bool refuses_syn_ack(const Session& s, const PacketMeta& m) {
  return m.l4_proto == kProtoTcp && m.has_port && (m.tcp_flags & kTcpRst) && s.state == Session::kTcpSynRcvd &&
         (s.flags & (Session::kVerified | Session::kOpened | Session::kAckSeen)) == Session::kAckSeen &&
         m.tcp_seq == s.cl_ack;
}

// The session key of a packet of a protocol without ports (GRE, ESP, ...) from the outside:
// the addresses. False for TCP or UDP too short for its ports. (Out of line: rare.)
[[gnu::noinline]] bool portless_key(const PacketMeta& m, SessionKey& k) {
  if (!portless_protocol(m.l4_proto)) return false;
  k.local = is_v4(m) ? mapped_v4(m.dst_v4) : m.dst_v6;
  k.remote = is_v4(m) ? mapped_v4(m.src_v4) : m.src_v6;
  k.lport = k.rport = 0;
  k.proto = m.l4_proto;
  return true;
}

// The session key of an outside packet: a reply to the cluster (TCP, UDP, ICMP echo
// reply), or the cluster's packet quoted by an ICMP error. False when it has none.
[[gnu::always_inline]] inline bool outside_key(const PacketView& p, const PacketMeta& m, SessionKey& k) {
  if (m.has_port) {
    k.local = is_v4(m) ? mapped_v4(m.dst_v4) : m.dst_v6;
    k.remote = is_v4(m) ? mapped_v4(m.src_v4) : m.src_v6;
    k.lport = m.dst_port;
    k.rport = m.src_port;
    k.proto = m.l4_proto;
    return true;
  }
  if (!m.has_icmp || m.non_first_fragment) return !m.non_first_fragment && portless_key(m, k);
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
  // What of the quote is at p.data (a chained frame's first buffer may hold less than
  // l4_len); has_icmp: at least the 8 bytes of ICMP header are.
  const uint32_t avail = std::min(m.l4_len, p.len - m.l4_off) - 8;
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
    // Past its extension headers, as its session was keyed: a Packet Too Big about the first
    // fragment of the cluster's fragmented datagram finds it; a non-first one shows no ports.
    detail::Ip6Chain c;
    if (avail < 48 || (q[0] >> 4) != 6 || !detail::walk_ip6_chain(q, avail, c) || c.non_first_fragment ||
        c.pos + 8 > avail)
      return false;
    l4 = c.pos;
    proto = c.next;
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
  if (portless_protocol(proto)) {  // a tunnel's packet (path MTU discovery of a GRE or IPsec tunnel)
    k.lport = k.rport = 0;
    return true;
  }
  return false;
}

// The full parse and (with `key`) the session key of an outside packet that left the fast
// path's line (rare, or an unregistered sender's TCP segment): out of line, so that the
// one copy inlined in decide_stage's first stage stays the only one there.
[[gnu::noinline]] void parse_outside(const PacketView& p, PacketMeta& m, SessionKey& k, bool& keyed, bool key) noexcept {
  parse_view(p, m);
  keyed = (m.kind == L3Kind::kIpv4 || m.kind == L3Kind::kIpv6) && (!key || outside_key(p, m, k));
}

}  // namespace


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

// The request channel: what a staked address sends off verified connections. It has two
// buckets of the same size: one for packets that arrive with the hop limit of the node's
// own verified packets, one for the rest (and for everything, until a connection of the
// address verified). A spoofer elsewhere in the network, whose packets arrive with another
// hop limit, then fills only the second, and the node's new connections (its SYNs) still
// pass on the first. Hop-count filtering (Jin, Wang and Shin, CCS 2003): a hop limit can
// be forged too, by a spoofer who knows the node's distance, so this only sorts packets
// that prove nothing; it never moves a score or decides a verdict beyond this channel.
Verdict Worker::police_request(uint32_t slot, uint8_t ttl, uint64_t now_ns) {
  NodeMeterCold& c = cold_[slot];
  const bool own_hop = c.hop != 0 && ttl == c.hop;
  if (!meter_take(own_hop ? c.request_hop : c.request, c.request_profile, now_ns, kTokenScale)) {
    c.dropped_request++;
    return Verdict::kRequestOverRate;
  }
  c.passed_request++;
  counters_.request_hop_passed += own_hop;
  return Verdict::kPass;
}

// One packet (and its bytes, with a byte budget) from a source's bucket and the pool, both
// brought up to date: only if every meter holds it, above its reserve with `reserves`.
[[gnu::always_inline]] inline bool Worker::take_unregistered(Meter& source, uint32_t len, bool reserves) {
  const PolicySnapshot& snap = *snap_;
  const bool bytes = snap.unregistered_pool_bps.rate != 0;
  const uint64_t byte_cost = meter_cost(len);
  if (source.tokens < kTokenScale + (reserves ? snap.unregistered_source_reserve : 0) ||
      pool_pkts_.tokens < kTokenScale + (reserves ? snap.unregistered_reserve : 0) ||
      (bytes && pool_bytes_.tokens < byte_cost + (reserves ? snap.unregistered_reserve_bytes : 0)))
    return false;
  source.tokens -= kTokenScale;
  pool_pkts_.tokens -= kTokenScale;
  if (bytes) pool_bytes_.tokens -= byte_cost;
  return true;
}

Verdict Worker::police_unregistered(uint64_t tag, uint32_t len, uint64_t now_ns) {
  const PolicySnapshot& snap = *snap_;
  const MeterProfile& sp = snap.unregistered_source_pps;
  UnregisteredEntry* set = unregistered_set(tag);
  UnregisteredEntry* e = find_unregistered(set, tag);
  if (!e) {
    UnregisteredEntry* victim = set;
    for (unsigned w = 1; w < kWays && victim->tag != 0; ++w)
      if (set[w].tag == 0 || set[w].meter.last_ns < victim->meter.last_ns) victim = &set[w];
    // Table full for this set: recycle its least recently seen source. A source idle
    // long enough to refill loses nothing; the shared pool still bounds the total.
    if (victim->tag != 0 && meter_level(victim->meter, sp, now_ns) < sp.burst) counters_.unregistered_evictions++;
    // A new source starts with one packet (and its reserve, for its verified connections),
    // not a whole burst: a sender cycling through addresses gains nothing by it.
    *victim = UnregisteredEntry{tag, Meter{std::min(kTokenScale + snap.unregistered_source_reserve, sp.burst), now_ns}};
    e = victim;
  }
  meter_refill(e->meter, sp, now_ns);
  meter_refill(pool_pkts_, snap.unregistered_pool_pps, now_ns);
  if (snap.unregistered_pool_bps.rate != 0) meter_refill(pool_bytes_, snap.unregistered_pool_bps, now_ns);
  // The reserves are for verified connections only (police_connection).
  return take_unregistered(e->meter, len, true) ? Verdict::kPass : Verdict::kUnregisteredOverRate;
}

// A TCP segment of an unregistered client (ACK set, SYN clear) that police_unregistered
// refused: its bucket or the pool held no more than its reserve. If it is on a connection
// the cluster accepted from that address and lies within the connection's windows
// (on_remote_tcp: the client received the cluster's packets there, which a forger cannot),
// it is the client's own traffic:
// - It may take the reserves: a flood of other sources (forged or not) that keeps the rest
//   of the pool empty, or a forger of the client's own address that keeps the rest of its
//   bucket empty, does not cut off connections the cluster already serves.
// - A new source starts with one packet and its reserve; a client sending its first
//   request at once would empty that and wait a retransmission timeout. When even the
//   reserve is spent, its bucket gets the full depth a source seen before has, once per
//   entry.
// The session is looked up only here: a public port's packets skip the lookup otherwise
// (see decide_stage), so a connection's windows move only with the packets seen here.
Verdict Worker::police_connection(uint64_t tag, const PacketMeta& m, const PacketView& p, uint64_t now_ns) noexcept {
  UnregisteredEntry* e = find_unregistered(unregistered_set(tag), tag);
  SessionKey key;
  if (!e || ((e->tag & kProven) && e->meter.tokens < kTokenScale) || !m.has_port || !outside_key(p, m, key))
    return Verdict::kUnregisteredOverRate;  // gone, or its bucket is empty, reserve and all, and it spent its proof
  Session* s = sessions_.find(key, sessions_.hash(key), session_tick(now_ns));
  if (!s || (s->flags & Session::kOpened) || !remote_on_session(s, m, p, now_ns)) return Verdict::kUnregisteredOverRate;
  if (e->meter.tokens < kTokenScale) {
    e->tag |= kProven;
    e->meter.tokens = snap_->unregistered_source_pps.burst;
    counters_.unregistered_proven++;
  }
  const uint32_t len = wire_length(p);
  if (take_unregistered(e->meter, len, true)) return Verdict::kPass;  // the proof was enough
  if (!take_unregistered(e->meter, len, false)) return Verdict::kUnregisteredOverRate;
  counters_.unregistered_reserve++;
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

// A frame another worker handed over was charged to that worker's budget before it was
// (hand_off): charged once, so a legitimate error is not held to the smaller of two budgets.
bool Worker::take_icmp_error(uint64_t now_ns) {
  return handed_in_ || meter_take(icmp_errors_, snap_->icmp_errors_pps, now_ns, kTokenScale);
}

// RA guard (infra.ra_guard): router advertisements and redirects (which set the nodes'
// default route and first hops) are infrastructure only from the MACs of
// infra.neighbours; from any other host they are judged as its other traffic
// (unregistered, as a rule).
bool Worker::router_message_allowed(const PacketView& p, const PacketMeta& m) const noexcept {
  if ((m.icmp_type != 134 && m.icmp_type != 137) || !snap_->ra_guard) return true;
  return snap_->neighbour_index(worker_detail::source_mac(p)) >= 0;
}

// ARP, neighbour discovery and listed EtherTypes, from hosts on the outside link
// (kPass, kInfraOverRate, or kSpoofed when it claims a cluster address: claims_cluster):
// - an answer to what the cluster itself asked (process_inside noted its request) passes
//   whatever the budget holds, a few per request: the cluster keeps resolving its router;
// - a frame from a MAC of infra.neighbours (the router) takes that MAC's own budget first:
//   the router keeps resolving the cluster;
// - anything else takes the shared budget.
// So an on-link flood, which drains the shared budget, cannot cut the cluster off. (The
// neighbours are configured, not learnt: any host on the link can get the cluster to ask
// for it, and answer.)
Verdict Worker::neighbour_verdict(const PacketView& p, const PacketMeta& m, uint64_t now_ns) noexcept {
  if (worker_detail::claims_cluster(*snap_, p, m)) [[unlikely]] return Verdict::kSpoofed;
  if (worker_detail::neighbour_impostor(*snap_, p, m)) [[unlikely]] {
    counters_.neighbour_impostors++;
    return Verdict::kSpoofed;
  }
  Ip6 target;
  if (worker_detail::maybe_neighbour(m, true) && worker_detail::neighbour_target(p, m, true, target)) {
    if (solicitations_->take_answer(target, session_tick(now_ns))) {
      counters_.neighbour_answers++;
      return Verdict::kPass;
    }
  }
  if (bound_neighbours_[0] != 0) {
    const int i = snap_->neighbour_index(worker_detail::source_mac(p));
    if (i >= 0 && meter_take(neighbour_meters_[i], snap_->infra_pps, now_ns, kTokenScale)) {
      counters_.listed_neighbour_passes++;
      return Verdict::kPass;
    }
  }
  return take_infra(now_ns) ? Verdict::kPass : Verdict::kInfraOverRate;
}

// A packet of a routing protocol the config lists (infra.routing) from a neighbour: its
// index in infra.neighbours, or -1. From the router itself means: from its MAC, from one of
// the addresses listed under that MAC, and sent on the link: with TTL (hop limit) 255, which
// no packet that crossed a router still has (GTSM, RFC 5082; BFD and VRRP always send so),
// or to a link-local multicast group, which routers never forward (224.0.0.0/24 and
// ff02::/16: OSPF's and PIM's hellos, RIP's updates). Whoever elsewhere forges the router's
// address can produce neither; a host of the link could forge all three, and then spends
// only that neighbour's routing budget, as it could its ARP budget. Whole datagrams only
// (a fragment's TTL is the same, but a non-first one has no ports to name its protocol).
// Out of line: only with infra.routing set.
[[gnu::noinline]] int Worker::routing_source(const PacketView& p, const PacketMeta& m) const noexcept {
  if (m.first_fragment || m.non_first_fragment) return -1;
  if (!(snap_->routing & routing_protocol_of(m.l4_proto, m.has_port, m.src_port, m.dst_port))) return -1;
  const bool link_group = is_v4(m) ? (m.dst_v4 >> 8) == 0xe00000
                                   : m.dst_v6.bytes[0] == 0xff && (m.dst_v6.bytes[1] & 0x0f) <= 2;
  if (m.ttl != 255 && !link_group) return -1;
  const uint64_t mac = worker_detail::source_mac(p);
  const int i = snap_->neighbour_index(mac);
  if (i < 0 || !snap_->neighbour_owns(is_v4(m) ? mapped_v4(m.src_v4) : m.src_v6, mac)) return -1;
  return i;
}

// The routing budget of neighbour i (infra.routing_pps each): its own, so that a flood of
// ARP on the link cannot hold back its BFD, nor its BGP table its ARP.
Verdict Worker::routing_verdict(int i, uint64_t now_ns) noexcept {
  if (meter_take(routing_meters_[i], snap_->routing_pps, now_ns, kTokenScale)) {
    counters_.routing_passes++;
    return Verdict::kPass;
  }
  counters_.routing_over_rate++;
  return Verdict::kInfraOverRate;
}

// Step 5, infrastructure, for any source past its blocklist check: neighbour discovery
// (within the RA guard) and ICMP errors about a live session. True, with the verdict and
// class, when the packet is one of them.
// (Inlined: the two tests are on every full-path packet's way; the rest is out of line.)
[[gnu::always_inline]] inline bool Worker::decide_infra(const PacketView& p, const PacketMeta& m, const Session* s,
                                                        uint64_t now_ns, Verdict& v, TrafficClass& cls) noexcept {
  if (neighbour_discovery(m) && router_message_allowed(p, m)) {
    v = neighbour_verdict(p, m, now_ns);
  } else if (s && icmp_error(m)) {
    v = take_icmp_error(now_ns) ? Verdict::kPass : Verdict::kInfraOverRate;
  } else {
    return false;
  }
  cls = v == Verdict::kSpoofed ? TrafficClass::kNone : TrafficClass::kInfra;
  return true;
}

// ---- sessions ------------------------------------------------------------------------

// Is this outside packet on session `s`? TCP: only on the verified connection, within its
// windows (a spoofer who guessed the 4-tuple is not enough); UDP and ICMP: the 4-tuple is
// all there is to match (a reply keeps the session alive, as conntrack does).
// `node`: the sender's meter when it is a staked address, which learns the hop limit of a
// packet that verifies its connection.
[[gnu::always_inline]] inline bool Worker::remote_on_session(Session* s, const PacketMeta& m, const PacketView& p,
                                                             uint64_t now_ns, NodeMeterCold* node) {
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
      if (node) node->hop = m.ttl;
      sessions_.extend_keep(s, tcp_deadline(*s, to, now));
    }
    return true;
  }
  sessions_.extend(s, now + (m.has_icmp ? to.icmp : to.udp));
  return true;
}

// A staked address's RST refusing the SYN-ACK the cluster sent to a SYN in its name that it
// never sent (a forged one that passed its request channel): the reset of a connection
// the cluster accepted and the remote never acknowledged, at exactly the sequence number
// the SYN-ACK acknowledged (what a host's stack sends to an unexpected SYN-ACK). It closes
// the half-open connection on the cluster too, and passes without taking the request
// channel: a spoofer's SYNs would else spend the node's own bucket (its hop limit's)
// through its refusals. Once per connection (its session is then closed); it proves
// nothing (a spoofer knows its own SYN's number) and moves no score.
Verdict Worker::pass_refusal(Session* s, uint64_t now_ns) noexcept {
  s->state = Session::kTcpClosed;
  sessions_.extend(s, tcp_deadline(*s, snap_->timeouts, session_tick(now_ns)));
  counters_.refusals_passed++;
  return Verdict::kPass;
}

// A datagram's fragments: IPv4's are one by addresses, protocol and identification
// (RFC 791); IPv6's by addresses and identification alone (RFC 8200 4.5): a non-first
// fragment's parsed protocol is what follows its fragment header (destination options or
// AH may, before the transport the first fragment was parsed down to).
uint64_t Worker::fragment_tag(const PacketMeta& m) const noexcept {
  if (is_v4(m)) return mix64((uint64_t{m.src_v4} << 32 | m.dst_v4) ^ (uint64_t{m.frag_id} << 8 | m.l4_proto) ^ seed_) | 1;
  return mix64(hash_v6(m.src_v6) ^ (hash_v6(m.dst_v6) << 1) ^ (uint64_t{m.frag_id} << 8) ^ seed_) | 1;
}

// ---- the verdict ---------------------------------------------------------------------

// An ICMP error whose quoted session this worker does not hold: true, with out[i] =
// kHandoff and its target noted, when the session's remote belongs to another worker (and
// the frame was not handed here already). It is charged to this worker's ICMP error budget
// first, and dropped here (decided, counted, true) when that is spent: however many errors
// quoting cluster sources a forger sends, at most the budget's worth reach the rings, and
// the errors that do are not crowded out of them.
bool Worker::hand_off(const PacketMeta& m, const Lookup& look, Verdict* v) noexcept {
  const size_t i = static_cast<size_t>(v - out_origin_);
  if (!steering_.on() || handed_in_ || i >= kHandoffSlots || !look.keyed || !icmp_error(m)) return false;
  // Only the cluster's addresses have sessions: an error quoting another source matches
  // none on any worker, and is decided here (a forged error flood stays on one worker).
  const Ip6& local = look.key.local;
  if (const ClusterPrefixes& c = snap_->cluster();
      !c.empty() && !(is_mapped_v4(local) ? c.contains_v4(unmapped_v4(local)) : c.contains_v6(local)))
    return false;
  const uint16_t owner = steering_.owner(look.key.remote);
  if (owner == steering_.self) return false;
  if (!take_icmp_error(clock_ns())) {
    *v = Verdict::kInfraOverRate;
    const int outside = static_cast<int>(Direction::kOutside), infra = static_cast<int>(TrafficClass::kInfra);
    counters_.packets[outside][infra][static_cast<int>(*v)]++;
    counters_.bytes[outside][infra][static_cast<int>(*v)] += wire_length(in_origin_[i]);
    return true;
  }
  handoff_to_[i] = owner;
  *v = kHandoff;
  counters_.handoffs++;
  return true;
}

// A burst is decided in stages so that each stage's memory accesses for all packets are
// in flight together: frame bytes; the address table line and the session set's tags;
// each source's meter (or unregistered bucket) and the matching session entry; then each
// packet is decided in order. Stages never wait on a miss they could have started earlier.
uint16_t Worker::process_outside(const PacketView* pkts, uint16_t n, uint64_t now_ns, Verdict* out) noexcept {
  tick(now_ns);
  in_origin_ = pkts;
  out_origin_ = out;
  for (uint16_t done = 0; done < n;) {
    uint16_t k = static_cast<uint16_t>(std::min<int>(n - done, kOutsideStage));
    decide_stage(pkts + done, k, now_ns, out + done);
    done = static_cast<uint16_t>(done + k);
  }
  return n;
}

// The fast path: a staked node's segment on its verified connection, decided exactly as
// decide_node decides it, from the few fields parse_l4v4 reads: no full parse, no
// SessionKey. False, with nothing changed, for anything else (a node that is blocked,
// ejected or spoofed; no verified session; a segment outside its windows):
// the full path then decides the packet. tests/unit/fast_path_test.cc runs both over the
// same traffic and compares every verdict, counter, meter and session.
// `look`: stage 2 found the sender's slot and scanned its session's set (`ways`).
[[gnu::always_inline]] inline bool Worker::decide_fast(const Lookup& look, const PacketView& p, uint64_t now_ns,
                                                       uint32_t now, Verdict& v, TrafficClass& cls) {
  const uint32_t slot = look.slot;
  const L4v4& t = look.t;
  NodeMeter& nm = meters_[slot];
  if (nm.flags & (SourcePolicy::kNotOutside | SourcePolicy::kBlocked | SourcePolicy::kEjected)) return false;
  Session* s = sessions_.find_in_v4(look.hash, look.ways, t.dst, t.src, t.dport, t.sport, kProtoTcp);
  if (!s || !(s->flags & Session::kVerified) || !on_remote_tcp(*s, t.flags, t.seq, t.ack, t.win, -1)) return false;
  // A graylisted node's recovery check comes after the session's update here, before it
  // in decide_node: the two touch disjoint state (its score and rates; the session).
  if (nm.flags & SourcePolicy::kGraylisted) [[unlikely]] {
    if (now_ns >= cold_[slot].peer.score_ns + kDecayStepNs) check_recovery(slot, now_ns);
    if (nm.flags & SourcePolicy::kGraylisted) cold_[slot].peer.check_normal(now_ns);
  }
  sessions_.extend(s, tcp_deadline(*s, snap_->timeouts, now));
  cls = nm.cls;
  v = police_verified(slot, p.len, now_ns);
  if (v != Verdict::kPass && !cold_[slot].peer.settled(snap_->score, now_ns)) on_source_drop(slot, v, true, p, now_ns);
  return true;
}

void Worker::decide_stage(const PacketView* pkts, uint16_t n, uint64_t now_ns, Verdict* out) noexcept {
  const PolicySnapshot& snap = *snap_;
  // Filled before read: parse_view and outside_key (or parse_l4v4) set what is used.
  worker_detail::Uninitialised<PacketMeta, kOutsideStage> scratch;
  worker_detail::Uninitialised<Lookup, kOutsideStage> lookups;
  PacketMeta* meta = scratch.v;
  Lookup* look = lookups.v;
  uint64_t tag[kOutsideStage];
  const uint32_t now = session_tick(now_ns);
  for (uint16_t i = 0; i < n; ++i) prefetch_line(pkts[i].data);

  for (uint16_t i = 0; i < n; ++i) {
    // A TCP segment without SYN (a SYN's window scale option needs the full parse).
    look[i].fast = fast_path_ && pkts[i].wire_len <= pkts[i].len && parse_l4v4<true>(pkts[i].data, pkts[i].len, look[i].t);
    if (!look[i].fast) {
      PacketMeta& m = meta[i];
      parse_view(pkts[i], m);
      look[i].keyed = look[i].scanned = false;
      if (m.kind == L3Kind::kIpv4) snap.prefetch_v4(m.src_v4);
      else if (m.kind == L3Kind::kIpv6) snap.prefetch_v6(m.src_v6);
      else continue;
      // To a public port, only a staked sender's packet needs its session (an unregistered
      // client there gets its per-source limit whatever it holds): its key is made in stage
      // 2 if the sender is a node. (A flood to a public port skips it: most floods.)
      look[i].lazy = m.has_port && snap.unregistered_port(m.dst_port);
      if (look[i].lazy) {
        look[i].keyed = true;
      } else if ((look[i].keyed = outside_key(pkts[i], m, look[i].key))) {
        look[i].hash = sessions_.hash(look[i].key);
        sessions_.prefetch(look[i].hash);
      }
      continue;
    }
    // Its session's tags are fetched whatever the port: a node's packet needs them, and
    // whether a public port's packet does (its sender is a node) is known only in stage 2.
    const L4v4& t = look[i].t;
    snap.prefetch_v4(t.src);
    look[i].hash = sessions_.hash_v4(t.dst, t.src, t.dport, t.sport, kProtoTcp);
    sessions_.prefetch(look[i].hash);
  }

  for (uint16_t i = 0; i < n; ++i) {
    look[i].slot = PolicySnapshot::kNoSource;
    if (look[i].fast) {
      look[i].slot = snap.find_v4(look[i].t.src);
      if (look[i].slot != PolicySnapshot::kNoSource) [[likely]] {
        look[i].ways = sessions_.candidates(look[i].hash, now);
        look[i].scanned = true;
        sessions_.prefetch_ways(look[i].hash, look[i].ways);
        prefetch_line(&meters_[look[i].slot]);
        continue;
      }
      // Not a node's: the full path from here (hash is the full path's already; to a
      // public port, its session is not wanted, so neither is its key).
      look[i].fast = false;
      look[i].lazy = snap.unregistered_port(look[i].t.dport);
      parse_outside(pkts[i], meta[i], look[i].key, look[i].keyed, !look[i].lazy);
    } else {
      const PacketMeta& m = meta[i];
      if (m.kind == L3Kind::kIpv4) look[i].slot = snap.find_v4(m.src_v4);
      else if (m.kind == L3Kind::kIpv6) look[i].slot = snap.find_v6(m.src_v6);
      else continue;
    }
    const PacketMeta& m = meta[i];
    if (look[i].keyed && look[i].lazy) {
      if (look[i].slot != PolicySnapshot::kNoSource) {
        outside_key(pkts[i], m, look[i].key);
        look[i].hash = sessions_.hash(look[i].key);
        sessions_.prefetch(look[i].hash);
      } else {
        look[i].keyed = false;
      }
    } else if (look[i].keyed) {
      look[i].ways = sessions_.candidates(look[i].hash, now);
      look[i].scanned = true;
      sessions_.prefetch_ways(look[i].hash, look[i].ways);
    }
    if (look[i].slot != PolicySnapshot::kNoSource) {
      prefetch_line(&meters_[look[i].slot]);
    } else {
      // Sources choose these addresses: a seeded, well-mixed hash keeps them from aiming at
      // one set. An IPv6 sender is one /64 (its own subnet), not one address of it.
      uint64_t upper;
      std::memcpy(&upper, m.src_v6.bytes.data(), 8);
      tag[i] = (mix64((m.kind == L3Kind::kIpv4 ? uint64_t{m.src_v4} : upper * 0x9e3779b97f4a7c15ull) ^ seed_) | 1) & ~kProven;
      const UnregisteredEntry* set = unregistered_set(tag[i]);
      prefetch_line(set);
      prefetch_line(set + kWays - 1);  // a set spans two cache lines
    }
  }

  auto& pk = counters_.packets[static_cast<int>(Direction::kOutside)];
  auto& by = counters_.bytes[static_cast<int>(Direction::kOutside)];
  for (uint16_t i = 0; i < n; ++i) {
    const PacketMeta& m = meta[i];
    TrafficClass cls;
    Verdict v;
    if (look[i].fast) {
      if (decide_fast(look[i], pkts[i], now_ns, now, v, cls)) [[likely]] {
        out[i] = v;
        pk[static_cast<int>(cls)][static_cast<int>(v)]++;
        by[static_cast<int>(cls)][static_cast<int>(v)] += pkts[i].len;
        counters_.fast_path++;
        continue;
      }
      // Off the fast path's line: the full path decides it, with the lookups made so far.
      parse_outside(pkts[i], meta[i], look[i].key, look[i].keyed, true);
    }
    if (m.kind == L3Kind::kNonIp) {
      // ARP and the EtherTypes the config lists, within the infra budget; nothing else.
      cls = TrafficClass::kL2;
      v = snap.infra_ethertype(m.ethertype) ? neighbour_verdict(pkts[i], m, now_ns) : Verdict::kL2Denied;
      if (v == Verdict::kSpoofed) [[unlikely]] cls = TrafficClass::kNone;
    } else if (m.kind == L3Kind::kMalformed) {
      cls = TrafficClass::kNone;
      v = Verdict::kMalformed;
    } else {
      counters_.non_first_fragments += m.non_first_fragment & !redecide_until_;  // a held one, once
      Session* s = !look[i].keyed   ? nullptr
                   : look[i].scanned ? sessions_.find_in(look[i].key, look[i].hash, look[i].ways)
                                     : sessions_.find(look[i].key, look[i].hash, now);
      // An ICMP error from a router hashes by the router's address; the session it quotes
      // is on the worker of the remote the cluster sent to. Hand it there (several workers).
      if (!s && m.has_icmp && hand_off(m, look[i], out + i)) [[unlikely]] continue;
      // A source claiming the cluster's own address, or one no host can have, is spoofed
      // (for a table's address the snapshot marked it; others are checked here).
      if (look[i].slot != PolicySnapshot::kNoSource && !(meters_[look[i].slot].flags & SourcePolicy::kNotOutside)) {
        cls = meters_[look[i].slot].cls;
        v = decide_node(look[i].slot, m, s, pkts[i], now_ns, cls);
      } else if (look[i].slot != PolicySnapshot::kNoSource || (!snap.cluster().empty() && in_cluster(snap, m, true)) ||
                 martian(m)) [[unlikely]] {
        cls = TrafficClass::kNone;
        v = Verdict::kSpoofed;
        note_spoofed(m);
      } else {
        v = decide_unknown(m, s, tag[i], pkts[i], now_ns, cls);
      }
    }
    out[i] = v;
    if (v == kHold) [[unlikely]] continue;
    pk[static_cast<int>(cls)][static_cast<int>(v)]++;
    by[static_cast<int>(cls)][static_cast<int>(v)] += wire_length(pkts[i]);
  }
}

// ---- fragments ahead of their first -----------------------------------------------------

bool Worker::hold_fragment(uint64_t ft, uint64_t now_ns) noexcept {
  const uint64_t until = redecide_until_ ? redecide_until_ : now_ns + kHoldNs;
  if (!holding_ || held_n_ >= kHoldMax || now_ns >= until) return false;
  held_tag_[held_n_] = ft;
  held_until_[held_n_] = until;
  held_n_++;
  if (!redecide_until_) counters_.fragments_held++;
  return true;
}

void Worker::note_first_fragment(uint64_t ft, uint32_t now, Channel channel) noexcept {
  *fragment_slot(ft) = {ft, now + kFragmentTicks, channel};
  for (uint16_t j = 0; j < held_n_; ++j) held_ready_ |= held_tag_[j] == ft;
}

void Worker::process_held(const PacketView* pkts, uint16_t n, uint64_t now_ns, Verdict* out) noexcept {
  const std::array<uint64_t, kHoldMax> until = held_until_;
  const uint16_t had = held_n_;
  held_n_ = 0;
  held_ready_ = false;
  for (uint16_t i = 0; i < n; ++i) {
    redecide_until_ = i < had ? until[i] : 1;  // each keeps its own time (a frame never held: none left)
    process_outside(pkts + i, 1, now_ns, out + i);
  }
  redecide_until_ = 0;
}

// A spoofed packet from a cluster address to a cluster address is counted apart: forged,
// or the router routing the nodes' traffic to each other (docs/deployment.md). Out of line.
void Worker::note_spoofed(const PacketMeta& m) noexcept {
  const PolicySnapshot& snap = *snap_;
  counters_.spoofed_internal += !snap.cluster().empty() && in_cluster(snap, m, true) && in_cluster(snap, m, false);
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
  if (Verdict v; decide_infra(p, m, s, now_ns, v, cls)) return v;
  if (s && m.l4_proto == kProtoTcp && m.has_port && remote_on_session(s, m, p, now_ns, &cold_[slot])) [[likely]] {
    if (nm.flags & SourcePolicy::kGraylisted) cold_[slot].peer.check_normal(now_ns);
    Verdict v = police_verified(slot, wire_length(p), now_ns);
    if (v != Verdict::kPass && !cold_[slot].peer.settled(snap_->score, now_ns)) on_source_drop(slot, v, true, p, now_ns);
    return v;
  }
  Verdict v;
  if (s && m.l4_proto != kProtoTcp && (s->flags & Session::kOpened)) {
    // A UDP or ICMP reply on a session the cluster opened: traffic it asked for, but proving
    // nothing about its sender, so neither the node's allowance nor its request channel
    // (a spoofer fills that one): the shared sessions budget, as for unregistered senders.
    remote_on_session(s, m, p, now_ns);
    v = police_sessions(wire_length(p), now_ns);
    (v == Verdict::kPass ? cold_[slot].passed_session : cold_[slot].dropped_session)++;
  } else if (s && refuses_syn_ack(*s, m)) [[unlikely]] {
    v = pass_refusal(s, now_ns);
  } else if (s) {
    // On a session's 4-tuple but not (provably) its traffic: a datagram to a port the
    // cluster serves, or a TCP packet out of the connection's windows. No port check: the
    // cluster chose the port.
    if (m.l4_proto != kProtoTcp) remote_on_session(s, m, p, now_ns);
    v = police_request(slot, m.ttl, now_ns);
  } else if (!m.non_first_fragment && (m.has_port ? !snap_->port_allowed(nm.port_set, m.dst_port)
                                                  : nm.port_set != SourcePolicy::kAllPorts)) {
    // A non-first fragment has no port: it is policed by source only. A port-less
    // protocol (ICMP, ...) is refused where the role lists ports.
    cold_[slot].dropped_port_denied++;
    v = Verdict::kPortDenied;
  } else {
    v = police_request(slot, m.ttl, now_ns);
  }
  if (v != Verdict::kPass && (nm.flags & (SourcePolicy::kGraylisted | SourcePolicy::kSample)) && cold_[slot].peer.unverified_left)
    on_source_drop(slot, v, false, p, now_ns);
  return v;
}

// A DHCP answer to one of the cluster's transactions (process_inside noted it)?
bool Worker::dhcp_answer(const PacketView& p, const PacketMeta& m, uint32_t now) noexcept {
  Ip6 key;
  if (!worker_detail::dhcp_transaction(p, m, true, key) || !dhcp_->take_answer(key, now)) return false;
  counters_.dhcp_answers++;
  return true;
}

// IGMP, IPv4's multicast group membership (the router's queries, other hosts' reports),
// passes as MLD does for IPv6: link-scoped, so TTL 1, to a multicast group, whole (no
// fragment); the router's (a MAC of infra.neighbours) on its own budget, then the infra
// budget. Without the querier's queries, an IGMP-snooping switch behind the gateway drops
// the nodes' memberships and, with them, their multicast. Anything else of protocol 2 is
// what any port-less packet of an unknown source is: unregistered.
Verdict Worker::igmp_verdict(const PacketView& p, const PacketMeta& m, uint64_t now_ns, TrafficClass& cls) noexcept {
  if (m.kind != L3Kind::kIpv4 || m.ttl != 1 || (m.dst_v4 >> 28) != 0xe || m.first_fragment || m.non_first_fragment)
    return Verdict::kUnregistered;
  cls = TrafficClass::kInfra;
  return neighbour_verdict(p, m, now_ns);
}

// A source that is not a node (steps 4-6 and 8).
Verdict Worker::decide_unknown(const PacketMeta& m, Session* s, uint64_t tag, const PacketView& p, uint64_t now_ns,
                               TrafficClass& cls) {
  const PolicySnapshot& snap = *snap_;
  cls = TrafficClass::kUnregistered;
  if (is_v4(m) ? snap.blocklist().match_v4(m.src_v4) : snap.blocklist().match_v6(m.src_v6)) return Verdict::kBlocklisted;
  if (Verdict v; decide_infra(p, m, s, now_ns, v, cls)) return v;
  const uint32_t now = session_tick(now_ns);
  // A reply on a session the cluster opened: no port check, the sessions budget. (On one it
  // accepted, the sender is a client like any other: its per-source limit below.)
  if (remote_on_session(s, m, p, now_ns) && (s->flags & Session::kOpened)) {
    Verdict v = police_sessions(wire_length(p), now_ns);
    if (v == Verdict::kPass && m.first_fragment) note_first_fragment(fragment_tag(m), now, kSessionChannel);
    return v;
  }
  if (m.non_first_fragment) {
    // No L4 header to show where it goes: it follows its first fragment, if that passed.
    const uint64_t ft = fragment_tag(m);
    const FragmentEntry* f = fragment_slot(ft);
    if (f->tag != ft || tick_before(f->deadline, now)) return hold_fragment(ft, now_ns) ? kHold : Verdict::kUnregistered;
    return f->channel == kSessionChannel ? police_sessions(wire_length(p), now_ns)
                                         : police_unregistered(tag, wire_length(p), now_ns);
  }
  // Unregistered sources reach only the public ports (and with unregistered.icmp_echo,
  // echo requests); besides, as infrastructure, an answer to the cluster's own DHCP
  // transaction (a node asking for an address has no session to match: a few per
  // transaction, whatever the budget holds), IGMP, and the routers' routing protocols.
  // Checked where the packet would be dropped, so they cost the other packets nothing (a
  // router's packets on a connection the node opened are replies on its session before).
  if (m.has_port ? !snap.unregistered_port(m.dst_port) : !(snap.icmp_echo && echo_request(m))) {
    if (dhcp_ports(m, true) && dhcp_answer(p, m, now)) [[unlikely]] {
      cls = TrafficClass::kInfra;
      return Verdict::kPass;
    }
    if (m.l4_proto == kProtoIgmp) [[unlikely]] return igmp_verdict(p, m, now_ns, cls);
    if (snap.routing) [[unlikely]] {  // the routers' routing protocols (infra.routing)
      if (const int i = routing_source(p, m); i >= 0) {
        cls = TrafficClass::kInfra;
        return routing_verdict(i, now_ns);
      }
    }
    return Verdict::kUnregistered;
  }
  Verdict v = police_unregistered(tag, wire_length(p), now_ns);
  if (v == Verdict::kUnregisteredOverRate && m.l4_proto == kProtoTcp && (m.tcp_flags & (kTcpSyn | kTcpAck)) == kTcpAck)
      [[unlikely]]
    v = police_connection(tag, m, p, now_ns);
  if (v == Verdict::kPass && m.first_fragment) note_first_fragment(fragment_tag(m), now, kUnregisteredChannel);
  return v;
}

}  // namespace stakegate
