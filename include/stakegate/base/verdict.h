#pragma once
// The outcome of one packet and the traffic class it is counted under. These names are
// the label values of the metrics and report fields of DESIGN.md.
#include <cstdint>
#include <string_view>

#include "stakegate/base/role.h"

namespace stakegate {

enum class Verdict : uint8_t {
  kPass = 0,
  kMalformed,
  kBlocklisted,
  kEjected,
  kPortDenied,
  kOverRate,
  kUnregistered,
  kUnregisteredOverRate,
};
inline constexpr int kVerdictCount = 8;

inline constexpr std::string_view verdict_name(Verdict v) {
  constexpr std::string_view names[kVerdictCount] = {
      "pass", "malformed", "blocklisted", "ejected", "port_denied", "over_rate",
      "unregistered", "unregistered_over_rate"};
  return names[static_cast<int>(v)];
}

// Counting class: the five roles, unregistered sources, non-IP frames (`l2`) and frames
// whose source could not be read (`none`, i.e. malformed).
enum class TrafficClass : uint8_t {
  kCollection = 0, kConsensus, kExecution, kVerification, kAccess, kUnregistered, kL2, kNone,
};
inline constexpr int kTrafficClassCount = 8;

inline constexpr TrafficClass class_of(Role r) { return static_cast<TrafficClass>(r); }

inline constexpr std::string_view class_name(TrafficClass c) {
  constexpr std::string_view names[kTrafficClassCount] = {
      "collection", "consensus", "execution", "verification", "access", "unregistered", "l2", "none"};
  return names[static_cast<int>(c)];
}

enum class Direction : uint8_t { kOutside = 0, kInside = 1 };
inline constexpr int kDirectionCount = 2;
inline constexpr std::string_view direction_name(Direction d) {
  return d == Direction::kOutside ? "outside" : "inside";
}

}  // namespace stakegate
