#pragma once
// One worker's share of the data path: parse -> classify -> police for a burst of frames
// from the outside, and session tracking for frames from the inside. A Worker owns all
// state it writes (node meters, sessions, unregistered buckets, budgets, counters); it
// reads a PolicySnapshot that nobody writes. No allocation, lock, exception, log line or
// system call happens per packet, and time is passed in.
#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "stakegate/base/huge_alloc.h"
#include "stakegate/base/verdict.h"
#include "stakegate/pipeline/peer_score.h"
#include "stakegate/pipeline/sample_ring.h"
#include "stakegate/pipeline/sessions.h"
#include "stakegate/pipeline/solicitations.h"
#include "stakegate/pipeline/steering.h"
#include "stakegate/policy/meter.h"
#include "stakegate/policy/snapshot.h"

namespace stakegate {

// A frame as the worker sees it: `len` contiguous bytes at `data`. A frame in chained
// buffers (a multi-segment mbuf: net_pcap's long frames, a NIC's scattered RX) has only its
// first buffer there and its whole length in `wire_len`; it is classified by the headers in
// that buffer and metered and counted by its whole length.
struct PacketView {
  const uint8_t* data;
  uint32_t len;
  uint32_t wire_len = 0;  // bytes on the wire when more than `len`
};
inline uint32_t wire_length(const PacketView& p) { return p.wire_len > p.len ? p.wire_len : p.len; }
// Parses the frame `p` shows (parse_frame, or parse_segmented_frame for a chained one).
inline void parse_view(const PacketView& p, PacketMeta& m) {
  if (p.wire_len > p.len) [[unlikely]]
    parse_segmented_frame(p.data, p.len, p.wire_len, m);
  else
    parse_frame(p.data, p.len, m);
}

// Everything a packet from a known source on a verified connection touches, in one cache
// line written only by its worker: the packet meter and its profile (a worker-local copy
// of the source's policy, taken at bind time, so the snapshot's line need not be read per
// packet) and the common counters.
struct alignas(64) NodeMeter {
  Meter pkt;
  MeterProfile pkt_profile;  // this worker's share; scaled down while graylisted
  uint64_t passed;             // on verified connections
  uint64_t dropped_over_rate;  // on verified connections
  uint16_t port_set;
  TrafficClass cls;
  uint8_t flags;       // SourcePolicy flags, plus kGraylisted (this worker's own)
  uint32_t epoch;      // SourcePolicy::epoch this meter was started for
};
static_assert(sizeof(NodeMeter) == 64, "a node's hot state is one cache line");

// What the request channel, byte limits, rare verdicts and peer scoring need: kept out of
// the hot line.
struct NodeMeterCold {
  MeterProfile bps_profile;
  Meter bytes;
  MeterProfile request_profile;  // traffic off verified connections: anything a spoofer could send
  Meter request;                 // ... arriving with another hop limit than `hop`, or before any
  Meter request_hop;             // ... arriving with the hop limit `hop` (the same profile)
  uint64_t passed_request;       // passed through the request channel
  uint64_t dropped_request;      // request_over_rate
  uint64_t passed_session;       // UDP and ICMP replies on sessions the cluster opened: the sessions budget
  uint64_t dropped_session;      // session_over_rate
  uint64_t dropped_blocklisted;
  uint64_t dropped_ejected;
  uint64_t dropped_port_denied;
  PeerScore peer;
  // The TTL (IPv4) or hop limit (IPv6) of the packet that last verified a connection from
  // this address (0: none yet): what the node's own packets arrive with, as far as the
  // gateway knows. Only a verifying packet sets it, which a spoofer cannot send.
  uint8_t hop;
};
static_assert(sizeof(NodeMeterCold) == 240, "docs/configuration.md (limits.sources) gives a slot's memory: update it");

// (tests/support/worker_fixture.h compares two workers' counters field by field: a new
// counter goes there too.)
struct alignas(64) WorkerCounters {
  uint64_t packets[kDirectionCount][kTrafficClassCount][kVerdictCount];
  uint64_t bytes[kDirectionCount][kTrafficClassCount][kVerdictCount];
  uint64_t unregistered_evictions;   // an active per-source bucket was recycled (table full)
  uint64_t non_first_fragments;
  uint64_t sessions_created;
  uint64_t sessions_evicted;         // a live session recycled because its set was full
  uint64_t sessions_verified;        // TCP connections whose remote proved it received the cluster's packets
  uint64_t unregistered_proven;      // new unregistered sources given their full burst for completing a TCP handshake
  uint64_t unregistered_reserve;     // packets of unregistered clients' verified connections passed on a reserve (pool's or source's)
  uint64_t request_hop_passed;       // request channel packets passed on the bucket of the node's own hop limit
  uint64_t refusals_passed;          // staked addresses' RSTs refusing a SYN-ACK to a SYN they never sent (no request channel)
  uint64_t fast_path;                // outside packets the fast path decided (Worker::decide_fast)
  uint64_t fast_path_inside;         // inside packets that updated their session on the fast path
  uint64_t neighbour_answers;        // ARP replies and neighbour advertisements passed as answers to the cluster's own requests
  uint64_t listed_neighbour_passes;  // frames of infra.neighbours passed on their own budgets
  uint64_t routing_passes;           // routing protocol packets of infra.neighbours passed (infra.routing)
  uint64_t routing_over_rate;        // ... dropped over their neighbour's routing budget (infra_over_rate)
  uint64_t handoffs;                 // ICMP errors handed to the worker holding the session they quote
  uint64_t fragments_held;           // non-first fragments held for their datagram's first fragment (Worker::kHold)
  uint64_t dhcp_answers;             // DHCP answers passed to the cluster's own DHCP transactions
  uint64_t spoofed_internal;         // spoofed: from a cluster address to a cluster address (forged, or routed between nodes)
  uint64_t neighbour_impostors;      // spoofed: ARP/ND claiming an address of infra.neighbours for another MAC
  uint64_t inside_foreign;           // inside IP packets from a source outside cluster.prefixes: they open no session
  uint64_t inside_foreign_v4;        // the last such IPv4 source, | 1 << 32 (0: none); one word, never torn
  uint64_t inside_foreign_v6;        // the last such IPv6 source's /64, its first eight bytes big-endian (0: none)
};

class Worker {
 public:
  struct Sizes {
    unsigned unregistered = 65536;  // per-source buckets, rounded up to a power of two, in sets of 4
    size_t sources = 0;             // meter slots (binding never allocates)
    size_t sessions = 262144;       // session entries
    size_t fragments = 4096;        // fragments of unregistered senders in flight
  };
  explicit Worker(const Sizes& sizes, uint64_t hash_seed = 0x5eed);
  Worker(unsigned unregistered_table_size, size_t source_capacity, uint64_t hash_seed = 0x5eed)
      : Worker(Sizes{unregistered_table_size, source_capacity}, hash_seed) {}

