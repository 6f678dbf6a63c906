#pragma once
// The addresses the cluster asked for (ARP requests, neighbour solicitations from the
// inside), so that their answers from the outside pass whatever the infra budget holds:
// a flood on the outside link cannot keep the cluster from resolving its router. (A second
// table holds the cluster's DHCP transactions, keyed by dhcp_transaction.)
//
// One table serves every worker. A request and its answer need not reach the same worker:
// a first neighbour solicitation goes to a solicited-node multicast group (the inside
// port's RSS hashes that group), and the answer comes from the router's own address (the
// outside port hashes that). So any worker notes, any worker takes an answer. Each entry is
// one 64-bit word (tag, credits, deadline) written with single atomic stores and taken
// with compare-and-swap: no lock, and only ARP and neighbour discovery frames touch it.
// Workers' clocks share one origin (DataPlane), so a deadline one worker wrote means the
// same to the others.
#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>

#include "stakegate/base/address.h"
#include "stakegate/policy/snapshot.h"

namespace stakegate {

class SolicitationTable {
 public:
  static constexpr unsigned kEntries = 256;  // direct-mapped by the target's hash
  // Neighbour requests: the answer, and one more (a duplicate, a second router of a pair),
  // within 3 s (answers come in milliseconds).
  static constexpr uint32_t kNeighbourAnswers = 2;
  static constexpr uint64_t kNeighbourWithinNs = 3'000'000'000ull;

  explicit SolicitationTable(uint64_t seed = 0x5011c17, uint32_t answers = kNeighbourAnswers,
                             uint64_t within_ns = kNeighbourWithinNs)
      : seed_(mix64(seed) | 1), answers_(std::min<uint32_t>(answers, 255)),
        within_(static_cast<uint32_t>(within_ns >> kTickShift)) {}
  SolicitationTable(const SolicitationTable&) = delete;
  SolicitationTable& operator=(const SolicitationTable&) = delete;

  // The cluster asked for `target` at tick `now`: a few answers within a few seconds. A
  // later request for the same address renews them, not adds to them.
  void note(const Ip6& target, uint32_t now) noexcept {
    const uint64_t h = hash(target);
    entry(h).store(word(h, answers_, now + within_), std::memory_order_relaxed);
  }

  // An answer for `target` at tick `now`: true, spending one credit, when the cluster asked
  // for it recently enough and credits are left.
  bool take_answer(const Ip6& target, uint32_t now) noexcept {
    const uint64_t h = hash(target);
    std::atomic<uint64_t>& e = entry(h);
    uint64_t w = e.load(std::memory_order_relaxed);
    for (;;) {
      const uint32_t credits = static_cast<uint32_t>(w >> 32) & 0xff;
      if ((w >> 40) != tag(h) || credits == 0 || tick_before(static_cast<uint32_t>(w), now)) return false;
      if (e.compare_exchange_weak(w, w - (uint64_t{1} << 32), std::memory_order_relaxed)) return true;
    }
  }

  // Empties entry `i` (modulo the size) if its deadline has passed: a deadline is a 32-bit
  // tick, and one left behind for 2^31 ticks (about 417 days) would look current again.
  // Workers sweep an entry each tick (Worker::tick); a request noted meanwhile stays.
  void sweep(size_t i, uint32_t now) noexcept {
    std::atomic<uint64_t>& e = entries_[i % kEntries];
    uint64_t w = e.load(std::memory_order_relaxed);
    if (w != 0 && tick_before(static_cast<uint32_t>(w), now)) e.compare_exchange_strong(w, 0, std::memory_order_relaxed);
  }

 private:
  uint64_t hash(const Ip6& target) const noexcept { return mix64(hash_v6(target) ^ seed_); }
  // 8 bits of the hash pick the entry, 24 more are its tag: a false match needs the same 32
  // bits (an on-link host could as well answer the real request, so this is no secret).
  static uint64_t tag(uint64_t h) noexcept { return (h >> 8) & 0xffffff; }
  std::atomic<uint64_t>& entry(uint64_t h) noexcept { return entries_[h % kEntries]; }
  static uint64_t word(uint64_t h, uint32_t credits, uint32_t deadline) noexcept {
    return tag(h) << 40 | uint64_t{credits & 0xff} << 32 | deadline;
  }

  uint64_t seed_;
  uint32_t answers_, within_;  // credits per request; ticks they last
  std::array<std::atomic<uint64_t>, kEntries> entries_{};
};

}  // namespace stakegate
