#include <gtest/gtest.h>

#include "stakegate/policy/token_bucket.h"

using namespace stakegate;

namespace {
int drain(BucketState& s, const BucketParams& p, uint64_t now) {
  int n = 0;
  s.refill(p, now);
  while (s.has(1)) { s.take(1); ++n; }
  return n;
}
constexpr uint64_t kMs = 1'000'000;
}  // namespace

TEST(TokenBucket, StartsFullAndRefillsAtRate) {
  auto p = BucketParams::make(1000, 100);  // 1000/s, burst 100
  BucketState s;
  s.fill(p, 0);
  EXPECT_EQ(drain(s, p, 0), 100);
  EXPECT_EQ(drain(s, p, 10 * kMs), 10);   // 10 ms at 1000/s
  EXPECT_EQ(drain(s, p, 10 * kMs), 0);    // same instant: nothing new
  EXPECT_EQ(drain(s, p, 10 * kMs + 999'999), 0);
  EXPECT_EQ(drain(s, p, 11 * kMs), 1);    // fractional tokens accumulate exactly
}

TEST(TokenBucket, CapsAtBurstAfterLongIdle) {
  auto p = BucketParams::make(1000, 100);
  BucketState s;
  s.fill(p, 0);
  drain(s, p, 0);
  EXPECT_EQ(drain(s, p, 3600'000 * kMs), 100);  // an hour idle still refills only to the burst
}

TEST(TokenBucket, TimeGoingBackwardsAddsNothing) {
  auto p = BucketParams::make(1000, 100);
  BucketState s;
  s.fill(p, 50 * kMs);
  drain(s, p, 50 * kMs);
  EXPECT_EQ(drain(s, p, 10 * kMs), 0);
  EXPECT_EQ(drain(s, p, 51 * kMs), 1);
}

TEST(TokenBucket, LongRunAverageEqualsRate) {
  auto p = BucketParams::make(777, 10);
  BucketState s;
  s.fill(p, 0);
  int passed = 0;
  for (uint64_t t = 0; t <= 10'000 * kMs; t += 100'000) {  // offered 10,000/s for 10 s
    s.refill(p, t);
    if (s.has(1)) { s.take(1); ++passed; }
  }
  EXPECT_GE(passed, 7770 + 10 - 1);
  EXPECT_LE(passed, 7770 + 10 + 1);
}

TEST(TokenBucket, BurstBelowOneStillPasses) {
  auto p = BucketParams::make(5, 0);  // 5/s with 100 ms burst would be 0.5 packets
  BucketState s;
  s.fill(p, 0);
  EXPECT_EQ(drain(s, p, 0), 1);
  EXPECT_EQ(drain(s, p, 200 * kMs), 1);
}

TEST(TokenBucket, HugeRatesDoNotOverflow) {
  auto p = BucketParams::make(100'000'000'000ull, 10'000'000'000ull);  // 100 G units/s (bytes of 800 Gb/s)
  BucketState s;
  s.fill(p, 0);
  s.take(10'000'000'000ull);
  s.refill(p, 365ull * 24 * 3600 * 1'000'000'000ull);
  EXPECT_EQ(s.tokens, p.burst_scaled);
}

TEST(TokenBucket, ZeroRateNeverPasses) {
  auto p = BucketParams::make(0, 100);
  BucketState s;
  s.fill(p, 0);
  EXPECT_EQ(drain(s, p, 1'000'000 * kMs), 0);
}