  // Adopts a snapshot (which must outlive its use, and hold at most source_capacity slots):
  // copies each changed source's policy into its meter; a slot given to another source
  // (new epoch) restarts with a full bucket and zero counters. Called by the worker itself
  // between bursts, so no meter ever has two writers.
  void bind(const PolicySnapshot* snap) noexcept;

  // Decides every frame from the outside port. Returns n; out[i] is frame i's verdict, or
  // kHandoff (with steering on): the frame belongs to worker handoff_target(i), which
  // decides it with process_handoffs; nothing is counted for it here.
  uint16_t process_outside(const PacketView* pkts, uint16_t n, uint64_t now_ns, Verdict* out) noexcept;
  // Frames another worker handed over: decided as process_outside does, never handed on.
  uint16_t process_handoffs(const PacketView* pkts, uint16_t n, uint64_t now_ns, Verdict* out) noexcept {
    handed_in_ = true;
    process_outside(pkts, n, now_ns, out);
    handed_in_ = false;
    return n;
  }
  // Not a verdict: the frame goes to another worker (an ICMP error quoting a session that
  // worker holds; see Steering). Only frames at index < kHandoffSlots of a call are.
  static constexpr Verdict kHandoff = static_cast<Verdict>(0xff);
  static constexpr unsigned kHandoffSlots = 256;
  uint16_t handoff_target(uint16_t i) const noexcept { return handoff_to_[i]; }
  // Not a verdict either (with set_holding on): a non-first fragment from a sender that is
  // not a node, which arrived before its datagram's first fragment (reordered on the way,
  // e.g. by a link aggregate or ECMP that hashes the first fragment's ports and the rest
  // without). It has no port to judge, and would be `unregistered`; instead the caller
  // keeps the frame and gives every frame it keeps back to process_held, in the order they
  // were held, once held_due(): a first fragment of one of them passed, or the oldest has
  // waited kHoldNs. Each then follows its first fragment as an in-order fragment does, or
  // is held on until its own kHoldNs are up and is then `unregistered`. At most kHoldMax
  // are held; beyond them a frame is decided at once. Nothing is counted while it is held.
  static constexpr Verdict kHold = static_cast<Verdict>(0xfe);
  static constexpr uint16_t kHoldMax = 32;
  static constexpr uint64_t kHoldNs = 50'000'000;
  void set_holding(bool on) noexcept { holding_ = on; }
  uint16_t held() const noexcept { return held_n_; }
  bool held_due(uint64_t now_ns) const noexcept { return held_n_ && (held_ready_ || now_ns >= held_until_[0]); }
  // `pkts`: the held() frames, in the order they were held.
  void process_held(const PacketView* pkts, uint16_t n, uint64_t now_ns, Verdict* out) noexcept;
  // Which worker holds which remote's sessions (several workers with RSS: DataPlane). Off
  // by default: every frame is decided where it arrives.
  void set_steering(const Steering& s) noexcept { steering_ = s; }
  // Frames from the inside port (they always pass): each TCP, UDP or ICMP echo packet
  // from a protected address opens or refreshes its session.
  void process_inside(const PacketView* pkts, uint16_t n, uint64_t now_ns) noexcept;

