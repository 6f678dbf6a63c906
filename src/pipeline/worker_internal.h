#pragma once
// What the worker's translation units share (worker.cc: the outside path and the meters;
// worker_inside.cc: the inside path; worker_state.cc: binding snapshots, scores, events).
#include <cstring>

#include "stakegate/net/parse.h"
#include "stakegate/pipeline/worker.h"

namespace stakegate::worker_detail {

inline bool is_v4(const PacketMeta& m) { return m.kind == L3Kind::kIpv4; }

// A stage's working storage (PacketMeta, Lookup), filled before it is read: not
// value-initialised, which would cost more than deciding a small packet.
template <class T, int N>
union Uninitialised {
  Uninitialised() {}
  T v[N];
};

// Sources that cannot come from the outside: loopback, multicast, broadcast.
inline bool martian(const PacketMeta& m) { return is_v4(m) ? martian_v4(m.src_v4) : martian_v6(m.src_v6); }

// 0.0.0.0 or :: as the source: a host that has no address yet (a DHCP client, DAD).
inline bool unspecified_source(const PacketMeta& m) {
  if (is_v4(m)) return m.src_v4 == 0;
  static constexpr Ip6 kNone{};
  return m.src_v6 == kNone;
}

inline bool in_cluster(const PolicySnapshot& s, const PacketMeta& m, bool source) {
  if (is_v4(m)) return s.cluster().contains_v4(source ? m.src_v4 : m.dst_v4);
  return s.cluster().contains_v6(source ? m.src_v6 : m.dst_v6);
}

// A source the cluster's own sessions start from: one of cluster.prefixes, or a link-local
// address. The gateway sits inside one link (the nodes and their router share it), so a
// link-local source on the inside port is a node's own (a node pinging its router's
// link-local address, routing protocols over link-local), and the prefixes never list it.
inline bool cluster_source(const PolicySnapshot& s, const PacketMeta& m) {
  if (is_v4(m)) return s.cluster().contains_v4(m.src_v4) || link_local_v4(m.src_v4);
  return s.cluster().contains_v6(m.src_v6) || link_local_v6(m.src_v6);
}

// The address a neighbour request asks for (`answer` false: an ARP request's target, an
// IPv6 neighbour solicitation's target) or a neighbour answer speaks for (true: an ARP
// reply's sender, a neighbour advertisement's target), IPv4 as mapped. False for any other
// frame, and for neighbour discovery that is not on-link (hop limit 255, no fragment
// header: RFC 4861, RFC 6980).
inline bool neighbour_target(const PacketView& p, const PacketMeta& m, bool answer, Ip6& target) {
  if (m.kind == L3Kind::kNonIp) {
    Arp4 a;
    if (!parse_arp4(p.data, p.len, m, a) || a.op != (answer ? 2 : 1)) return false;
    target = mapped_v4(answer ? a.sender : a.target);
    return true;
  }
  if (m.kind != L3Kind::kIpv6 || !m.has_icmp || m.l4_proto != kProtoIcmp6 || m.icmp_type != (answer ? 136 : 135) ||
      m.ttl != 255 || m.ip6_fragment_header || m.l4_len < 24 || p.len < m.l4_off + 24u)
    return false;
  std::memcpy(target.bytes.data(), p.data + m.l4_off + 8, 16);
  return true;
}

// A neighbour frame from the outside claiming a cluster address as its sender's (an ARP
// frame's sender, a neighbour advertisement's target): what would point the nodes'
// neighbour entries for each other at an outside host (ARP or ND poisoning of the
// cluster's own traffic). The cluster's addresses never live outside: spoofed, as an IP
// source inside them is.
inline bool claims_cluster(const PolicySnapshot& s, const PacketView& p, const PacketMeta& m) {
  if (s.cluster().empty()) return false;
  if (m.kind == L3Kind::kNonIp) {
    Arp4 a;
    return parse_arp4(p.data, p.len, m, a) && s.cluster().contains_v4(a.sender);
  }
  Ip6 target;
  return neighbour_target(p, m, true, target) && s.cluster().contains_v6(target);
}

// The frame's source MAC, its 6 bytes in a word as PolicySnapshot::neighbours() holds
// them. (Every frame past parsing has its 14-byte Ethernet header.)
inline uint64_t source_mac(const PacketView& p) {
  uint64_t mac = 0;
  std::memcpy(&mac, p.data + 6, 6);
  return mac;
}

// An ARP frame or IPv6 neighbour discovery message claiming an address of infra.neighbours
// for another MAC than one listed for it: what would point the nodes' entry for their
// router at another host of the link (ARP or ND poisoning: the router's traffic redirected
// or black-holed). Claims: an ARP frame's sender address, by its Ethernet source and
// sender hardware address; a neighbour discovery message's source address, by its
// Ethernet source and source link-layer address option; an advertisement's target, by its
// Ethernet source and target link-layer address option. (A redirect's target link-layer
// address is another router's: not its sender's claim.) A zero Ethernet source is no claim:
// no host sends from it, and a replayed capture without Ethernet headers (raw IP) has it;
// the hardware addresses inside the message, which the nodes' caches learn, still are.
inline bool neighbour_impostor(const PolicySnapshot& s, const PacketView& p, const PacketMeta& m) {
  if (!s.guards_neighbours()) return false;
  const uint64_t src = source_mac(p);
  if (m.kind == L3Kind::kNonIp) {
    Arp4 a;
    if (!parse_arp4(p.data, p.len, m, a)) return false;
    uint64_t sha = 0;
    std::memcpy(&sha, p.data + m.l4_off + 8, 6);
    const Ip6 sender = mapped_v4(a.sender);
    return (src != 0 && s.neighbour_impostor(sender, src)) || s.neighbour_impostor(sender, sha);
  }
  if (m.kind != L3Kind::kIpv6 || !m.has_icmp || m.l4_proto != kProtoIcmp6 || m.icmp_type < 133 || m.icmp_type > 137)
    return false;
  const uint8_t* msg = p.data + m.l4_off;
  const uint32_t end = std::min(m.l4_len, p.len - m.l4_off);  // what of the message the first buffer holds
  const bool advert = m.icmp_type == 136;
  Ip6 target{};
  if (advert && end >= 24) std::memcpy(target.bytes.data(), msg + 8, 16);
  const bool source_listed = s.neighbour_listed(m.src_v6), target_listed = advert && s.neighbour_listed(target);
  if (!source_listed && !target_listed) return false;
  if (src != 0 && (s.neighbour_impostor(m.src_v6, src) || (target_listed && s.neighbour_impostor(target, src))))
    return true;
  // The options start after RS 8 bytes, RA 16, NS and NA 24 (their target), redirect 40.
  static constexpr uint32_t kFixed[] = {8, 16, 24, 24, 40};
  for (uint32_t at = kFixed[m.icmp_type - 133]; at + 8 <= end;) {
    const uint32_t len = msg[at + 1] * 8u;
    if (len == 0) break;  // hosts discard the whole message (RFC 4861, 4.6)
    uint64_t lla = 0;
    if (len == 8) std::memcpy(&lla, msg + at + 2, 6);
    if (len == 8 && msg[at] == 1 && s.neighbour_impostor(m.src_v6, lla)) return true;
    if (len == 8 && msg[at] == 2 && advert && s.neighbour_impostor(target, lla)) return true;
    at += len;
  }
  return false;
}

// DHCP. A client's message (`answer` false: IPv4 UDP 68 -> 67, a BOOTREQUEST; IPv6 UDP
// 546 -> 547, a client message) or a server's answer to one (true: 67 -> 68, a BOOTREPLY;
// 547 -> 546, ADVERTISE or REPLY), and the transaction it belongs to, as a 16-byte key:
// IPv4, the transaction ID with the client's hardware address (a client without an address
// yet is known by nothing else); IPv6, the transaction ID with the client's address (it
// speaks from its link-local address, and is answered there).
inline bool dhcp_transaction(const PacketView& p, const PacketMeta& m, bool answer, Ip6& key) {
  if (!dhcp_ports(m, answer) || m.non_first_fragment) return false;
  const bool v4 = m.kind == L3Kind::kIpv4;
  const uint8_t* d = p.data + m.l4_off + 8;
  const uint32_t avail = std::min(m.l4_len, p.len - m.l4_off);  // UDP header and payload, as far as `p` holds them
  if (avail < 8 + 4) return false;  // a DHCPv6 message's type and transaction ID
  key = Ip6{};
  if (v4) {
    if (avail < 8 + 34 || d[0] != (answer ? 2 : 1)) return false;  // op; chaddr ends at 34
    key.bytes[0] = 0xd4;
    std::memcpy(key.bytes.data() + 4, d + 4, 4);   // xid
    std::memcpy(key.bytes.data() + 8, d + 28, 6);  // chaddr (an Ethernet address)
    return true;
  }
  const uint8_t type = d[0];
  if (answer ? (type != 2 && type != 7) : (type == 2 || type == 7 || type == 10 || type > 11)) return false;
  key = answer ? m.dst_v6 : m.src_v6;
  key.bytes[0] ^= 0x66;
  for (int i = 1; i < 4; ++i) key.bytes[i] ^= d[i];  // the 3-byte transaction ID
  return true;
}

// Cheap test before neighbour_target: could the frame be a neighbour request or answer?
inline bool maybe_neighbour(const PacketMeta& m, bool answer) {
  return m.kind == L3Kind::kNonIp ? m.ethertype == 0x0806 : m.has_icmp && m.icmp_type == (answer ? 136 : 135);
}

}  // namespace stakegate::worker_detail

namespace stakegate {

// The lookups of one packet, made in the first stages of decide_stage (outside) and
// process_inside.
// (One record a packet, not an array a field: each stage's loop then steps one pointer.)
struct Worker::Lookup {
  uint64_t hash;
  SessionKey key;
  unsigned ways;  // the session set's candidate ways (outside: when `scanned`; inside: always)
  uint32_t slot;  // outside: the source's slot, or kNoSource
  bool keyed;
  bool scanned;  // `ways` holds them (stage 2), else stage 3 scans the set
  bool lazy;  // a packet to a public port: its session is looked up only for a staked sender
  bool fast;  // on the fast path's line so far: `t` holds its fields
  L4v4 t;
};

}  // namespace stakegate
