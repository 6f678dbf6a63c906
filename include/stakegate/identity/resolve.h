#pragma once
// Host names of a table to source addresses. Control plane only: it may wait on DNS.
#include <map>
#include <string>
#include <vector>

#include "stakegate/identity/node.h"

namespace stakegate {

// Resolves each node's host: a literal address, then `hosts` (pinned names), then DNS.
// Throws ConfigError naming the node when a name does not resolve.
void resolve_identities(std::vector<NodeIdentity>& nodes, const std::map<std::string, IpAddr>& hosts,
                        const std::string& file);

}  // namespace stakegate
