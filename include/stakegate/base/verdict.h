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
  kOverRate,               // a staked node over its allowance on verified connections
  kUnregistered,
  kUnregisteredOverRate,
  kSpoofed,                // a source inside the cluster's own prefixes (or a martian), from outside
  kL2Denied,               // a non-IP EtherType that is not allowed
  kInfraOverRate,          // ARP, neighbour discovery, ICMP errors, allowed EtherTypes over the infra budget
  kSessionOverRate,        // replies of unregistered senders over the sessions budget
  kRequestOverRate,        // a staked address's traffic off verified connections, over its request channel
};
inline constexpr int kVerdictCount = 13;

inline constexpr std::string_view verdict_name(Verdict v) {
  constexpr std::string_view names[kVerdictCount] = {
      "pass",         "malformed",              "blocklisted", "ejected",   "port_denied",     "over_rate",
      "unregistered", "unregistered_over_rate", "spoofed",     "l2_denied", "infra_over_rate", "session_over_rate",
      "request_over_rate"};
  return names[static_cast<int>(v)];
}

// Counting class: the five roles, unregistered sources, non-IP frames (`l2`), frames whose
// source could not be read or proves nothing (`none`: malformed, spoofed), and network
// infrastructure from the outside (`infra`: neighbour discovery, ICMP errors on sessions).
enum class TrafficClass : uint8_t {
  kCollection = 0, kConsensus, kExecution, kVerification, kAccess, kUnregistered, kL2, kNone, kInfra,
};
inline constexpr int kTrafficClassCount = 9;

inline constexpr TrafficClass class_of(Role r) { return static_cast<TrafficClass>(r); }

inline constexpr std::string_view class_name(TrafficClass c) {
  constexpr std::string_view names[kTrafficClassCount] = {
      "collection", "consensus", "execution", "verification", "access", "unregistered", "l2", "none", "infra"};
  return names[static_cast<int>(c)];
}

enum class Direction : uint8_t { kOutside = 0, kInside = 1 };
inline constexpr int kDirectionCount = 2;
inline constexpr std::string_view direction_name(Direction d) {
  return d == Direction::kOutside ? "outside" : "inside";
}

}  // namespace stakegate
