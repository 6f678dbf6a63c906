#pragma once
// Sessions of the protected cluster, as one worker sees them: a fixed-size table keyed
// by the connection's 5-tuple from the cluster's side (ICMP echo by identifier), created
// or refreshed by packets from the inside and looked up in reverse by packets from the
// outside. For TCP it also keeps what the gateway saw of the cluster's sequence space, so
// that a remote can be shown to have received the cluster's packets (verified: a sender
// off the path cannot acknowledge them) and later packets checked against the windows.
//
// 8-way sets. A set's tags (signature and expiry, 8 bytes a way) are one cache line; a
// way's entry (full key, TCP state) is a cache line of its own, read only when its
// signature matches (the inside path prefetches the key's home way early, below). Eight
// ways keep live sessions from evicting each other until the table is well over a
// quarter full (4 ways lose about 0.4 % of them at a quarter).
// No allocation after construction; time is passed in.
#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "stakegate/base/address.h"
#include "stakegate/base/huge_alloc.h"
#include "stakegate/base/prefetch.h"
#include "stakegate/net/parse.h"
#include "stakegate/policy/addr_map.h"
#include "stakegate/policy/snapshot.h"

namespace stakegate {

// The 5-tuple from the cluster's side: `local` is the protected address.
struct SessionKey {
  Ip6 local, remote;              // IPv4 as ::ffff:a.b.c.d
  uint16_t lport = 0, rport = 0;  // ICMP echo: lport = identifier, rport = 0
  uint8_t proto = 0;
  // The 37 bytes of the key, which hold no padding: this runs for every packet that finds
  // a session, and the compiler makes it a few wide loads.
  friend bool operator==(const SessionKey& a, const SessionKey& b) {
    return __builtin_memcmp(&a, &b, kBytes) == 0;
  }
  static constexpr size_t kBytes = 37;
};

// Whether `a` is an IPv4 address in that form (::ffff:a.b.c.d), and the address (host order).
inline bool is_mapped_v4(const Ip6& a) {
  static constexpr uint8_t kPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  return std::memcmp(a.bytes.data(), kPrefix, 12) == 0;
}
inline uint32_t unmapped_v4(const Ip6& a) {
  return uint32_t{a.bytes[12]} << 24 | uint32_t{a.bytes[13]} << 16 | uint32_t{a.bytes[14]} << 8 | a.bytes[15];
}

// (tests/support/worker_fixture.h compares two tables' entries field by field: a new
// field goes there too.)
struct alignas(64) Session {
  enum State : uint8_t { kTcpSynSent = 1, kTcpSynRcvd, kTcpEstablished, kTcpClosing, kTcpClosed, kUdp, kIcmp };
  static constexpr uint8_t kOpened = 1;    // the cluster initiated it (else: it accepted it)
  static constexpr uint8_t kVerified = 2;  // a remote packet acknowledged sequence space the cluster sent
  static constexpr uint8_t kAckSeen = 4;   // cl_ack holds an acknowledgement the cluster sent
  // Which ends sent their FIN: with one, the connection is half-closed (kTcpClosing: the
  // other end may still send, and may take its time); with both, it is over (kTcpClosed).
  static constexpr uint8_t kFinCluster = 8;
  static constexpr uint8_t kFinRemote = 16;
  SessionKey key;
  uint8_t state = 0;
  uint8_t flags = 0;
  uint8_t wscale = 0;     // low nibble: the cluster's window shift, high nibble: the remote's
  uint32_t seq0 = 0;      // the cluster's first sequence number the gateway saw
  uint32_t snd_max = 0;   // the cluster's highest sequence number sent, plus one
  uint32_t cl_ack = 0;    // the cluster's latest acknowledgement: the next remote byte it expects
  uint16_t cl_win = 0, rm_win = 0;  // advertised windows as sent (unscaled)
  uint32_t rm_ack = 0;    // the remote's highest acknowledgement on the verified connection
};
static_assert(offsetof(SessionKey, proto) + 1 == SessionKey::kBytes && offsetof(SessionKey, remote) == 16 &&
                  offsetof(SessionKey, lport) == 32 && offsetof(SessionKey, rport) == 34,
              "the key's bytes up to proto hold no padding");
static_assert(sizeof(Session) == 64, "a session is one cache line");
static_assert(offsetof(Session, key) == 0, "find_in_v4 reads the key as the entry's first words");

class SessionTable {
 public:
  static constexpr unsigned kWays = 8;
  static constexpr uint32_t kKept = 2;  // verified, or opened by the cluster: evicted last
  // Signatures apart from deadlines, so that each is two vector loads.
  struct alignas(64) TagSet {
    uint32_t sig[kWays];       // 0: empty; bit 1: kept (above), not part of the signature
    uint32_t deadline[kWays];  // tick after which the session is dead
  };
  static_assert(sizeof(TagSet) == 64, "a set's tags are one cache line");

