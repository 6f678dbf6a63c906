// The one meter (policy/meter.h), with time passed in: refill, depth, a clock that
// runs backwards, the long-run rate, tiny and huge profiles, the minimum depth.
#include <gtest/gtest.h>

#include "stakegate/policy/meter.h"

using namespace stakegate;

namespace {
// Takes every whole unit the meter holds at `now`.
int drain(Meter& m, const MeterProfile& p, uint64_t now) {
  int n = 0;
  while (meter_take(m, p, now, meter_cost(1))) ++n;
  return n;
}
constexpr uint64_t kMs = 1'000'000;
}  // namespace

TEST(Meter, StartsFullAndRefillsAtRate) {
  auto p = MeterProfile::make(1000, 100);  // 1000/s, burst 100
  Meter m = meter_full(p, 0);
  EXPECT_EQ(drain(m, p, 0), 100);
  EXPECT_EQ(drain(m, p, 10 * kMs), 10);   // 10 ms at 1000/s
  EXPECT_EQ(drain(m, p, 10 * kMs), 0);    // same instant: nothing new
  EXPECT_EQ(drain(m, p, 10 * kMs + 999'999), 0);
  EXPECT_EQ(drain(m, p, 11 * kMs), 1);    // fractional tokens accumulate exactly
}

TEST(Meter, CapsAtBurstAfterLongIdle) {
  auto p = MeterProfile::make(1000, 100);
  Meter m = meter_full(p, 0);
  drain(m, p, 0);
  EXPECT_EQ(drain(m, p, 3600'000 * kMs), 100);  // an hour idle still refills only to the burst
}

TEST(Meter, TimeGoingBackwardsAddsNothing) {
  auto p = MeterProfile::make(1000, 100);
  Meter m = meter_full(p, 50 * kMs);
  drain(m, p, 50 * kMs);
  EXPECT_EQ(drain(m, p, 10 * kMs), 0);
  EXPECT_EQ(m.last_ns, 50 * kMs);  // the earlier time does not move the meter's clock back
  EXPECT_EQ(drain(m, p, 51 * kMs), 1);
}

TEST(Meter, LongRunAverageEqualsRate) {
  auto p = MeterProfile::make(777, 10);
  Meter m = meter_full(p, 0);
  int passed = 0;
  for (uint64_t t = 0; t <= 10'000 * kMs; t += 100'000) passed += meter_take(m, p, t, meter_cost(1));  // offered 10,000/s
  EXPECT_GE(passed, 7770 + 10 - 1);
  EXPECT_LE(passed, 7770 + 10 + 1);
}

TEST(Meter, BurstBelowOneStillPasses) {
  auto p = MeterProfile::make(5, 0);  // 5/s with 100 ms burst would be 0.5 packets
  Meter m = meter_full(p, 0);
  EXPECT_EQ(drain(m, p, 0), 1);
  EXPECT_EQ(drain(m, p, 200 * kMs), 1);
}

TEST(Meter, MinimumDepthIsHonoured) {
  auto p = MeterProfile::make(100, 2, 1538);  // a byte meter must hold one full-size frame
  EXPECT_EQ(p.burst_units(), 1538u);
  Meter m = meter_full(p, 0);
  EXPECT_TRUE(meter_take(m, p, 0, meter_cost(1500)));
}

TEST(Meter, HugeRatesAndDepthsSaturateInsteadOfWrapping) {
  auto p = MeterProfile::make(100'000'000'000ull, 10'000'000'000ull);  // 100 G units/s (bytes of 800 Gb/s)
  Meter m = meter_full(p, 0);
  ASSERT_TRUE(meter_take(m, p, 0, meter_cost(10'000'000'000ull)));
  EXPECT_EQ(meter_level(m, p, 365ull * 24 * 3600 * 1'000'000'000ull), p.burst);
  // Nearly full, a refill whose sum would pass 2^64 stops at the depth.
  m = Meter{p.burst - 1, 0};
  EXPECT_EQ(meter_level(m, p, p.fill_ns), p.burst);
}

TEST(Meter, ZeroRateNeverPasses) {
  auto p = MeterProfile::make(0, 100);
  Meter m = meter_full(p, 0);
  EXPECT_EQ(drain(m, p, 1'000'000 * kMs), 0);
}
