#include "stakegate/identity/node.h"

#include "stakegate/base/error.h"
#include "stakegate/base/node_id.h"

namespace stakegate {

void set_node_fields(NodeIdentity& n, std::string_view node_id, std::string_view role, std::string_view address,
                     const std::string& file, const std::string& path, const NodeFieldNames& names) {
  auto key = [&](const char* k) { return path.empty() ? std::string(k) : path + "." + k; };
  auto id = NodeId::parse(node_id);
  if (!id) throw ConfigError(file, key(names.node_id), "must be 64 hex characters, got '" + std::string(node_id) + "'");
  n.node_id = id->str();
  auto r = parse_role(role);
  if (!r)
    throw ConfigError(file, key(names.role), "unknown role '" + std::string(role) +
                                                 "' (expected collection, consensus, execution, verification or access; node " +
                                                 n.node_id + ")");
  n.role = *r;
  n.address = std::string(address);
  if (!split_host_port(n.address, n.host, n.port))
    throw ConfigError(file, key(names.address), "must be host:port, got '" + n.address + "' (node " + n.node_id + ")");
}

bool set_node_status(NodeIdentity& n, std::string_view status) {
  if (status != "joining" && status != "active" && status != "leaving" && status != "ejected") return false;
  n.status = std::string(status);
  n.ejected = status == "ejected";
  return true;
}

}  // namespace stakegate
