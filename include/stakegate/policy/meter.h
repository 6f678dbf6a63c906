#pragma once
// The one token bucket of stakegate, in the shape of DPDK's rte_meter.h: a profile
// (rate, depth, fill time) that the control plane computes, a meter (tokens, last
// time) that one worker owns, and inline functions with time and cost passed in.
// Every bucket uses it: a node's packets and bytes, its normal-rate shadow while
// graylisted, each unregistered source, and the unregistered pool.
//
// Tokens are counted in nano-units (kTokenScale per packet or byte), so the refill is
// `elapsed_ns × rate_per_s`: no division or floating point per packet.
#include <algorithm>
#include <cstdint>

namespace stakegate {

inline constexpr uint64_t kTokenScale = 1'000'000'000ull;
inline constexpr uint64_t kMaxBurstUnits = 10'000'000'000ull;  // keeps a depth in nano-units below 2^64

struct MeterProfile {
  uint64_t rate = 0;     // units (packets or bytes) per second; 0: nothing ever conforms
  uint64_t burst = 0;    // depth, nano-units
  uint64_t fill_ns = 0;  // time to fill an empty meter; caps `elapsed` so `elapsed × rate` cannot overflow
  friend bool operator==(const MeterProfile&, const MeterProfile&) = default;

  // `burst_units` is raised to `min_burst_units` (and to 1: a meter with a positive rate
  // must hold at least one unit, or it would never pass anything).
  static constexpr MeterProfile make(uint64_t rate_per_s, uint64_t burst_units, uint64_t min_burst_units = 1) {
    MeterProfile p;
    if (rate_per_s == 0) return p;
    burst_units = std::clamp<uint64_t>(std::max(burst_units, min_burst_units), 1, kMaxBurstUnits);
    p.rate = rate_per_s;
    p.burst = burst_units * kTokenScale;
    p.fill_ns = p.burst / rate_per_s + 1;
    return p;
  }
  uint64_t burst_units() const { return burst / kTokenScale; }
};

struct Meter {
  uint64_t tokens = 0;   // nano-units
  uint64_t last_ns = 0;  // when `tokens` was last brought up to date
};

inline constexpr uint64_t meter_cost(uint64_t units) { return units * kTokenScale; }

// What `m` holds at `now_ns`, without changing it. A clock that runs backwards adds
// nothing; the sum saturates rather than wraps (elapsed × rate ≤ burst + rate).
static inline uint64_t meter_level(const Meter& m, const MeterProfile& p, uint64_t now_ns) {
  if (now_ns <= m.last_ns) return m.tokens;
  uint64_t elapsed = std::min(now_ns - m.last_ns, p.fill_ns);
  uint64_t sum;
  if (__builtin_add_overflow(m.tokens, elapsed * p.rate, &sum)) sum = UINT64_MAX;
  return std::min(sum, p.burst);
}

// Brings `m` up to `now_ns`.
static inline void meter_refill(Meter& m, const MeterProfile& p, uint64_t now_ns) {
  m.tokens = meter_level(m, p, now_ns);
  if (now_ns > m.last_ns) m.last_ns = now_ns;
}

// Refills, then takes `cost` nano-units if the meter holds them: true when conforming.
// A packet checked against several meters (packets and bytes, a source and a pool) uses
// meter_refill on each, then pays every one only if all hold their cost.
static inline bool meter_take(Meter& m, const MeterProfile& p, uint64_t now_ns, uint64_t cost) {
  meter_refill(m, p, now_ns);
  if (m.tokens < cost) return false;
  m.tokens -= cost;
  return true;
}

// A meter that starts full (a new node's bucket) or empty (a new unregistered source).
inline Meter meter_full(const MeterProfile& p, uint64_t now_ns) { return Meter{p.burst, now_ns}; }

}  // namespace stakegate
