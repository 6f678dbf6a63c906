#pragma once
// One call that every entry point shares (run, replay, check-config, reload): read the
// config, import, check and resolve the identities it names, apply stakes, compute the
// SWQoS plan. Throws ConfigError naming the file, the key and the problem.
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

// The identity table a config names (its file, or inline nodes), checked, with the stake
// file applied and hosts resolved. `warnings` receives what is accepted but worth telling.
std::vector<NodeIdentity> load_identities(const Config& cfg, std::vector<std::string>* warnings = nullptr);

// Where the identity table of `cfg` comes from, for messages and the API.
std::string identity_source(const Config& cfg);

// Why a block of `b` does nothing, or "": its CIDR lies inside cluster.prefixes (those
// sources are spoofed from the outside, and the blocklist never applies inside).
std::string block_in_cluster(const Config& c, const BlockEntry& b);

// A warning when most of a table's nodes (more than one) have addresses inside
// cluster.prefixes, or "": their packets from the outside would all be dropped as spoofed,
// so the prefixes are likely too wide. `source` names the table in the message.
std::string table_in_cluster(const Config& c, const std::vector<NodeIdentity>& nodes, const std::string& source);

// A warning naming the cluster's own nodes (addresses inside cluster.prefixes) whose
// published port some configured role's `ports` leaves out, or "": peers of that role dial
// the node there, and their connections would be port_denied.
std::string cluster_ports_closed(const Config& c, const std::vector<NodeIdentity>& nodes, const std::string& source);

// A warning naming the cluster's own access nodes (addresses inside cluster.prefixes) when
// unregistered.ports is empty, or "": they serve the public Access API, which no client
// without stake could then reach.
std::string cluster_api_closed(const Config& c, const std::vector<NodeIdentity>& nodes, const std::string& source);

// The three warnings above that are not "", appended to `warnings`: said wherever a table
// is loaded or arrives.
void cluster_warnings(const Config& c, const std::vector<NodeIdentity>& nodes, const std::string& source,
                      std::vector<std::string>& warnings);

// Non-ejected nodes whose rate comes out at 0 pps (role share or weight 0, and min_pps 0):
// every packet of theirs is dropped. Empty when there are none.
std::string silenced_nodes(const std::vector<NodeIdentity>& nodes, const StakePlan& plan, const std::string& source);

// Human-readable plan: per role its share and rate, per node its role, address, weight and rate.
std::string describe_plan(const LoadedPolicy& p);

}  // namespace stakegate