  // The fast paths (decide_fast for a staked node's segments on its verified connections;
  // process_inside's for the cluster's packets on live sessions); on by default. Off,
  // every packet takes the full path: the differential test compares the two.
  void set_fast_path(bool on) noexcept { fast_path_ = on; }

  // The addresses the cluster asked for, whose answers pass outside the infra budget: the
  // worker's own table, or (several workers: DataPlane) one all of them share, since a
  // request and its answer may reach different workers. Set before the worker runs; `t`
  // must outlive it.
  void share_solicitations(SolicitationTable& t) noexcept { solicitations_ = &t; }
  // The same for the cluster's DHCP transactions (their answers pass as the neighbours').
  void share_dhcp(SolicitationTable& t) noexcept { dhcp_ = &t; }
  // A DHCP transaction's answers: a few (offers of two servers, their acknowledgements)
  // within 10 s (a server may first ping the address it will offer, dnsmasq for up to 3 s).
  static constexpr uint32_t kDhcpAnswers = 4;
  static constexpr uint64_t kDhcpWithinNs = 10'000'000'000ull;

  const WorkerCounters& counters() const { return counters_; }
  const NodeMeter& meter(uint32_t slot) const { return meters_[slot]; }
  const NodeMeterCold& meter_cold(uint32_t slot) const { return cold_[slot]; }
  const PolicySnapshot& snapshot() const { return *snap_; }
  const SessionTable& sessions() const { return sessions_; }
  // Evidence samples and graylist events, for a non-worker thread to drain. Events have a
  // ring of their own, so a busy case's samples never crowd out a graylist entry.
  SampleRing& samples() { return samples_; }
  const SampleRing& samples() const { return samples_; }
  SampleRing& events() { return events_; }
  const SampleRing& events() const { return events_; }
  // The worker's own clock, as it last saw it (process_outside, or tick() from an idle
  // loop). Readers on other threads judge this worker's state by it: CPUs' clocks need
  // not agree (TSCs of virtual CPUs drift apart). Once a session tick (16.8 ms) it also
  // sweeps a few sets of its tables (sweep()). The lcore loop calls it between bursts.
  void tick(uint64_t now_ns) noexcept {
    clock_ns_.store(now_ns, std::memory_order_relaxed);
    if (session_tick(now_ns) != swept_tick_) [[unlikely]] sweep(now_ns);
  }
  // Sets of the session table (and entries of the fragment and solicitation tables) swept
  // each tick: at 60 ticks a second, a 64M-session table's 8M sets in under 10 hours.
  static constexpr unsigned kSweepSets = 4;
  uint64_t clock_ns() const noexcept { return clock_ns_.load(std::memory_order_relaxed); }
  size_t source_capacity() const { return meters_.size(); }

  static constexpr unsigned kWays = 4;
  // Packets taken through the stages together (see decide_stage), so that each stage's
  // misses overlap. Measured (docs/performance.md): 16 beat 32 and 8 on the outside path,
  // which prefetches two lines per packet per stage; the inside path, one line, keeps 32.
  static constexpr uint16_t kOutsideStage = 16;
  static constexpr uint16_t kInsideStage = 32;

 private:
  struct UnregisteredEntry {
    // 0: empty. Else the source's tag (bit 0 set, bit 1 clear), with bit 1 (kProven) set
    // once the source proved its address (completed a TCP handshake with the cluster) and
    // was given its full burst for it. A flag of its own would make an entry 32 bytes, and
    // the default table 2 MiB a worker, past a 2 MiB L2 (docs/performance.md).
    uint64_t tag;
    Meter meter;
  };
  static constexpr uint64_t kProven = 2;
  struct FragmentEntry {
    uint64_t tag;       // 0: empty
    uint32_t deadline;  // tick
    uint8_t channel;    // how its first fragment passed (Channel)
  };
  enum Channel : uint8_t { kNoChannel = 0, kSessionChannel, kUnregisteredChannel };