  SessionTable(size_t capacity, uint64_t seed) : seed_(mix64(seed) | 1) {
    const size_t sets = std::bit_ceil(std::max<size_t>(1, (capacity + kWays - 1) / kWays));
    tags_.assign(sets, TagSet{});
    entries_.resize(sets * kWays);
    mask_ = sets - 1;
  }

  // An IPv4 key (::ffff:a.b.c.d at both ends) hashes as hash_v4 of its addresses and
  // ports, so that the fast paths, which build no SessionKey, find what the full paths
  // inserted (tests/unit/session_test.cc checks both forms agree).
  uint64_t hash(const SessionKey& k) const {
    uint64_t a, b, c, d;
    std::memcpy(&a, k.local.bytes.data(), 8);
    std::memcpy(&b, k.local.bytes.data() + 8, 8);
    std::memcpy(&c, k.remote.bytes.data(), 8);
    std::memcpy(&d, k.remote.bytes.data() + 8, 8);
    constexpr uint64_t kMappedMark = 0xffff0000;  // bytes 8-11 of a mapped address, little-endian
    if (((a | c) == 0) & (static_cast<uint32_t>(b) == kMappedMark) & (static_cast<uint32_t>(d) == kMappedMark)) [[likely]]
      return hash_v4(__builtin_bswap32(static_cast<uint32_t>(b >> 32)), __builtin_bswap32(static_cast<uint32_t>(d >> 32)),
                     k.lport, k.rport, k.proto);
    uint64_t ports = (uint64_t{k.lport} << 32) | (uint64_t{k.rport} << 16) | k.proto;
    return mix64((a * 0x9e3779b97f4a7c15ull) ^ (b * 0xc2b2ae3d27d4eb4full) ^ (c * 0x165667b19e3779f9ull) ^
                 (d * 0xd6e8feb86659fd93ull) ^ (ports * 0x9fb21c651e98df25ull) ^ seed_);
  }
  // The hash of an IPv4 key, from the addresses (host order) and ports themselves.
  uint64_t hash_v4(uint32_t local, uint32_t remote, uint16_t lport, uint16_t rport, uint8_t proto) const {
    const uint64_t addrs = (uint64_t{local} << 32) | remote;
    const uint64_t ports = (uint64_t{lport} << 32) | (uint64_t{rport} << 16) | proto;
    return mix64((addrs * 0xc2b2ae3d27d4eb4full) ^ (ports * 0x9fb21c651e98df25ull) ^ seed_);
  }
  void prefetch(uint64_t h) const { prefetch_line(&tags_[set_of(h)]); }
  // A session goes to its home way when that way is free (empty or dead) as it is
  // created. The inside path prefetches the home way's entry together with the set's tags,
  // before the tags say which way holds the key: a session in its home way (most of them,
  // until the table is crowded) is then read without first waiting for the tag line.
  // Measured (docs/performance.md, 100k): the inside path 2-8 % faster in DPDK runs
  // (9-13 % in the paired microbenchmark); the outside path, which has more lines in
  // flight per packet, gained nothing, so it prefetches the tags alone.
  static unsigned home_way(uint64_t h) { return static_cast<unsigned>(h >> 61); }
  void prefetch_with_home(uint64_t h) const {
    prefetch_line(&tags_[set_of(h)]);
    prefetch_line(&entries_[set_of(h) * kWays + home_way(h)]);
  }

