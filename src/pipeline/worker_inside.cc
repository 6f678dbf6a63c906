// The inside path: the cluster's own packets open and refresh sessions.
#include <algorithm>

#include "stakegate/pipeline/worker.h"
#include "worker_internal.h"

namespace stakegate {

using worker_detail::in_cluster;
using worker_detail::is_v4;

// The session key of a packet the cluster sends, or false when it opens none: not from a
// cluster address, or neither TCP/UDP nor an ICMP echo request.
[[gnu::always_inline]] inline bool Worker::inside_key(const PacketMeta& m, SessionKey& k) const noexcept {
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

void Worker::inside_packet(const PacketView& p, const PacketMeta& m, const Lookup& look, uint64_t now_ns) noexcept {
  const PolicySnapshot& snap = *snap_;
  const uint32_t now = session_tick(now_ns);
  const SessionTimeouts& to = snap.timeouts;
  bool created = false, evicted = false;
  Session* s = sessions_.upsert(look.key, look.hash, now, created, evicted, look.ways);
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
  const uint32_t now = session_tick(now_ns);
  worker_detail::Uninitialised<PacketMeta, kInsideStage> scratch;
  worker_detail::Uninitialised<Lookup, kInsideStage> lookups;
  PacketMeta* meta = scratch.v;
  Lookup* look = lookups.v;
  uint64_t bytes = 0;
  for (uint16_t done = 0; done < n;) {
    const uint16_t k = static_cast<uint16_t>(std::min<int>(n - done, kInsideStage));
    const PacketView* p = pkts + done;
    for (uint16_t i = 0; i < k; ++i) __builtin_prefetch(p[i].data);
    for (uint16_t i = 0; i < k; ++i) {
      bytes += wire_length(p[i]);
      parse_view(p[i], meta[i]);
      if ((look[i].keyed = inside_key(meta[i], look[i].key))) {
        look[i].hash = sessions_.hash(look[i].key);
        sessions_.prefetch_with_home(look[i].hash);
      }
    }
    for (uint16_t i = 0; i < k; ++i)
      if (look[i].keyed) {
        look[i].ways = sessions_.candidates(look[i].hash, now);
        sessions_.prefetch_ways(look[i].hash, look[i].ways);
      }
    for (uint16_t i = 0; i < k; ++i)
      if (look[i].keyed) inside_packet(p[i], meta[i], look[i], now_ns);
    done = static_cast<uint16_t>(done + k);
  }
  counters_.packets[kDir][kCls][0] += n;
  counters_.bytes[kDir][kCls][0] += bytes;
}

}  // namespace stakegate
