// The inside path: the cluster's own packets open and refresh sessions.
#include <algorithm>

#include "stakegate/base/prefetch.h"
#include "stakegate/pipeline/worker.h"
#include "worker_internal.h"

namespace stakegate {

using worker_detail::cluster_source;
using worker_detail::is_v4;
using worker_detail::unspecified_source;

// The session key of a packet the cluster sends, or false when it opens none: not from a
// cluster address, or neither TCP/UDP nor an ICMP echo request.
[[gnu::always_inline]] inline bool Worker::inside_key(const PacketMeta& m, SessionKey& k) const noexcept {
  const PolicySnapshot& snap = *snap_;
  if (m.kind != L3Kind::kIpv4 && m.kind != L3Kind::kIpv6) return false;
  // Only the cluster's own addresses and link-local ones (without cluster.prefixes, any
  // but the unspecified address, a DHCP client's before it has one: see note_dhcp).
  if (snap.cluster().empty() ? unspecified_source(m) : !cluster_source(snap, m)) return false;
  k.local = is_v4(m) ? mapped_v4(m.src_v4) : m.src_v6;
  k.remote = is_v4(m) ? mapped_v4(m.dst_v4) : m.dst_v6;
  k.proto = m.l4_proto;
  if (m.has_port) {
    k.lport = m.src_port;
    k.rport = m.dst_port;
    return true;
  }
  if (m.non_first_fragment) return false;
  if (m.has_icmp ? m.icmp_type == (m.l4_proto == kProtoIcmp ? 8 : 128) : portless_protocol(m.l4_proto)) {
    // An echo request (its reply comes back with the identifier), or a protocol without
    // ports (a node's GRE or IPsec tunnel): a session of the two addresses.
    k.lport = m.has_icmp ? m.icmp_id : 0;
    k.rport = 0;
    return true;
  }
  return false;
}

void Worker::inside_packet(const PacketView& p, const PacketMeta& m, const Lookup& look, uint64_t now_ns) noexcept {
  const bool tcp = m.l4_proto == kProtoTcp;
  if (!tcp) {
    inside_update(look, m.l4_proto, m.has_port, m.src_port, 0, 0, 0, 0, 0, -1, session_tick(now_ns));
    return;
  }
  inside_update(look, m.l4_proto, m.has_port, m.src_port, m.tcp_flags, m.tcp_seq, m.tcp_ack, m.tcp_win, tcp_seq_len(m),
                (m.tcp_flags & kTcpSyn) ? tcp_window_scale(p.data, m) : -1, session_tick(now_ns));
}

// The session of a packet the cluster sent (look.key), created if it is not live, and
// what the packet tells of it. (TCP fields only for TCP; `wscale` of a SYN, else -1.)
void Worker::inside_update(const Lookup& look, uint8_t proto, bool has_port, uint16_t sport, uint8_t flags,
                           uint32_t seq, uint32_t ack, uint16_t win, uint32_t seq_len, int wscale,
                           uint32_t now) noexcept {
  const PolicySnapshot& snap = *snap_;
  const SessionTimeouts& to = snap.timeouts;
  bool created = false, evicted = false;
  Session* s = sessions_.upsert(look.key, look.hash, now, created, evicted, look.ways);
  counters_.sessions_created += created;
  counters_.sessions_evicted += evicted;
  if (proto == kProtoTcp) {
    on_cluster_tcp(*s, created, flags, seq, ack, win, seq_len, wscale, snap.service_port(sport));
    sessions_.extend_keep(s, tcp_deadline(*s, to, now));
    return;
  }
  // UDP's timeout also for protocols without ports (tunnels, like UDP ones); ICMP's for echo.
  const bool icmp = proto == kProtoIcmp || proto == kProtoIcmp6;
  if (created) {
    s->state = icmp ? Session::kIcmp : Session::kUdp;
    // A datagram from a port the cluster serves answers a client: a session it accepted.
    s->flags = (has_port && snap.service_port(sport)) ? 0 : Session::kOpened;
    sessions_.extend_keep(s, now + (icmp ? to.icmp : to.udp));
    return;
  }
  sessions_.extend(s, now + (icmp ? to.icmp : to.udp));
}

// The cluster asks for a neighbour (an ARP request, a neighbour solicitation): a few
// answers from the outside within a few seconds pass outside the infra budget
// (neighbour_verdict, on whichever worker the answer reaches).
[[gnu::noinline]] void Worker::note_solicitation(const PacketView& p, const PacketMeta& m, uint32_t now) noexcept {
  Ip6 target;
  if (worker_detail::neighbour_target(p, m, false, target)) solicitations_->note(target, now);
}

// The cluster's DHCP client message (a node without an address yet, from 0.0.0.0 or its
// link-local address: no session can match the answer): its server's answers pass, a few
// within a few seconds (decide_unknown). `parsed`: the frame's full parse, or null (the
// fast path read only its ports).
[[gnu::noinline]] void Worker::note_dhcp(const PacketView& p, const PacketMeta* parsed, uint32_t now) noexcept {
  PacketMeta m;
  if (!parsed) {
    parse_view(p, m);
    parsed = &m;
  }
  Ip6 key;
  if (worker_detail::dhcp_transaction(p, *parsed, false, key)) dhcp_->note(key, now);
}

namespace {
// An inside packet from a source outside cluster.prefixes: counted, its address kept in one
// word the control thread reads whole (an IPv6 one as its /64).
void count_foreign_v4(WorkerCounters& c, uint32_t src) {
  c.inside_foreign++;
  __atomic_store_n(&c.inside_foreign_v4, uint64_t{src} | uint64_t{1} << 32, __ATOMIC_RELAXED);
}
void count_foreign_v6(WorkerCounters& c, const Ip6& src) {
  c.inside_foreign++;
  uint64_t prefix = 0;
  for (int b = 0; b < 8; ++b) prefix = prefix << 8 | src.bytes[b];
  __atomic_store_n(&c.inside_foreign_v6, prefix, __ATOMIC_RELAXED);
}
}  // namespace

// A DHCP client's message on the fast path (from 0.0.0.0, or renewing from its address).
[[gnu::noinline]] void Worker::note_dhcp_fast(const PacketView& p, const L4v4& t, uint32_t now) noexcept {
  if (t.proto == kProtoUdp && t.sport == 68 && t.dport == 67) note_dhcp(p, nullptr, now);
}

// A TCP or UDP packet of the fast path whose source opens no session: a DHCP client's from
// 0.0.0.0, or one from outside cluster.prefixes (counted).
[[gnu::noinline]] void Worker::note_unkeyed_fast(const PacketView& p, const L4v4& t, uint32_t now) noexcept {
  if (t.src != 0 && !snap_->cluster().empty()) count_foreign_v4(counters_, t.src);
  note_dhcp_fast(p, t, now);
}

// A packet of the full path that keyed no session: the cluster asking for a neighbour, or a
// source outside cluster.prefixes (not link-local, not unspecified): a node whose address
// the prefixes miss gets no replies to its connections, and the operator must hear of it.
[[gnu::noinline]] void Worker::note_unkeyed(const PacketView& p, const PacketMeta& m, uint32_t now) noexcept {
  if (worker_detail::maybe_neighbour(m, false)) note_solicitation(p, m, now);
  const PolicySnapshot& snap = *snap_;
  if ((m.kind != L3Kind::kIpv4 && m.kind != L3Kind::kIpv6) || snap.cluster().empty() || cluster_source(snap, m) ||
      unspecified_source(m))
    return;
  if (is_v4(m)) count_foreign_v4(counters_, m.src_v4);
  else count_foreign_v6(counters_, m.src_v6);
}

// Staged like the outside path: keys and tag-line prefetches for the whole stage, then
// the matching entries' prefetches, then the updates. The cluster's commonest packets (a
// TCP segment without SYN, or a UDP datagram, over untagged IPv4 without options: see
// parse_l4v4) are read without the full parse and, when their session is live, updated
// without a SessionKey; any other case (a new session, a SYN, IPv6, ...) takes
// inside_packet, with the lookups made so far. fast_path_test.cc compares the two.
void Worker::process_inside(const PacketView* pkts, uint16_t n, uint64_t now_ns) noexcept {
  constexpr int kDir = static_cast<int>(Direction::kInside), kCls = static_cast<int>(TrafficClass::kNone);
  const PolicySnapshot& snap = *snap_;
  const uint32_t now = session_tick(now_ns);
  worker_detail::Uninitialised<PacketMeta, kInsideStage> scratch;
  worker_detail::Uninitialised<Lookup, kInsideStage> lookups;
  PacketMeta* meta = scratch.v;
  Lookup* look = lookups.v;
  uint64_t bytes = 0;
  for (uint16_t done = 0; done < n;) {
    const uint16_t k = static_cast<uint16_t>(std::min<int>(n - done, kInsideStage));
    const PacketView* p = pkts + done;
    for (uint16_t i = 0; i < k; ++i) prefetch_line(p[i].data);
    for (uint16_t i = 0; i < k; ++i) {
      bytes += wire_length(p[i]);
      look[i].fast = fast_path_ && p[i].wire_len <= p[i].len && parse_l4v4(p[i].data, p[i].len, look[i].t);
      if (look[i].fast) {
        const L4v4& t = look[i].t;
        // inside_key for it: only the cluster's own addresses open sessions.
        if ((look[i].keyed = snap.cluster().empty() ? t.src != 0 : snap.cluster().contains_v4(t.src))) {
          look[i].hash = sessions_.hash_v4(t.src, t.dst, t.sport, t.dport, t.proto);
          sessions_.prefetch_with_home(look[i].hash);
          continue;
        }
        // Not the cluster's address: a node asking for one (from 0.0.0.0)? A link-local
        // source opens sessions too: the full path's inside_key keys it.
        if (!link_local_v4(t.src)) [[likely]] {
          note_unkeyed_fast(p[i], t, now);
          continue;
        }
        look[i].fast = false;
      }
      parse_view(p[i], meta[i]);
      if ((look[i].keyed = inside_key(meta[i], look[i].key))) {
        look[i].hash = sessions_.hash(look[i].key);
        sessions_.prefetch_with_home(look[i].hash);
      } else {
        note_unkeyed(p[i], meta[i], now);
      }
      if (dhcp_ports(meta[i], false)) [[unlikely]] note_dhcp(p[i], &meta[i], now);
    }
    for (uint16_t i = 0; i < k; ++i)
      if (look[i].keyed) {
        look[i].ways = sessions_.candidates(look[i].hash, now);
        sessions_.prefetch_ways(look[i].hash, look[i].ways);
      }
    for (uint16_t i = 0; i < k; ++i) {
      if (!look[i].keyed) continue;
      if (look[i].fast) {
        const L4v4& t = look[i].t;
        // The ways were scanned before this stage's earlier packets inserted: a session
        // not found among them (new, or just made by one of those) takes inside_packet,
        // whose upsert looks again.
        if (Session* s = sessions_.find_in_v4(look[i].hash, look[i].ways, t.src, t.dst, t.sport, t.dport, t.proto))
            [[likely]] {
          if (t.proto == kProtoTcp) {
            // Without SYN on a live session, only kAckSeen can join its flags: whether it is
            // kept (verified or opened) stays, so its tags need only the deadline, and only
            // when that moves.
            on_cluster_tcp(*s, false, t.flags, t.seq, t.ack, t.win, t.seq_len, -1, false);
            sessions_.extend(s, tcp_deadline(*s, snap.timeouts, now));
          } else {
            sessions_.extend(s, now + snap.timeouts.udp);
            // A DHCP client with an address: a rebinding REQUEST is broadcast, and its answer,
            // from the server's own address, matches no session.
            if (t.sport == 68) [[unlikely]] note_dhcp_fast(p[i], t, now);
          }
          counters_.fast_path_inside++;
          continue;
        }
        if (t.proto == kProtoUdp && t.sport == 68) [[unlikely]] note_dhcp_fast(p[i], t, now);
        // inside_key's key, from the fields.
        look[i].key.local = mapped_v4(t.src);
        look[i].key.remote = mapped_v4(t.dst);
        look[i].key.lport = t.sport;
        look[i].key.rport = t.dport;
        look[i].key.proto = t.proto;
        inside_update(look[i], t.proto, true, t.sport, t.flags, t.seq, t.ack, t.win, t.seq_len, -1, now);
        continue;
      }
      inside_packet(p[i], meta[i], look[i], now_ns);
    }
    done = static_cast<uint16_t>(done + k);
  }
  counters_.packets[kDir][kCls][0] += n;
  counters_.bytes[kDir][kCls][0] += bytes;
}

}  // namespace stakegate