  // The live session with key `k` (hash `h`), or null.
  Session* find(const SessionKey& k, uint64_t h, uint32_t now) { return find_in(k, h, candidates(h, now)); }
  // The ways of h's set whose signature matches and that are live at `now` (bit 2w: way w).
  // The outside path scans a set once, prefetches these ways' entries and later looks only
  // at them (find_in): it never inserts, so they stay valid. The inside path inserts, so
  // for it they are only upsert's first guess.
  unsigned candidates(uint64_t h, uint32_t now) const {
    const uint32_t sig = sig_of(h);
    const TagSet& t = tags_[set_of(h)];
#if defined(__SSE2__)
    // All eight ways at once: a 16-bit lane per way that is all ones when its signature
    // matches and its deadline has not passed (the sign of deadline - now, as tick_before).
    const __m128i keep = _mm_set1_epi32(static_cast<int>(~kKept));
    const __m128i want = _mm_set1_epi32(static_cast<int>(sig));
    const __m128i at = _mm_set1_epi32(static_cast<int>(now));
    const auto* sv = reinterpret_cast<const __m128i*>(t.sig);
    const auto* dv = reinterpret_cast<const __m128i*>(t.deadline);
    const __m128i eq = _mm_packs_epi32(_mm_cmpeq_epi32(_mm_and_si128(_mm_load_si128(sv), keep), want),
                                       _mm_cmpeq_epi32(_mm_and_si128(_mm_load_si128(sv + 1), keep), want));
    const __m128i dead = _mm_packs_epi32(_mm_srai_epi32(_mm_sub_epi32(_mm_load_si128(dv), at), 31),
                                         _mm_srai_epi32(_mm_sub_epi32(_mm_load_si128(dv + 1), at), 31));
    // Two mask bits a way: keep bit 2w.
    return static_cast<unsigned>(_mm_movemask_epi8(_mm_andnot_si128(dead, eq))) & 0x5555u;
#else
    unsigned m = 0;
    for (unsigned w = 0; w < kWays; ++w)
      if ((t.sig[w] & ~kKept) == sig && !tick_before(t.deadline[w], now)) m |= 1u << (2 * w);
    return m;
#endif
  }
  // The first candidate's entry: a set almost never holds two (a second would need the
  // same 31-bit signature), and find_in reads any other unprefetched.
  void prefetch_ways(uint64_t h, unsigned ways) const {
    if (ways) prefetch_line(&entries_[(set_of(h) * kWays) + (std::countr_zero(ways) >> 1)]);
  }
  Session* find_in(const SessionKey& k, uint64_t h, unsigned ways) {
    for (; ways; ways &= ways - 1) {
      Session* s = &entries_[(set_of(h) * kWays) + (std::countr_zero(ways) >> 1)];
      if (s->key == k) [[likely]] return s;
    }
    return nullptr;
  }
  // find_in for the IPv4 TCP/UDP key (local, remote, lport, rport, proto), compared word by
  // word against the entry instead of through a SessionKey.
  Session* find_in_v4(uint64_t h, unsigned ways, uint32_t local, uint32_t remote, uint16_t lport, uint16_t rport,
                      uint8_t proto) {
    const uint64_t l = mapped_v4_low(local), r = mapped_v4_low(remote);
    const uint64_t tail = uint64_t{lport} | (uint64_t{rport} << 16) | (uint64_t{proto} << 32);
    Session* const set = &entries_[set_of(h) * kWays];
    for (; ways; ways &= ways - 1) {
      Session* s = set + (std::countr_zero(ways) >> 1);
      // The key's 37 bytes as five words, read in place: every bit that differs survives
      // into one word (the last word's top three bytes, state, flags and wscale, are
      // shifted out).
      const auto* b = reinterpret_cast<const unsigned char*>(s);
      if ((word(b) | word(b + 16) | (word(b + 8) ^ l) | (word(b + 24) ^ r) | ((word(b + 32) ^ tail) << 24)) == 0)
          [[likely]]
        return s;
    }
    return nullptr;
  }
  // The session with key `k`, created (zeroed, key set) if it is not live; `created` says
  // which. A new session takes an empty or dead way, else the live way that expires first
  // among those not kept (a verified connection, or one the cluster opened), else the kept
  // way that expires first; `evicted` says a live session was lost. So the connections a
  // flood of half-open ones (SYNs to a public port, which the cluster answers) could push
  // out are the last to go.
  // `hint`: candidates() of the set from earlier in the same stage; inserts since may have
  // changed the set, so a key not among them is looked for again before it is created.
  Session* upsert(const SessionKey& k, uint64_t h, uint32_t now, bool& created, bool& evicted, unsigned hint = 0) {
    const uint32_t sig = sig_of(h);
    const size_t base = set_of(h) * kWays;
    Session* live = find_in(k, h, hint);
    if (!live) live = find(k, h, now);
    if (live) [[likely]] {
      created = evicted = false;
      return live;
    }
    TagSet& t = tags_[set_of(h)];
    // Eviction rank: 0 dead or empty, 1 live, 2 live and kept; then the earliest deadline.
    // The home way when it is free, else the first free way, else the lowest rank.
    auto rank = [&](unsigned w) {
      return (t.sig[w] == 0 || tick_before(t.deadline[w], now)) ? 0 : (t.sig[w] & kKept) ? 2 : 1;
    };
    unsigned victim = home_way(h);
    if (rank(victim) != 0) {
      victim = 0;
      for (unsigned w = 1; w < kWays; ++w) {
        const int rw = rank(w), rv = rank(victim);
        if (rv != 0 && (rw < rv || (rw == rv && tick_before(t.deadline[w], t.deadline[victim])))) victim = w;
      }
    }
    evicted = t.sig[victim] != 0 && !tick_before(t.deadline[victim], now);
    created = true;
    t.sig[victim] = sig;
    t.deadline[victim] = now;
    Session& s = entries_[base + victim];
    s = Session{};
    s.key = k;
    return &s;
  }
  // Keeps `s` alive until `deadline` (a tick).
  // (Written only when it changes: a tick is 16 ms, and a busy connection's packets then
  // leave its set's tag line clean.)
  void extend(Session* s, uint32_t deadline) {
    uint32_t& d = deadline_of(s);
    if (d != deadline) d = deadline;
  }
  // The same, and notes whether the session is to be kept (after its flags changed).
  void extend_keep(Session* s, uint32_t deadline) {
    const size_t i = index_of(s);
    TagSet& t = tags_[i / kWays];
    t.deadline[i % kWays] = deadline;
    t.sig[i % kWays] = (t.sig[i % kWays] & ~kKept) | ((s->flags & (Session::kVerified | Session::kOpened)) ? kKept : 0);
  }
  uint32_t deadline(const Session* s) const { return const_cast<SessionTable*>(this)->deadline_of(s); }

