#pragma once
// Importers for Flow's identity formats. Each throws ConfigError naming the file, the
// element and the problem.
#include <map>
#include <string>
#include <vector>

#include "stakegate/config/config.h"
#include "stakegate/identity/node.h"

namespace stakegate {

// `node-infos.pub.json`: an array of {Role, Address, NodeID, Weight, NetworkPubKey, StakingPubKey, ...}.
std::vector<NodeIdentity> parse_flow_node_infos(const std::string& json_text, const std::string& file);

// Root protocol state snapshot: the current epoch identity table, keys base64 there.
std::vector<NodeIdentity> parse_flow_snapshot(const std::string& json_text, const std::string& file);

// Stake file: a JSON object NodeID -> stake (flow-go's partner-weights.json shape).
std::map<std::string, double> parse_stake_file(const std::string& json_text, const std::string& file);

// Loads the identities the config names, applies the stake file, checks them (unique
// NodeIDs, unique host:port) and resolves every host to addresses. `warnings` receives
// what is accepted but worth telling (stake entries for unknown nodes).
std::vector<NodeIdentity> load_identities(const Config& cfg, std::vector<std::string>* warnings = nullptr);

// Resolves each node's host: a literal address, then cfg.identity.hosts, then DNS.
// Throws ConfigError naming the node when a name does not resolve.
void resolve_identities(std::vector<NodeIdentity>& nodes, const std::map<std::string, IpAddr>& hosts,
                        const std::string& file);

std::string read_file(const std::string& path, const std::string& referenced_from, const std::string& key);
bool valid_node_id(std::string_view id);

}  // namespace stakegate
