#pragma once
// PolicySnapshot: everything a worker needs to decide a verdict, as plain data. The
// control plane builds one (policy/snapshot_builder.h) and never writes it afterwards;
// workers only read it. Rates in it are already divided among the workers that share a
// source's traffic (see SnapshotBuilder).
#include <array>
#include <cstdint>
#include <cstring>
#include <vector>

#include "stakegate/base/verdict.h"
#include "stakegate/policy/addr_map.h"
#include "stakegate/policy/cidr_matcher.h"
#include "stakegate/policy/meter.h"

namespace stakegate {

using PortBitmap = std::array<uint64_t, 1024>;  // one bit per port

inline bool port_in(const PortBitmap& b, uint16_t port) { return (b[port >> 6] >> (port & 63)) & 1; }

// The protected prefixes (cluster.prefixes), few (at most 64): masked compares in a line or two.
class ClusterPrefixes {
 public:
  void add(const Cidr& c);
  bool empty() const { return v4_.empty() && v6_.empty(); }
  bool contains_v4(uint32_t a) const {
    for (const V4& p : v4_)
      if ((a & p.mask) == p.base) return true;
    return false;
  }
  bool contains_v6(const Ip6& a) const {
    uint64_t hi, lo;
    std::memcpy(&hi, a.bytes.data(), 8);
    std::memcpy(&lo, a.bytes.data() + 8, 8);
    for (const V6& p : v6_)
      if ((hi & p.mask_hi) == p.hi && (lo & p.mask_lo) == p.lo) return true;
    return false;
  }

 private:
  struct V4 {
    uint32_t base, mask;
  };
  struct V6 {
    uint64_t hi, lo, mask_hi, mask_lo;  // in memory order
  };
  std::vector<V4> v4_;
  std::vector<V6> v6_;
};

// Session time in ticks of 2^24 ns (16.8 ms): expiries fit 32 bits for 2.2 years and are
// compared modulo 2^32.
inline constexpr unsigned kTickShift = 24;
inline uint32_t session_tick(uint64_t now_ns) { return static_cast<uint32_t>(now_ns >> kTickShift); }
inline uint32_t ticks_of_seconds(double s) { return static_cast<uint32_t>(s * 1e9 / double(1ull << kTickShift)) + 1; }
inline bool tick_before(uint32_t a, uint32_t b) { return static_cast<int32_t>(a - b) < 0; }

// Session timeouts, in ticks (pipeline/sessions.h).
struct SessionTimeouts {
  uint32_t tcp_syn = 0, tcp_established = 0, tcp_closing = 0, tcp_closed = 0, udp = 0, icmp = 0;
};

struct SourcePolicy {
  // kAbsent: a slot no source of this table uses (its meter is kept for when it returns).
  // kSample: an operator asked for evidence: its dropped packets are sampled.
  // kGraylisted is never in a snapshot: a worker sets it on its own meter.
  // kNotOutside: an address of this source is one no outside packet may carry (inside
  // cluster.prefixes, or a martian): its packets from the outside are spoofed.
  static constexpr uint8_t kBlocked = 1, kEjected = 2, kHasBytes = 4, kAbsent = 8, kSample = 16, kGraylisted = 32,
                           kNotOutside = 64;
  static constexpr uint16_t kAllPorts = UINT16_MAX;
  MeterProfile pps;
  MeterProfile bps;      // unlimited when capacity.bps is not set
  MeterProfile request;  // the request channel: traffic off verified connections
  uint16_t port_set = kAllPorts;
  TrafficClass cls = TrafficClass::kNone;
  uint8_t flags = 0;
  uint32_t epoch = 0;    // changes when the slot is given to another source: its meter restarts
  friend bool operator==(const SourcePolicy&, const SourcePolicy&) = default;
};

// Peer scoring as a worker applies it: thresholds are divided among the workers like
// rates (each sees its share of a source's drops), penalties are per dropped packet.
struct ScoreParams {
  bool enabled = false;
  double graylist = 0, recover = 0, floor = 0;  // per worker
  double penalty[kVerdictCount] = {};
  double penalty_factor = 1;
  double half_life_ns = 0;
  uint32_t evidence_samples = 0;  // dropped packets sampled per case (0: none)
  uint16_t snaplen = 0;
  bool evidence_on_graylist = false;
};

class PolicySnapshot {
 public:
  static constexpr uint32_t kNoSource = V4Map::kEmpty;

  uint32_t find_v4(uint32_t a) const { return v4_.find(a); }
  uint32_t find_v6(const Ip6& a) const { return v6_.find(a); }
  void prefetch_v4(uint32_t a) const { v4_.prefetch(a); }
  void prefetch_v6(const Ip6& a) const { v6_.prefetch(a); }