  // Empties the dead ways of the next `sets` sets, round robin. A dead way and an empty one
  // behave alike but for one thing: deadlines are 32-bit ticks compared by the sign of
  // their difference, so a way left dead for 2^31 ticks (about 417 days) would look live
  // again, and far from expiring. The worker sweeps a few sets each tick (Worker::tick):
  // every set is swept within hours, whatever the table's size.
  void sweep(uint32_t now, size_t sets) {
    for (size_t i = 0; i < sets; ++i) {
      TagSet& t = tags_[sweep_next_++ & mask_];
      for (unsigned w = 0; w < kWays; ++w)
        if (t.sig[w] != 0 && tick_before(t.deadline[w], now)) t.sig[w] = 0;
    }
  }

  size_t capacity() const { return entries_.size(); }
  // Entry i (0 <= i < capacity()), live or not: for tests that compare whole tables.
  const Session& entry(size_t i) const { return entries_[i]; }

 private:
  size_t set_of(uint64_t h) const { return static_cast<size_t>((h >> 32) & mask_); }
  size_t index_of(const Session* s) const { return static_cast<size_t>(s - entries_.data()); }
  uint32_t& deadline_of(const Session* s) {
    const size_t i = index_of(s);
    return tags_[i / kWays].deadline[i % kWays];
  }
  static uint32_t sig_of(uint64_t h) { return (static_cast<uint32_t>(h) | 1) & ~kKept; }
  static uint64_t word(const unsigned char* p) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    return w;
  }
  uint64_t seed_;
  uint64_t mask_ = 0;
  uint64_t sweep_next_ = 0;  // the set sweep() empties next
  HugeVector<TagSet> tags_;
  HugeVector<Session> entries_;
};

