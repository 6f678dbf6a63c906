#pragma once
// Importers for Flow's identity formats. Each throws ConfigError naming the file, the
// element and the problem. They only parse: checking a table as a whole, applying
// stakes and resolving hosts are in identity/table.h and identity/resolve.h.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "stakegate/identity/node.h"

namespace stakegate {

// `node-infos.pub.json`: an array of {Role, Address, NodeID, Weight, NetworkPubKey, StakingPubKey, ...}.
std::vector<NodeIdentity> parse_flow_node_infos(const std::string& json_text, const std::string& file);

// Where the current epoch stands: its counter and phase (staking, setup, committed, or
// fallback after epoch fallback mode was triggered).
struct FlowEpoch {
  uint64_t counter = 0;
  std::string phase;  // empty when unknown
};

// Root protocol state snapshot: the current epoch identity table, keys base64 there.
// `epoch`, when given, gets the current epoch's counter and phase.
std::vector<NodeIdentity> parse_flow_snapshot(const std::string& json_text, const std::string& file,
                                              FlowEpoch* epoch = nullptr);

// The result of a Cadence script returning {String: UFix64} (JSON-Cadence), NodeID -> stake.
std::map<std::string, double> parse_cadence_stakes(const std::string& json_text, const std::string& source);

// Stake file: a JSON object NodeID -> stake (flow-go's partner-weights.json shape).
std::map<std::string, double> parse_stake_file(const std::string& json_text, const std::string& file);

}  // namespace stakegate
