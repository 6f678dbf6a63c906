#pragma once
// Integer token bucket with time passed in. One token is kScale "nano-tokens" so that
// `elapsed_ns * rate_per_s` is the refill: no division or floating point per packet.
#include <algorithm>
#include <cstdint>

namespace stakegate {

inline constexpr uint64_t kTokenScale = 1'000'000'000ull;

struct BucketParams {
  uint64_t rate_per_s = 0;    // units (packets or bytes) per second
  uint64_t burst_scaled = 0;  // capacity in nano-units
  uint64_t fill_ns = 0;       // time to fill an empty bucket: caps `elapsed` so the product cannot overflow
  friend bool operator==(const BucketParams&, const BucketParams&) = default;

  // `burst` is in units. A bucket with a positive rate holds at least one unit, or it
  // would never pass anything.
  static BucketParams make(uint64_t rate_per_s, uint64_t burst) {
    BucketParams p;
    if (rate_per_s == 0) return p;
    burst = std::clamp<uint64_t>(burst, 1, 10'000'000'000ull);  // keeps burst_scaled < 2^64
    p.rate_per_s = rate_per_s;
    p.burst_scaled = burst * kTokenScale;
    p.fill_ns = p.burst_scaled / rate_per_s + 1;
    return p;
  }
};

struct BucketState {
  uint64_t tokens = 0;   // nano-units
  uint64_t last_ns = 0;

  void fill(const BucketParams& p, uint64_t now_ns) { tokens = p.burst_scaled; last_ns = now_ns; }

  // Adds what accrued since the last call. Time that runs backwards adds nothing.
  void refill(const BucketParams& p, uint64_t now_ns) {
    if (now_ns <= last_ns) return;
    uint64_t elapsed = std::min(now_ns - last_ns, p.fill_ns);
    tokens = std::min(tokens + elapsed * p.rate_per_s, p.burst_scaled);
    last_ns = now_ns;
  }
  bool has(uint64_t units) const { return tokens >= units * kTokenScale; }
  void take(uint64_t units) { tokens -= units * kTokenScale; }
};

}  // namespace stakegate