// ---- TCP as the gateway follows it -----------------------------------------------------
//
// The gateway sees both directions. A connection is verified once a remote packet
// acknowledges sequence space the cluster sent: the remote's ACK of the cluster's SYN-ACK,
// the remote's SYN-ACK to the cluster's SYN, or (for a connection picked up after the
// gateway started) an acknowledgement of bytes sent since. A sender off the path does
// not see the cluster's sequence numbers, so it cannot forge that. After verification,
// a remote packet counts as the connection's only when its acknowledgement and sequence
// number lie in the windows of what the cluster sent and will accept.

inline constexpr uint32_t kPickupWindow = 1u << 26;  // a side whose window scale the gateway did not see
inline constexpr uint32_t kMinWindow = 65535;
// How far behind the remote's highest acknowledgement a later one may be (reordered ACKs);
// an older one is not counted as the connection's (the request channel carries it). With
// the sequence check, a blind guess lands on a verified connection about once in 4 million.
inline constexpr uint32_t kAckSlack = 1u << 18;

inline bool seq_after(uint32_t a, uint32_t b) { return static_cast<int32_t>(a - b) > 0; }
// a within [lo, lo + span] modulo 2^32
inline bool seq_within(uint32_t a, uint32_t lo, uint32_t span) { return a - lo <= span; }

inline uint32_t scaled_window(uint16_t win, uint8_t shift_nibble) {
  if (shift_nibble == 0xF) return kPickupWindow;
  return std::max<uint32_t>(kMinWindow, uint32_t{win} << shift_nibble);
}

inline uint32_t tcp_deadline(const Session& s, const SessionTimeouts& to, uint32_t now) {
  if (s.state == Session::kTcpEstablished) [[likely]] return now + to.tcp_established;
  switch (s.state) {
    case Session::kTcpSynSent:
    case Session::kTcpSynRcvd: return now + to.tcp_syn;
    case Session::kTcpClosing: return now + to.tcp_closing;
    case Session::kTcpClosed: return now + to.tcp_closed;
    default: return now + to.tcp_established;
  }
}

// A FIN from one end (`end`: Session::kFinCluster or kFinRemote).
[[gnu::cold, gnu::noinline]] inline void on_fin(Session& s, uint8_t end) {
  s.flags |= end;
  const bool both = (s.flags & (Session::kFinCluster | Session::kFinRemote)) == (Session::kFinCluster | Session::kFinRemote);
  s.state = both ? Session::kTcpClosed : Session::kTcpClosing;
}

// A TCP packet the cluster sent. `created`: the session is new; `wscale`: the window scale
// option when the packet is a SYN (or -1); `service_port`: its source port is one the
// cluster serves (a connection picked up mid-way from it is one the cluster accepted).
inline void on_cluster_tcp(Session& s, bool created, uint8_t flags, uint32_t seq, uint32_t ack, uint16_t win,
                           uint32_t seq_len, int wscale, bool service_port) {
  const uint32_t end = seq + seq_len;
  if (flags & kTcpRst) {
    s.state = Session::kTcpClosed;
  } else if (flags & kTcpSyn) {
    const bool retransmit = !created && (s.state == Session::kTcpSynSent || s.state == Session::kTcpSynRcvd) && s.seq0 == seq;
    if (!retransmit) {  // a new connection (or one reusing the 4-tuple)
      s.flags = (flags & kTcpAck) ? 0 : Session::kOpened;
      s.state = (flags & kTcpAck) ? Session::kTcpSynRcvd : Session::kTcpSynSent;
      s.seq0 = seq;
      s.snd_max = end;
      // A SYN-ACK with the option means both sides agreed to scale; without it, neither does.
      // A SYN's scale applies only if the remote's SYN-ACK agrees (on_remote_tcp).
      const uint8_t mine = wscale < 0 ? 0 : static_cast<uint8_t>(wscale);
      s.wscale = (flags & kTcpAck) ? static_cast<uint8_t>(mine | (wscale < 0 ? 0x00 : 0xF0)) : static_cast<uint8_t>(mine | 0xF0);
    }
    if (flags & kTcpAck) {
      s.cl_ack = ack;
      s.flags |= Session::kAckSeen;
    }
  } else {
    if (created) {  // picked up mid-connection: its windows' scales are unknown
      s.state = Session::kTcpEstablished;
      s.flags = service_port ? 0 : Session::kOpened;
      s.seq0 = seq;
      s.snd_max = end;
      s.wscale = 0xFF;
    } else if (seq_after(end, s.snd_max)) {
      s.snd_max = end;
    }
    if ((flags & kTcpFin) && s.state != Session::kTcpClosed) on_fin(s, Session::kFinCluster);
    if (flags & kTcpAck) {
      if (!(s.flags & Session::kAckSeen) || seq_after(ack, s.cl_ack)) s.cl_ack = ack;
      s.flags |= Session::kAckSeen;
    }
  }
  s.cl_win = win;
}

