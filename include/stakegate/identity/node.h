#pragma once
#include <string>
#include <string_view>
#include <vector>

#include "stakegate/base/address.h"
#include "stakegate/base/role.h"

namespace stakegate {

// One staked node as the Flow identity table describes it.
struct NodeIdentity {
  std::string node_id;          // 64 lowercase hex characters (NodeId::parse)
  Role role = Role::kCollection;
  std::string address;          // "host:port" as published
  std::string host;
  uint16_t port = 0;
  double weight = 100;          // protocol weight, or stake from the stake file
  std::string network_key;      // hex
  std::string staking_key;      // hex
  std::string status = "active";  // joining | active | leaving | ejected
  bool ejected = false;
  std::vector<IpAddr> ips;      // source addresses, filled by resolve_identities()
};

}  // namespace stakegate

namespace stakegate {

// The key names a format uses for a node's fields, so errors name the key the operator wrote.
struct NodeFieldNames {
  const char* node_id;
  const char* role;
  const char* address;
};
inline constexpr NodeFieldNames kFlowFieldNames{"NodeID", "Role", "Address"};
inline constexpr NodeFieldNames kFieldNames{"node_id", "role", "address"};

// Sets a node's NodeID, role and address from their published text, checking each: the
// one place where every table format (Flow files, inline YAML, the API) is validated.
// Throws ConfigError(file, path + "." + key, problem).
void set_node_fields(NodeIdentity& n, std::string_view node_id, std::string_view role, std::string_view address,
                     const std::string& file, const std::string& path, const NodeFieldNames& names = kFieldNames);

// joining | active | leaving | ejected; false for anything else.
bool set_node_status(NodeIdentity& n, std::string_view status);

}  // namespace stakegate
