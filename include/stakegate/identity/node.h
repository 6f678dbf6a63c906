#pragma once
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "stakegate/net/address.h"
#include "stakegate/policy/verdict.h"

namespace stakegate {

// One staked node as the Flow identity table describes it.
struct NodeIdentity {
  std::string node_id;          // 64 lowercase hex characters
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

std::optional<Role> parse_role(std::string_view s);

}  // namespace stakegate
