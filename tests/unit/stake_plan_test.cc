// SWQoS arithmetic: rate_i = max(min_pps, share x capacity x w_i / W_r), W_r over non-ejected nodes.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "stakegate/config/config.h"
#include "stakegate/identity/flow_import.h"
#include "stakegate/policy/stake_plan.h"
#include "test_util.h"

using namespace stakegate;

namespace {

NodeIdentity node(int i, Role r, double w, const char* ip, bool ejected = false) {
  NodeIdentity n;
  char id[65];
  std::snprintf(id, sizeof id, "%064x", i);
  n.node_id = id;
  n.role = r;
  n.weight = w;
  n.ips = {*parse_ip(ip)};
  n.host = ip;
  n.port = static_cast<uint16_t>(3569 + i);
  n.ejected = ejected;
  n.status = ejected ? "ejected" : "active";
  return n;
}

Config config() { return parse_config(stakegate::testing::base_config(), "c.yaml"); }

}  // namespace

TEST(StakePlan, RatesFollowStakeWithinARole) {
  std::vector<NodeIdentity> nodes = {node(1, Role::kConsensus, 100, "198.18.0.1"),
                                     node(2, Role::kConsensus, 300, "198.18.0.2"),
                                     node(3, Role::kAccess, 100, "198.18.0.3")};
  StakePlan p = make_stake_plan(config(), nodes);
  EXPECT_DOUBLE_EQ(p.roles[static_cast<int>(Role::kConsensus)].pps, 50000);
  EXPECT_DOUBLE_EQ(p.roles[static_cast<int>(Role::kConsensus)].total_weight, 400);
  EXPECT_DOUBLE_EQ(p.nodes[0].rate_pps, 12500);  // 50000 x 100/400
  EXPECT_DOUBLE_EQ(p.nodes[1].rate_pps, 37500);
  EXPECT_DOUBLE_EQ(p.nodes[2].rate_pps, 20000);  // alone in its role
  EXPECT_DOUBLE_EQ(p.nodes[0].burst_pkts, 1250);  // 100 ms
  EXPECT_DOUBLE_EQ(p.unregistered.pool_pps, 5000);
  EXPECT_DOUBLE_EQ(p.unregistered.per_source_pps, 10);
  EXPECT_DOUBLE_EQ(p.unregistered.per_source_burst, 1);
}

TEST(StakePlan, MinimumRateAppliesToSmallStake) {
  std::vector<NodeIdentity> nodes = {node(1, Role::kConsensus, 1, "198.18.0.1"),
                                     node(2, Role::kConsensus, 1'000'000, "198.18.0.2")};
  StakePlan p = make_stake_plan(config(), nodes);
  EXPECT_DOUBLE_EQ(p.nodes[0].rate_pps, 100);  // 50000 x 1e-6 = 0.05 < min_pps 100
}

TEST(StakePlan, EjectedNodesLeaveTheRoleWeight) {
  std::vector<NodeIdentity> nodes = {node(1, Role::kConsensus, 100, "198.18.0.1"),
                                     node(2, Role::kConsensus, 300, "198.18.0.2", true)};
  StakePlan p = make_stake_plan(config(), nodes);
  EXPECT_DOUBLE_EQ(p.roles[static_cast<int>(Role::kConsensus)].total_weight, 100);
  EXPECT_DOUBLE_EQ(p.nodes[0].rate_pps, 50000);
  EXPECT_DOUBLE_EQ(p.nodes[1].rate_pps, 0);
  EXPECT_TRUE(p.sources[p.nodes[1].source].ejected);
}

TEST(StakePlan, NodesSharingAHostShareOneBucketWithTheSumOfRates) {
  std::vector<NodeIdentity> nodes = {node(1, Role::kConsensus, 100, "198.18.0.1"),
                                     node(2, Role::kConsensus, 300, "198.18.0.1"),
                                     node(3, Role::kAccess, 100, "198.18.0.1")};
  StakePlan p = make_stake_plan(config(), nodes);
  ASSERT_EQ(p.sources.size(), 1u);
  EXPECT_DOUBLE_EQ(p.sources[0].rate_pps, 12500 + 37500 + 20000);
  EXPECT_EQ(p.sources[0].nodes.size(), 3u);
  EXPECT_EQ(p.sources[0].role, Role::kConsensus);  // counted under its fastest node's role
  EXPECT_EQ(p.sources[0].ports, (std::vector<uint16_t>{3569, 9000}));  // union of the roles' ports
}

TEST(StakePlan, ByteRatesWhenCapacityBpsIsSet) {
  Config c = config();
  c.capacity_bps = 8e9;
  std::vector<NodeIdentity> nodes = {node(1, Role::kConsensus, 100, "198.18.0.1"),
                                     node(2, Role::kConsensus, 300, "198.18.0.2")};
  StakePlan p = make_stake_plan(c, nodes);
  EXPECT_DOUBLE_EQ(p.nodes[0].rate_bps, 0.5 * 8e9 * 0.25);
}

TEST(StakePlan, RefusesANodeWhoseRoleHasNoQos) {
  std::vector<NodeIdentity> nodes = {node(1, Role::kExecution, 100, "198.18.0.1")};
  try {
    make_stake_plan(config(), nodes);
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_THAT(e.what(), ::testing::HasSubstr("c.yaml: roles.execution: missing, but node"));
  }
}

TEST(StakePlan, BlocklistByNodeIdAndCidrMarksSources) {
  Config c = config();
  c.blocklist.push_back({parse_cidr("198.18.0.0/31"), "", "range"});
  c.blocklist.push_back({std::nullopt, std::string(63, '0') + "3", "node"});
  std::vector<NodeIdentity> nodes = {node(1, Role::kConsensus, 100, "198.18.0.1"),
                                     node(2, Role::kConsensus, 300, "198.18.0.2"),
                                     node(3, Role::kAccess, 100, "198.18.0.3")};
  StakePlan p = make_stake_plan(c, nodes);
  EXPECT_TRUE(p.sources[p.nodes[0].source].blocked);
  EXPECT_FALSE(p.sources[p.nodes[1].source].blocked);
  EXPECT_TRUE(p.sources[p.nodes[2].source].blocked);
}
