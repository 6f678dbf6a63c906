#include "stakegate/identity/table.h"

#include <algorithm>

#include "stakegate/base/error.h"

namespace stakegate {

void check_identity_table(const std::vector<NodeIdentity>& nodes, const std::string& source) {
  // An empty table would turn every staked node into an unregistered source at 50 pps.
  if (nodes.empty()) throw ConfigError(source, "", "the identity table is empty: refusing a table without nodes");
  std::map<std::string, size_t> by_id, by_addr;
  for (size_t i = 0; i < nodes.size(); ++i) {
    if (!by_id.emplace(nodes[i].node_id, i).second)
      throw ConfigError(source, "", "NodeID " + nodes[i].node_id + " appears twice");
    std::string key = nodes[i].host;
    std::transform(key.begin(), key.end(), key.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    key.append(":").append(std::to_string(nodes[i].port));
    if (auto [it, fresh] = by_addr.emplace(key, i); !fresh)
      throw ConfigError(source, "", "nodes " + nodes[it->second].node_id + " and " + nodes[i].node_id +
                                        " share the address " + nodes[i].address);
  }
}

void apply_stakes(std::vector<NodeIdentity>& nodes, const std::map<std::string, double>& stakes,
                  const std::string& stake_source, std::vector<std::string>* warnings) {
  std::map<std::string, size_t> by_id;
  for (size_t i = 0; i < nodes.size(); ++i) by_id.emplace(nodes[i].node_id, i);
  for (const auto& [id, stake] : stakes) {
    auto it = by_id.find(id);
    if (it == by_id.end()) {
      if (warnings) warnings->push_back(stake_source + ": " + id + ": not in the identity table, ignored");
      continue;
    }
    nodes[it->second].weight = stake;
  }
}

}  // namespace stakegate
