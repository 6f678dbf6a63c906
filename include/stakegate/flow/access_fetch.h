#pragma once
// Fetching the identity table from Flow Access API nodes (gRPC): the latest protocol state
// snapshot, and optionally the stakes from the staking contract with a Cadence script.
// Blocking calls with deadlines, meant for a helper thread; pure otherwise (no state).
#include <map>
#include <string>
#include <vector>

#include "stakegate/config/config.h"
#include "stakegate/identity/flow_import.h"
#include "stakegate/identity/node.h"

namespace stakegate {

struct AccessFetch {
  bool ok = false;
  std::string endpoint;               // the one that answered (or the last tried)
  std::string error;                  // when !ok: every endpoint's failure, in order
  std::vector<NodeIdentity> nodes;    // parsed and checked (not resolved), stakes applied
  FlowEpoch epoch;
  std::vector<std::string> warnings;  // stakes for unknown nodes, a stakes fetch that failed
  bool stakes_missing = false;        // the stakes script failed: `nodes` carry the protocol's weights
};

// The Cadence script that reads every staked node's stake (with delegators) from
// FlowIDTableStaking at `contract` ("0x8624b52f9ddcd04a" on mainnet).
std::string stakes_script(const std::string& contract);

// Tries the endpoints of id.access_api in order until one returns a snapshot that parses
// and checks. Stakes come from the stakes script when a contract is configured, else from
// id.stake_file when there is one (as for the table loaded at start).
AccessFetch fetch_identity(const IdentityConfig& id);

}  // namespace stakegate