  // What the outside packet's session lookup found (decide_stage's second stage).
  struct Lookup;

  void decide_stage(const PacketView* pkts, uint16_t n, uint64_t now_ns, Verdict* out) noexcept;
  [[gnu::noinline, gnu::cold]] void note_spoofed(const struct PacketMeta& m) noexcept;
  // Empties what has expired in the next few sets and entries of the session, fragment,
  // solicitation and DHCP tables: deadlines are 32-bit ticks, and one left behind for 2^31
  // of them (about 417 days of uptime) would otherwise look live again.
  [[gnu::noinline]] void sweep(uint64_t now_ns) noexcept;
  [[gnu::noinline]] bool hand_off(const struct PacketMeta& m, const Lookup& look, Verdict* v) noexcept;
  [[gnu::noinline]] bool hold_fragment(uint64_t fragment_tag, uint64_t now_ns) noexcept;
  void note_first_fragment(uint64_t fragment_tag, uint32_t now, Channel channel) noexcept;
  Verdict decide_node(uint32_t slot, const struct PacketMeta& m, Session* s, const PacketView& p, uint64_t now_ns,
                      TrafficClass& cls);
  bool decide_fast(const Lookup& look, const PacketView& p, uint64_t now_ns, uint32_t now, Verdict& v,
                   TrafficClass& cls);
  Verdict decide_unknown(const struct PacketMeta& m, Session* s, uint64_t tag, const PacketView& p, uint64_t now_ns,
                         TrafficClass& cls);
  Verdict police_verified(uint32_t slot, uint32_t len, uint64_t now_ns);
  Verdict police_request(uint32_t slot, uint8_t ttl, uint64_t now_ns);
  Verdict police_unregistered(uint64_t tag, uint32_t len, uint64_t now_ns);
  bool take_unregistered(Meter& source, uint32_t len, bool reserves);
  [[gnu::noinline]] Verdict police_connection(uint64_t tag, const struct PacketMeta& m, const PacketView& p,
                                              uint64_t now_ns) noexcept;
  Verdict police_sessions(uint32_t len, uint64_t now_ns);
  bool take_infra(uint64_t now_ns);
  Verdict neighbour_verdict(const PacketView& p, const struct PacketMeta& m, uint64_t now_ns) noexcept;
  bool decide_infra(const PacketView& p, const struct PacketMeta& m, const Session* s, uint64_t now_ns, Verdict& v,
                    TrafficClass& cls) noexcept;
  bool router_message_allowed(const PacketView& p, const struct PacketMeta& m) const noexcept;
  int routing_source(const PacketView& p, const struct PacketMeta& m) const noexcept;
  Verdict pass_refusal(Session* s, uint64_t now_ns) noexcept;
  Verdict routing_verdict(int neighbour, uint64_t now_ns) noexcept;
  bool take_icmp_error(uint64_t now_ns);
  void note_solicitation(const PacketView& p, const struct PacketMeta& m, uint32_t now) noexcept;
  void note_dhcp(const PacketView& p, const struct PacketMeta* parsed, uint32_t now) noexcept;
  void note_dhcp_fast(const PacketView& p, const L4v4& t, uint32_t now) noexcept;
  void note_unkeyed_fast(const PacketView& p, const L4v4& t, uint32_t now) noexcept;
  void note_unkeyed(const PacketView& p, const struct PacketMeta& m, uint32_t now) noexcept;
  [[gnu::noinline]] bool dhcp_answer(const PacketView& p, const struct PacketMeta& m, uint32_t now) noexcept;
  [[gnu::noinline, gnu::cold]] Verdict igmp_verdict(const PacketView& p, const struct PacketMeta& m, uint64_t now_ns,
                                                    TrafficClass& cls) noexcept;
  bool remote_on_session(Session* s, const struct PacketMeta& m, const PacketView& p, uint64_t now_ns,
                         NodeMeterCold* node = nullptr);
  void on_source_drop(uint32_t slot, Verdict v, bool attributable, const PacketView& p, uint64_t now_ns) noexcept;
  void check_recovery(uint32_t slot, uint64_t now_ns) noexcept;
  void set_graylisted(uint32_t slot, bool on, uint64_t now_ns) noexcept;
  void set_rates(uint32_t slot, const SourcePolicy& s, double factor, const ScoreParams& sp) noexcept;
  void push_event(uint8_t kind, uint32_t slot, uint64_t now_ns) noexcept;
  bool inside_key(const struct PacketMeta& m, SessionKey& k) const noexcept;
  void inside_packet(const PacketView& p, const struct PacketMeta& m, const Lookup& look, uint64_t now_ns) noexcept;
  void inside_update(const Lookup& look, uint8_t proto, bool has_port, uint16_t sport, uint8_t flags, uint32_t seq,
                     uint32_t ack, uint16_t win, uint32_t seq_len, int wscale, uint32_t now) noexcept;
  FragmentEntry* fragment_slot(uint64_t tag) noexcept { return &fragments_[(tag >> 40) & fragment_mask_]; }
  uint64_t fragment_tag(const struct PacketMeta& m) const noexcept;