  const SourcePolicy& source(uint32_t slot) const { return sources_[slot]; }
  size_t source_count() const { return sources_.size(); }
  bool port_allowed(uint16_t port_set, uint16_t port) const {
    return port_set == SourcePolicy::kAllPorts || port_in(port_sets_[port_set], port);
  }
  bool unregistered_port(uint16_t port) const { return port_in(unregistered_ports_, port); }
  // A port some role or the public may reach: a cluster packet from it answers a session
  // the cluster accepted (else the cluster opened the session).
  bool service_port(uint16_t port) const { return port_in(service_ports_, port); }
  const CidrMatcher& blocklist() const { return blocklist_; }
  const ClusterPrefixes& cluster() const { return cluster_; }
  // infra.neighbours, each MAC's 6 bytes in a word as a frame holds them (memcpy), 0 past
  // the end; index of `mac` among them, or -1.
  static constexpr unsigned kMaxNeighbours = 8;
  const std::array<uint64_t, kMaxNeighbours>& neighbours() const { return neighbours_; }
  int neighbour_index(uint64_t mac) const {
    for (unsigned i = 0; i < kMaxNeighbours && neighbours_[i] != 0; ++i)
      if (neighbours_[i] == mac) return static_cast<int>(i);
    return -1;
  }
  // infra.neighbours' addresses: whether a frame claiming `addr` (IPv4 mapped) with `mac`
  // is an impostor: the address is listed, and not under that MAC.
  bool neighbour_impostor(const Ip6& addr, uint64_t mac) const {
    bool listed = false;
    for (const GuardedAddress& g : guarded_) {
      if (g.address != addr) continue;
      if (g.mac == mac) return false;
      listed = true;
    }
    return listed;
  }
  bool neighbour_listed(const Ip6& addr) const {
    for (const GuardedAddress& g : guarded_)
      if (g.address == addr) return true;
    return false;
  }
  bool guards_neighbours() const { return !guarded_.empty(); }
  // Whether `addr` (IPv4 mapped) is listed under `mac` in infra.neighbours.
  bool neighbour_owns(const Ip6& addr, uint64_t mac) const {
    for (const GuardedAddress& g : guarded_)
      if (g.address == addr && g.mac == mac) return true;
    return false;
  }
  bool infra_ethertype(uint16_t type) const {
    if (type == 0x0806) return true;  // ARP
    for (uint16_t t : ethertypes_)
      if (t == type) return true;
    return false;
  }

  MeterProfile unregistered_pool_pps, unregistered_pool_bps, unregistered_source_pps;
  // The pool's reserve (nano-units, packets and bytes), for packets on connections the
  // cluster accepted from unregistered clients and they verified: the pool meters hold the
  // configured burst plus the reserve, and any other packet needs a token above it. From
  // idle, everything else still gets the configured burst, then the configured rate.
  uint64_t unregistered_reserve = 0, unregistered_reserve_bytes = 0;
  // The same for each source's bucket: a forger of one client's address cannot empty it for
  // the client's verified connections. A new source starts with the reserve and one packet.
  uint64_t unregistered_source_reserve = 0;
  MeterProfile sessions_pps, sessions_bps;  // bps unlimited (rate 0) without capacity.bps
  MeterProfile infra_pps;        // ARP, neighbour discovery, listed EtherTypes
  MeterProfile icmp_errors_pps;  // ICMP errors quoting a live session
  MeterProfile routing_pps;      // each neighbour's routing protocols (infra.routing_pps)
  bool icmp_echo = false;        // unregistered.icmp_echo: echo requests are a public service
  bool ra_guard = false;         // infra.ra_guard: router advertisements and redirects only from neighbours()
  uint8_t routing = 0;           // infra.routing: base/routing.h bits
  bool monitor = false;          // mode: monitor: frames are forwarded whatever their verdict
  SessionTimeouts timeouts;
  ScoreParams score;
  unsigned workers = 1;       // how many workers share one source's traffic
  unsigned pool_workers = 1;  // how many share the pools (every worker)
  uint64_t generation = 1;
  uint64_t base_generation = 0;          // the generation `changed_slots` is relative to
  std::vector<uint32_t> changed_slots;   // slots whose SourcePolicy differs from base_generation's

 private:
  friend class SnapshotBuilder;
  std::vector<SourcePolicy> sources_;
  V4Map v4_;
  V6Map v6_;
  std::vector<PortBitmap> port_sets_;
  PortBitmap unregistered_ports_{};
  PortBitmap service_ports_{};
  CidrMatcher blocklist_;
  ClusterPrefixes cluster_;
  std::vector<uint16_t> ethertypes_;
  std::array<uint64_t, kMaxNeighbours> neighbours_{};
  struct GuardedAddress {
    Ip6 address;
    uint64_t mac;  // as neighbours_
  };
  std::vector<GuardedAddress> guarded_;
};

}  // namespace stakegate
