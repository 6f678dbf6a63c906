#pragma once
// Flow node roles: the five the protocol defines, in the order counters are kept.
#include <cstdint>
#include <optional>
#include <string_view>

namespace stakegate {

enum class Role : uint8_t { kCollection = 0, kConsensus, kExecution, kVerification, kAccess };
inline constexpr int kRoleCount = 5;

inline constexpr std::string_view role_name(Role r) {
  constexpr std::string_view names[kRoleCount] = {"collection", "consensus", "execution", "verification", "access"};
  return names[static_cast<int>(r)];
}

// The role named exactly as Flow spells it ("consensus", ...), or nullopt.
inline constexpr std::optional<Role> parse_role(std::string_view s) {
  for (int i = 0; i < kRoleCount; ++i)
    if (role_name(static_cast<Role>(i)) == s) return static_cast<Role>(i);
  return std::nullopt;
}

}  // namespace stakegate
