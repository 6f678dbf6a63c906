#pragma once
// SWQoS arithmetic (DESIGN.md): role r gets share_r x capacity; node i of role r gets
// rate_i = max(min_pps_r, share_r x capacity x w_i / W_r), W_r summing non-ejected weights.
// Nodes behind one source address share one bucket whose rate is the sum of theirs.
#include <array>
#include <string>
#include <vector>

#include "stakegate/config/config.h"
#include "stakegate/identity/node.h"

namespace stakegate {

struct RolePlan {
  double share = 0;
  double pps = 0;           // share x capacity.pps
  double bps = 0;           // share x capacity.bps (0: none)
  double total_weight = 0;  // W_r
  size_t nodes = 0;
  size_t ejected = 0;
};

struct NodePlan {
  double rate_pps = 0;
  double rate_bps = 0;
  double burst_pkts = 0;
  uint32_t source = 0;  // index into StakePlan::sources
};

// One policing unit: every address of the nodes it covers maps to it.
struct SourcePlan {
  uint32_t slot = 0;      // stable meter slot (see SlotTable); the plan's index unless assigned
  uint32_t slot_epoch = 0;
  std::vector<IpAddr> addrs;
  std::vector<size_t> nodes;  // indexes into the identity vector
  Role role = Role::kCollection;  // the role of its fastest node; counters are kept under it
  double rate_pps = 0, rate_bps = 0, burst_pkts = 0, burst_bytes = 0;
  bool ejected = false;  // every node behind it is ejected
  bool blocked = false;  // its address or one of its NodeIDs is blocklisted
  bool sampled = false;  // an operator asked for evidence on one of its nodes
  bool all_ports = false;
  std::vector<uint16_t> ports;  // union of its roles' ports
  // The request channel: what the source may send off verified connections.
  double request_pps = 0, request_burst = 0;
};

struct UnregisteredPlan {
  double pool_pps = 0, pool_bps = 0, pool_burst = 0, pool_burst_bytes = 0;
  double per_source_pps = 0, per_source_burst = 0;
};

// A budget shared by many senders: its rate and depth, in packets and (with
// capacity.bps) bytes.
struct PoolPlan {
  double pps = 0, bps = 0, burst = 0, burst_bytes = 0;
};

struct StakePlan {
  std::array<RolePlan, kRoleCount> roles;
  std::vector<NodePlan> nodes;  // parallel to the identity vector
  std::vector<SourcePlan> sources;
  UnregisteredPlan unregistered;
  PoolPlan sessions;  // replies from unregistered senders on sessions the cluster opened
  PoolPlan infra;     // ARP, neighbour discovery, allowed EtherTypes: on-link senders only
  PoolPlan icmp_errors;  // ICMP errors quoting a live session: from anywhere, so a budget of their own
  PoolPlan routing;      // each neighbour's routing protocols (infra.routing), from its own addresses
};

// Throws ConfigError when two nodes share host:port or a node's role has no QoS entry.
StakePlan make_stake_plan(const Config& cfg, const std::vector<NodeIdentity>& nodes);

// The byte budget a role's minimum rate implies: min_pps full-size (1538-byte) frames.
inline constexpr double kFullFrameBytes = 1538;

}  // namespace stakegate
