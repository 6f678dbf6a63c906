#pragma once
// Rules for an identity table as a whole, shared by config loading, the Flow importers'
// callers and the control API, so that every way a table arrives is checked alike.
#include <map>
#include <string>
#include <vector>

#include "stakegate/identity/node.h"

namespace stakegate {

// Refuses (ConfigError naming `source`) a table where a NodeID appears twice, or two
// nodes share a host:port (hosts compared case-insensitively, as DNS does).
void check_identity_table(const std::vector<NodeIdentity>& nodes, const std::string& source);

// Sets each listed node's weight to its stake. Entries for NodeIDs not in the table are
// reported in `warnings` ("<stake_source>: <id>: not in the identity table, ignored").
void apply_stakes(std::vector<NodeIdentity>& nodes, const std::map<std::string, double>& stakes,
                  const std::string& stake_source, std::vector<std::string>* warnings);

}  // namespace stakegate