// Does the remote's acknowledgement `ack` prove it received the cluster's packets of `s`?
// In a handshake, an acknowledgement of the cluster's SYN (or of anything it sent after);
// for a connection picked up mid-way, of anything the cluster sent since.
inline bool acknowledges_cluster(const Session& s, uint32_t ack) {
  const bool handshake = s.state == Session::kTcpSynSent || s.state == Session::kTcpSynRcvd;
  return handshake ? seq_within(ack, s.seq0 + 1, s.snd_max - s.seq0 - 1) : seq_within(ack, s.seq0, s.snd_max - s.seq0);
}

// A TCP packet from the remote end of `s`: true when it is on the verified connection
// (verifying it first if it proves receipt), which then follows its FIN or RST. A packet
// that is not never changes the session: a spoofer can neither verify, close nor keep it.
inline bool on_remote_tcp(Session& s, uint8_t flags, uint32_t seq, uint32_t ack, uint16_t win, int wscale) {
  const bool handshake = s.state == Session::kTcpSynSent || s.state == Session::kTcpSynRcvd;
  const bool verifying = !(s.flags & Session::kVerified);
  if (verifying) {
    if (!(flags & kTcpAck) || !acknowledges_cluster(s, ack)) return false;
    s.flags |= Session::kVerified;
    if (s.state == Session::kTcpSynSent && (flags & kTcpSyn)) {
      // The remote's SYN-ACK: scaling holds only if both SYNs carried the option.
      if (wscale < 0) s.wscale = 0;
      else s.wscale = static_cast<uint8_t>((s.wscale & 0x0F) | (std::min(wscale, 14) << 4));
      s.cl_ack = seq + 1;  // the cluster will acknowledge the remote's SYN
      s.flags |= Session::kAckSeen;
    }
  } else {
    const uint32_t remote_window = scaled_window(s.rm_win ? s.rm_win : kMinWindow, s.wscale >> 4);
    const uint32_t cluster_window = scaled_window(s.cl_win, s.wscale & 0x0F);
    if (flags & kTcpAck) {
      // Not beyond what the cluster sent, and not far behind what the remote already acknowledged.
      const uint32_t lo = s.rm_ack - std::min(remote_window, kAckSlack);
      if (!seq_within(ack, lo, s.snd_max - lo)) return false;
    }
    if ((s.flags & Session::kAckSeen) && !seq_within(seq, s.cl_ack - cluster_window, 2 * cluster_window)) return false;
  }
  if (handshake) s.state = Session::kTcpEstablished;
  s.rm_win = win;
  if ((flags & kTcpAck) && (verifying || seq_after(ack, s.rm_ack))) s.rm_ack = ack;
  // A reset closes the connection only at the exact next sequence number (RFC 5961 3.2).
  if ((flags & kTcpRst) && (!(s.flags & Session::kAckSeen) || seq == s.cl_ack)) s.state = Session::kTcpClosed;
  else if ((flags & kTcpFin) && s.state != Session::kTcpClosed) on_fin(s, Session::kFinRemote);
  return true;
}

}  // namespace stakegate
