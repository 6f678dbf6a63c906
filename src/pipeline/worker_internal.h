#pragma once
// What the worker's translation units share (worker.cc: the outside path and the meters;
// worker_inside.cc: the inside path; worker_state.cc: binding snapshots, scores, events).
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

inline bool in_cluster(const PolicySnapshot& s, const PacketMeta& m, bool source) {
  if (is_v4(m)) return s.cluster().contains_v4(source ? m.src_v4 : m.dst_v4);
  return s.cluster().contains_v6(source ? m.src_v6 : m.dst_v6);
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
