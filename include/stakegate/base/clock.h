#pragma once
// Seconds on the steady clock: for durations and deadlines of the control plane (block
// expiry, DNS refresh, login throttles), which a step of the wall clock must not move.
// Dates (what operators and reports read) come from the wall clock instead.
#include <chrono>
#include <cstdint>

namespace stakegate {

inline int64_t steady_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace stakegate