  void start_meter(uint32_t slot, const SourcePolicy& s) noexcept;
  // The set of an unregistered source. Tags are forced odd (0 marks an empty way) with bit
  // 1 clear (kProven), so the set comes from the high half of the tag, never from those.
  UnregisteredEntry* unregistered_set(uint64_t tag) noexcept {
    return &unregistered_[((tag >> 32) & unregistered_mask_) * kWays];
  }
  static UnregisteredEntry* find_unregistered(UnregisteredEntry* set, uint64_t tag) noexcept {
    for (unsigned w = 0; w < kWays; ++w)
      if ((set[w].tag & ~kProven) == tag) return &set[w];
    return nullptr;
  }
  static constexpr uint32_t kUnstarted = UINT32_MAX;

  const PolicySnapshot* snap_ = nullptr;
  uint64_t bound_generation_ = 0;  // snap_'s generation, kept here: snap_ may be reclaimed once replaced
  HugeVector<NodeMeter> meters_;
  HugeVector<NodeMeterCold> cold_;
  HugeVector<UnregisteredEntry> unregistered_;
  uint64_t unregistered_mask_ = 0;  // set count - 1
  uint64_t seed_;
  bool fast_path_ = true;
  Meter pool_pkts_, pool_bytes_;          // the unregistered pool
  Meter sessions_pkts_, sessions_bytes_;  // the sessions budget
  Meter infra_;        // neighbour traffic: ARP, neighbour discovery, listed EtherTypes
  Meter icmp_errors_;  // ICMP errors quoting a live session
  std::unique_ptr<SolicitationTable> own_solicitations_ = std::make_unique<SolicitationTable>();
  SolicitationTable* solicitations_ = own_solicitations_.get();
  std::unique_ptr<SolicitationTable> own_dhcp_ =
      std::make_unique<SolicitationTable>(0xd4c9, kDhcpAnswers, kDhcpWithinNs);
  SolicitationTable* dhcp_ = own_dhcp_.get();
  // infra.neighbours' own budgets (the infra profile each), by their index in the snapshot;
  // a meter restarts full when its MAC changes.
  std::array<Meter, PolicySnapshot::kMaxNeighbours> neighbour_meters_{};
  std::array<Meter, PolicySnapshot::kMaxNeighbours> routing_meters_{};  // their routing protocols' (routing_pps)
  std::array<uint64_t, PolicySnapshot::kMaxNeighbours> bound_neighbours_{};
  SessionTable sessions_;
  HugeVector<FragmentEntry> fragments_;
  uint64_t fragment_mask_ = 0;
  uint32_t swept_tick_ = 0;    // the session tick of the last sweep()
  uint64_t sweep_next_ = 0;    // the fragment and solicitation entries sweep() looks at next
  Steering steering_;
  bool handed_in_ = false;  // deciding frames another worker handed over
  const PacketView* in_origin_ = nullptr;  // process_outside's `pkts` and `out`: handoff_to_ is indexed as them
  const Verdict* out_origin_ = nullptr;
  std::array<uint16_t, kHandoffSlots> handoff_to_{};
  bool holding_ = false;
  bool held_ready_ = false;      // a first fragment of a held frame passed
  uint16_t held_n_ = 0;
  uint64_t redecide_until_ = 0;  // process_held: the frame's own time (0: deciding a new frame)
  std::array<uint64_t, kHoldMax> held_tag_{};    // the held frames' fragment tags, in the order held
  std::array<uint64_t, kHoldMax> held_until_{};  // ... and when each is decided for good
  WorkerCounters counters_{};
  SampleRing samples_{1024};
  SampleRing events_{256};
  alignas(64) std::atomic<uint64_t> clock_ns_{0};
};

}  // namespace stakegate
