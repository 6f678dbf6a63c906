#pragma once
// One call that every entry point shares (run, replay, check-config): read the config,
// import and resolve the identities, compute the SWQoS plan. Throws ConfigError.
#include <string>
#include <vector>

#include "stakegate/config/config.h"
#include "stakegate/identity/node.h"
#include "stakegate/policy/stake_plan.h"

namespace stakegate {

struct LoadedPolicy {
  Config cfg;
  std::vector<NodeIdentity> nodes;
  StakePlan plan;
  std::vector<std::string> warnings;
};

LoadedPolicy load_policy(const std::string& config_path);

// Human-readable plan: per role its share and rate, per node its role, address, weight and rate.
std::string describe_plan(const LoadedPolicy& p);

}  // namespace stakegate
