// The operations layer: each change publishes a complete new snapshot, a refused change
// leaves everything as it was, and meter slots stay with their source across swaps.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "packet_builder.h"
#include "tcp_flow.h"
#include "stakegate/base/files.h"
#include "stakegate/control/policy_state.h"
#include "stakegate/pipeline/worker.h"
#include "test_util.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <utime.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <ctime>

using namespace stakegate;
using ::testing::HasSubstr;
using ::testing::Not;

namespace {

NodeIdentity node(const std::string& id_suffix, Role r, const std::string& addr) {
  NodeIdentity n;
  n.node_id = std::string(64 - id_suffix.size(), 'b') + id_suffix;
  n.role = r;
  n.address = addr;
  split_host_port(addr, n.host, n.port);
  return n;
}

class PolicyStateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = dir_.file("c.yaml", stakegate::testing::base_config());
    make(0);
  }
  void make(size_t capacity) {
    publisher_.published.clear();
    state_ = std::make_unique<PolicyState>(load_policy(path_), 1, capacity, &publisher_, 0, [this] { return now_; },
                                           [this] { return steady_; });
  }
  // The warnings when the table `nodes` arrives through the API at a gateway started from `config`.
  std::vector<std::string> arriving(const std::string& config, std::vector<NodeIdentity> nodes) {
    path_ = config;
    make(0);
    return replace(std::move(nodes)).warnings;
  }
  // These tests replace whole small tables: past the removal guard unless `force` is false.
  PolicyState::Change replace(std::vector<NodeIdentity> nodes, bool force = true) {
    IdentityUpload up;
    up.nodes = std::move(nodes);
    up.force = force;
    return state_->replace_identities(std::move(up));
  }
  uint32_t slot_of(const std::string& ip) const { return state_->snapshot()->find_v4(parse_ip(ip)->v4); }

  stakegate::testing::TempDir dir_;
  std::string path_;
  struct Recording : Publisher {
    void publish(std::shared_ptr<const PolicySnapshot> s) override { published.push_back(std::move(s)); }
    bool wait_applied() override { ++waits; return true; }
    std::vector<std::shared_ptr<const PolicySnapshot>> published;
    int waits = 0;
  } publisher_;
  std::vector<std::shared_ptr<const PolicySnapshot>>& published_ = publisher_.published;
  int64_t now_ = 0;     // the wall clock (Unix seconds)
  int64_t steady_ = 0;  // the steady clock (seconds)
  std::unique_ptr<PolicyState> state_;
};

// The first warning that contains `needle`, or "".
std::string warning_with(const std::vector<std::string>& warnings, const std::string& needle) {
  for (const auto& w : warnings)
    if (w.find(needle) != std::string::npos) return w;
  return {};
}
}  // namespace

TEST_F(PolicyStateTest, PublishesTheFirstSnapshot) {
  ASSERT_EQ(published_.size(), 1u);
  EXPECT_EQ(state_->generation(), 1u);
  EXPECT_EQ(state_->nodes().size(), 3u);
  EXPECT_EQ(state_->source_capacity(), 65536u);
}

TEST_F(PolicyStateTest, ReplaceKeepsSlotsOfRemainingSources) {
  uint32_t a = slot_of("198.18.1.1"), b = slot_of("198.18.1.2");
  auto ch = replace({node("02", Role::kConsensus, "198.18.1.2:3569"),
                                        node("05", Role::kConsensus, "198.18.1.5:3569")});
  EXPECT_EQ(ch.generation, 2u);
  EXPECT_EQ(ch.added, 2u);    // the NodeIDs are new
  EXPECT_EQ(ch.removed, 3u);
  EXPECT_EQ(slot_of("198.18.1.2"), b);  // same address, same meter slot
  EXPECT_EQ(slot_of("198.18.1.1"), PolicySnapshot::kNoSource);
  EXPECT_NE(slot_of("198.18.1.5"), a);  // a never-used slot before reusing a's
  EXPECT_EQ(published_.size(), 2u);
  EXPECT_EQ(published_.back()->base_generation, 1u);
}

// DNS never refuses a table: the node whose name fails stays, without an address, and the
// change says so; the others are applied.
TEST_F(PolicyStateTest, ANameThatDoesNotResolveDoesNotRefuseTheTable) {
  auto ch = replace({node("01", Role::kConsensus, "no-such-host.invalid:3569"), node("02", Role::kConsensus, "198.18.1.2:3569"),
                     node("03", Role::kAccess, "[2001:2::3]:3569")});
  ASSERT_EQ(state_->nodes().size(), 3u);
  EXPECT_TRUE(state_->nodes()[*state_->find_node(std::string(62, 'b') + "01")].ips.empty());
  EXPECT_NE(slot_of("198.18.1.2"), PolicySnapshot::kNoSource);
  EXPECT_EQ(slot_of("198.18.1.1"), PolicySnapshot::kNoSource);
  ASSERT_EQ(ch.warnings.size(), 1u);
  EXPECT_THAT(ch.warnings[0], HasSubstr("host 'no-such-host.invalid' does not resolve"));
  EXPECT_FALSE(state_->refresh_addresses());  // the cache has nothing new: no publish
}

TEST_F(PolicyStateTest, RefusedChangesLeaveEverythingAsItWas) {
  auto before = state_->snapshot();
  auto expect_refused = [&](auto&& op, const char* needle) {
    try {
      op();
      ADD_FAILURE() << "accepted";
    } catch (const std::exception& e) {
      EXPECT_THAT(e.what(), HasSubstr(needle));
    }
    EXPECT_EQ(state_->snapshot(), before);
    EXPECT_EQ(published_.size(), 1u);
    EXPECT_EQ(state_->nodes().size(), 3u);
  };
  expect_refused([&] { replace({node("01", Role::kConsensus, "198.18.1.1:3569"),
                                                   node("01", Role::kAccess, "198.18.1.9:3569")}); },
                 "appears twice");
  expect_refused([&] { replace({node("01", Role::kConsensus, "198.18.1.1:3569"),
                                                   node("02", Role::kAccess, "198.18.1.1:3569")}); },
                 "share the address 198.18.1.1:3569");
  expect_refused([&] { replace({node("01", Role::kExecution, "198.18.1.1:3569")}); },
                 "roles.execution: missing");
  RoleQosPatch q;
  q.share = 0.9;
  expect_refused([&] { state_->set_role_qos("access", q); }, "shares sum to");
  expect_refused([&] { state_->set_role_qos("auditor", q); }, "unknown role");
  expect_refused([&] { state_->block("", std::string(64, 'f'), "", 0); }, "not in the identity table");
  expect_refused([&] { state_->block("", "xyz", "", 0); }, "64 hex characters");
  expect_refused([&] { state_->block("198.51.100.0/24", "", "", ~uint64_t{0}); }, "at most");
  expect_refused([&] { state_->unblock("198.51.100.0/24", ""); }, "no blocklist entry");
  expect_refused([&] { state_->unblock("198.51.100.0/33", ""); }, "bad CIDR");
  expect_refused([&] { state_->block("0.0.0.0/0", "", "", 0); }, "refused '0.0.0.0/0': a /0 blocks every IPv4 source");
  expect_refused([&] { state_->block("::/0", "", "", 0); }, "a /0 blocks every IPv6 source");
  expect_refused([&] { state_->block("fe80::/10", "", "", 0); }, "link-local addresses (fe80::/10)");
  dir_.file("c.yaml", stakegate::testing::base_config() + "capacity: {pps: -1}\n");
  expect_refused([&] { state_->reload(); }, "c.yaml");
}

TEST_F(PolicyStateTest, BlockUnblockAndExpiry) {
  now_ = 5000;
  steady_ = 70;
  state_->block("198.18.1.0/30", "", "test", 1000);
  EXPECT_EQ(state_->blocklist().back().expires_at, 6000);
  EXPECT_EQ(publisher_.waits, 1);  // a change returns once the workers apply it
  EXPECT_TRUE(state_->snapshot()->source(slot_of("198.18.1.1")).flags & SourcePolicy::kBlocked);
  now_ = 5999;
  steady_ = 1069;
  EXPECT_FALSE(state_->expire());
  now_ = 6000;
  steady_ = 1070;
  EXPECT_TRUE(state_->expire());
  EXPECT_FALSE(state_->snapshot()->source(slot_of("198.18.1.1")).flags & SourcePolicy::kBlocked);
  std::string upper = state_->nodes()[1].node_id;
  std::transform(upper.begin(), upper.end(), upper.begin(), ::toupper);
  state_->block("", upper, "", 0);  // a NodeID in either case
  EXPECT_EQ(state_->blocklist().back().entry.node_id, state_->nodes()[1].node_id);
  EXPECT_TRUE(state_->snapshot()->source(slot_of("198.18.1.2")).flags & SourcePolicy::kBlocked);
  auto ch = state_->unblock("", upper);
  EXPECT_EQ(ch.removed, 1u);
  EXPECT_FALSE(state_->snapshot()->source(slot_of("198.18.1.2")).flags & SourcePolicy::kBlocked);
}

// NTP may step the wall clock (a gateway started before the clock was right); a block
// lasts the time it was given on the steady clock, across a restart too, and shows when
// it ends by the wall clock as it reads now. (By the wall clock, a step forward ended a
// block at once; a step back kept it for as long as the clock stepped.)
TEST_F(PolicyStateTest, ABlockLastsItsTimeWhateverTheWallClockDoes) {
  const int64_t day = 86400;
  now_ = 5000;
  steady_ = 100;
  state_->persist_blocks_in(dir_.path() + "/state");
  state_->block("198.18.1.0/30", "", "first", 1000);
  state_->block("198.18.2.0/30", "", "second", 1000);
  now_ += day;  // stepped forward
  steady_ = 101;
  EXPECT_FALSE(state_->expire());
  EXPECT_EQ(state_->blocklist().back().expires_at, now_ + 999);
  now_ -= 2 * day;  // and back
  steady_ = 1099;
  EXPECT_FALSE(state_->expire());
  EXPECT_EQ(state_->blocklist().back().expires_at, now_ + 1);
  steady_ = 1100;
  EXPECT_TRUE(state_->expire());
  EXPECT_TRUE(state_->blocklist().empty());

  // Saved with the wall clock's end. Restored by a restart whose wall clock is ten years
  // behind (NTP not there yet), it ends at that saved end once the clock is corrected (by
  // what was left of it at start on the steady clock, it would last ten years).
  now_ = 5000;
  steady_ = 100;
  state_->block("198.18.1.0/30", "", "third", 1000);  // saved: ends at 6000
  now_ = 5500 - 3650 * day;
  steady_ = 7;
  make(0);
  state_->persist_blocks_in(dir_.path() + "/state");
  state_->restore_blocks();
  ASSERT_EQ(state_->blocklist().size(), 1u);
  EXPECT_EQ(state_->blocklist()[0].expires_at, 6000);
  EXPECT_FALSE(state_->expire());
  now_ = 5500;  // corrected
  steady_ = 9;
  EXPECT_FALSE(state_->expire());
  EXPECT_EQ(state_->blocklist()[0].expires_at, 6000);
  now_ = 6000;
  EXPECT_TRUE(state_->expire());
}

// A blocks file written by a version that took a /0: the other blocks come back, that one
// does not, and the warning says so.
TEST_F(PolicyStateTest, ARestartDoesNotRestoreABlockThatCutsTheClusterOff) {
  const std::string state = dir_.path() + "/state";
  std::filesystem::create_directories(state);
  dir_.file("state/blocks.json", R"({"version": 1, "blocks": [
    {"cidr": "0.0.0.0/0", "node_id": "", "reason": "oops", "expires_at": 0},
    {"cidr": "203.0.113.0/24", "node_id": "", "reason": "scanner", "expires_at": 0}]})");
  state_->persist_blocks_in(state);
  auto warnings = state_->restore_blocks();
  ASSERT_EQ(state_->blocklist().size(), 1u);
  EXPECT_EQ(state_->blocklist()[0].entry.cidr->to_string(), "203.0.113.0/24");
  EXPECT_THAT(::testing::PrintToString(warnings),
              HasSubstr("the block of 0.0.0.0/0 is not restored: a /0 blocks every IPv4 source"));
  EXPECT_THAT(::testing::PrintToString(warnings), HasSubstr("restored 1 blocks"));
}

// Nodes of the table inside cluster.prefixes are the cluster's own: the plan marks them,
// and a config that puts most of the table there (every packet of theirs from the outside
// would be spoofed) is warned about.
TEST_F(PolicyStateTest, NodesInsideTheClusterPrefixesAreMarkedAndMostOfTheTableWarned) {
  const std::string cfg = stakegate::testing::base_config();
  auto with_cluster = [&](const std::string& prefixes) {
    std::string c = cfg;
    const size_t at = c.find("cluster:");
    return load_policy(dir_.file("k.yaml", c.replace(at, c.find('\n', at) - at, "cluster: {prefixes: [" + prefixes + "]}")));
  };
  auto warned = [](const LoadedPolicy& p) {
    return std::any_of(p.warnings.begin(), p.warnings.end(), [](const std::string& w) {
      return w.find("nodes of the identity table have addresses inside cluster.prefixes") != std::string::npos;
    });
  };
  LoadedPolicy one = with_cluster("198.18.1.1/32");  // one of three: the cluster's own node
  EXPECT_FALSE(warned(one));
  const std::string plan = describe_plan(one);
  EXPECT_THAT(plan, HasSubstr("cluster: 198.18.1.1/32 (1 nodes of the table inside"));
  auto row = [&](const std::string& address) {
    const size_t at = plan.find(address);
    return at == std::string::npos ? std::string() : plan.substr(at, plan.find('\n', at) - at);
  };
  EXPECT_THAT(row("198.18.1.1:3569"), HasSubstr("active,in-cluster"));
  EXPECT_THAT(row("198.18.1.2:3569"), Not(HasSubstr("in-cluster")));
  LoadedPolicy most = with_cluster("198.18.0.0/16, \"2001:2::/64\"");
  EXPECT_TRUE(warned(most));
  EXPECT_THAT(::testing::PrintToString(most.warnings), HasSubstr("3 of the 3 nodes"));
}

// A node of the cluster's own that publishes a port its peers' roles do not allow would get
// none of their connections (port_denied): said at load, and when a table arrives later.
TEST_F(PolicyStateTest, AClusterNodeOnAPortItsPeersMayNotReachIsWarned) {
  auto closed = [](const std::vector<std::string>& warnings) {
    return warning_with(warnings, "takes its peers' connections on port");
  };
  std::string cfg = stakegate::testing::base_config();
  const size_t at = cfg.find("cluster:");
  cfg.replace(at, cfg.find('\n', at) - at, "cluster: {prefixes: [198.18.1.1/32]}");
  EXPECT_EQ(closed(load_policy(dir_.file("open.yaml", cfg)).warnings), "");  // 3569: every role allows it
  const std::string moved = dir_.file("moved.yaml", std::string(cfg).replace(cfg.find("198.18.1.1:3569"), 15, "198.18.1.1:3570"));
  const std::string w = closed(load_policy(moved).warnings);
  EXPECT_THAT(w, HasSubstr(moved + ": node aa000000 (consensus, 198.18.1.1:3570) takes its peers' connections on port "
                                   "3570, which the ports of consensus, access do not allow"));
  EXPECT_THAT(w, HasSubstr("dropped as port_denied"));
  // A node outside the prefixes (a peer) may publish any port: nothing dials it through here.
  EXPECT_EQ(closed(load_policy(dir_.file("peer.yaml", std::string(cfg).replace(cfg.find("198.18.1.2:3569"), 15,
                                                                               "198.18.1.2:3570"))).warnings),
            "");
  // A table that arrives through the API is checked the same way.
  EXPECT_THAT(closed(arriving(dir_.file("c2.yaml", cfg),
                              {node("aa00000000000000000000000000000000000000000000000000000000000001", Role::kConsensus,
                                    "198.18.1.1:4000"),
                               node("aa00000000000000000000000000000000000000000000000000000000000003", Role::kAccess,
                                    "198.18.1.3:3569")})),
              HasSubstr("port 4000, which the ports of consensus, access do not allow"));
}

// The cluster's own access node serves the public; with no public port listed, nobody
// without stake reaches it: said at load, and when a table arrives later.
TEST_F(PolicyStateTest, AClusterAccessNodeWithNoPublicPortIsWarned) {
  auto closed = [](const std::vector<std::string>& warnings) {
    return warning_with(warnings, "serves the public Access API");
  };
  std::string cfg = stakegate::testing::base_config();
  const std::string line = "unregistered: {share: 0.05, per_source_pps: 10, ports: [9000]}";
  const size_t at = cfg.find("cluster:");
  cfg.replace(at, cfg.find('\n', at) - at, "cluster: {prefixes: [\"2001:2::3/128\"]}");  // the access node
  EXPECT_EQ(closed(load_policy(dir_.file("open.yaml", cfg)).warnings), "");
  std::string shut = cfg;
  shut.replace(shut.find(line), line.size(), "unregistered: {share: 0.05}");
  const std::string path = dir_.file("shut.yaml", shut);
  EXPECT_THAT(closed(load_policy(path).warnings),
              HasSubstr(path + ": the cluster's own access node aa000000 ([2001:2::3]:3569) serves the public Access API, "
                               "but unregistered.ports is empty: no client without stake reaches it"));
  // Only the cluster's own: an access node elsewhere is not served through this gateway.
  std::string elsewhere = shut;
  elsewhere.replace(elsewhere.find("2001:2::3/128"), 13, "198.18.1.1/32");
  EXPECT_EQ(closed(load_policy(dir_.file("elsewhere.yaml", elsewhere)).warnings), "");
  // A table that arrives through the API is checked the same way.
  EXPECT_THAT(closed(arriving(path, {node("aa00000000000000000000000000000000000000000000000000000000000003",
                                          Role::kAccess, "[2001:2::3]:3569")})),
              HasSubstr("access node aa000000 ([2001:2::3]:3569) serves"));
}

// Public ports with a budget that lets nothing through them look open and are not: said.
// A per-source rate left out is 50 pps, not 0 (which dropped every public packet).
TEST_F(PolicyStateTest, PublicPortsNothingCanReachAreWarned) {
  auto closed = [](const LoadedPolicy& p) { return warning_with(p.warnings, "no unregistered packet can pass"); };
  const std::string cfg = stakegate::testing::base_config();
  const std::string line = "unregistered: {share: 0.05, per_source_pps: 10, ports: [9000]}";
  auto with = [&](const std::string& name, const std::string& unregistered) {
    std::string c = cfg;
    return load_policy(dir_.file(name, c.replace(c.find(line), line.size(), unregistered)));
  };
  EXPECT_EQ(closed(load_policy(dir_.file("open.yaml", cfg))), "");
  LoadedPolicy defaulted = with("default.yaml", "unregistered: {share: 0.05, ports: [9000]}");
  EXPECT_EQ(closed(defaulted), "");
  EXPECT_DOUBLE_EQ(defaulted.cfg.unregistered.per_source_pps, 50);
  EXPECT_THAT(describe_plan(defaulted), HasSubstr("per source 50 pps (burst 5; a new source 1 until its TCP handshake)"));
  // capacity 100,000 pps x 0.05 x 100 ms
  EXPECT_THAT(describe_plan(defaulted),
              HasSubstr("pool burst 500; reserves only clients' verified TCP connections take: 250 in the pool, 2.5 per source"));
  EXPECT_THAT(describe_plan(with("burst.yaml", "unregistered: {share: 0.05, burst_ms: 500, ports: [9000]}")),
              HasSubstr("per source 50 pps (burst 25;"));
  const std::string no_share = closed(with("no-share.yaml", "unregistered: {ports: [9000, 8000]}"));
  EXPECT_THAT(no_share, HasSubstr("no-share.yaml: unregistered.share is 0: no unregistered packet can pass, though "
                                  "unregistered.ports lists 8000,9000"));
  LoadedPolicy zero = with("zero.yaml", "unregistered: {share: 0.05, per_source_pps: 0, ports: [9000]}");
  EXPECT_THAT(closed(zero), HasSubstr("zero.yaml: unregistered.per_source_pps is 0: no unregistered packet can pass"));
  EXPECT_THAT(describe_plan(zero), Not(HasSubstr("reserves")));  // nothing passes: no reserve to speak of
  EXPECT_THAT(closed(with("both.yaml", "unregistered: {share: 0, per_source_pps: 0, ports: [9000]}")),
              HasSubstr("unregistered.share is 0 and unregistered.per_source_pps is 0"));
  EXPECT_EQ(closed(with("none.yaml", "unregistered: {share: 0}")), "");  // no public port: nothing to reach
  // Echo requests are a public service too: said when nothing can reach it, named in the plan.
  EXPECT_THAT(closed(with("ping.yaml", "unregistered: {icmp_echo: true}")),
              HasSubstr("no unregistered packet can pass, though unregistered.icmp_echo is on; set unregistered.share "
                        "(e.g. 0.05) and per_source_pps (e.g. 50), or turn icmp_echo off"));
  EXPECT_THAT(describe_plan(with("ping-open.yaml", "unregistered: {share: 0.05, ports: [9000], icmp_echo: true}")),
              HasSubstr("ports 9000 and ICMP echo requests\n"));
}

// Staked nodes whose rate comes out at 0 (share 0 and min_pps 0) lose all their traffic:
// said at load and when a QoS change does it.
TEST_F(PolicyStateTest, NodesLeftWithARateOfZeroAreWarned) {
  auto silenced = [](const std::vector<std::string>& warnings) { return warning_with(warnings, "a rate of 0 pps"); };
  std::string cfg = stakegate::testing::base_config();
  const std::string line = "consensus: {share: 0.5, min_pps: 100, ports: [3569]}";
  EXPECT_EQ(silenced(load_policy(dir_.file("ok.yaml", cfg)).warnings), "");
  const std::string zero = dir_.file("zero.yaml", std::string(cfg).replace(cfg.find(line), line.size(),
                                                                           "consensus: {share: 0, ports: [3569]}"));
  EXPECT_THAT(silenced(load_policy(zero).warnings),
              HasSubstr(zero + ": 2 staked nodes get a rate of 0 pps (aa000000 (consensus), aa000000 (consensus))"));
  // A minimum rate keeps them reachable: no warning.
  EXPECT_EQ(silenced(load_policy(dir_.file("min.yaml", std::string(cfg).replace(cfg.find(line), line.size(),
                                                                                "consensus: {share: 0, min_pps: 5}")))
                         .warnings),
            "");
  RoleQosPatch q;
  q.share = 0;
  q.min_pps = 0;
  EXPECT_THAT(silenced(state_->set_role_qos("access", q).warnings),
              HasSubstr("roles.access: 1 staked node gets a rate of 0 pps (aa000000 (access))"));
  q.min_pps = 1;
  EXPECT_EQ(silenced(state_->set_role_qos("access", q).warnings), "");
}

// Budgets the cluster's reachability rests on, set to 0, are accepted and warned.
TEST_F(PolicyStateTest, BudgetsThatCutTheClusterOffAreWarned) {
  auto load = [&](const std::string& name, const std::string& tail) {
    return load_policy(dir_.file(name, stakegate::testing::base_config("", tail))).warnings;
  };
  const std::vector<std::string> normal = load("normal.yaml", "infra: {pps: 10}\nsessions: {share: 0.01}\n");
  for (const char* key : {"infra.pps is 0", "infra.icmp_errors_pps is 0", "sessions.share is 0", "request_channel.fraction"})
    EXPECT_EQ(warning_with(normal, key), "") << key;
  const auto infra = load("infra.yaml", "infra: {pps: 0}\n");
  EXPECT_THAT(warning_with(infra, "infra.pps is 0"), HasSubstr("the router cannot resolve the cluster's addresses"));
  EXPECT_THAT(warning_with(infra, "infra.icmp_errors_pps is 0"), HasSubstr("breaks path MTU discovery"));  // its default
  EXPECT_EQ(warning_with(load("own.yaml", "infra: {pps: 0, icmp_errors_pps: 5}\n"), "infra.icmp_errors_pps is 0"), "");
  EXPECT_THAT(warning_with(load("icmp.yaml", "infra: {icmp_errors_pps: 0}\n"), "infra.icmp_errors_pps is 0"),
              HasSubstr("icmp.yaml: "));
  EXPECT_THAT(warning_with(load("sessions.yaml", "sessions: {share: 0}\n"), "sessions.share is 0"),
              HasSubstr("DNS resolvers, NTP and HTTPS servers"));
  EXPECT_THAT(warning_with(load("requests.yaml", "request_channel: {fraction: 0, min_pps: 0}\n"),
                           "request_channel.fraction and request_channel.min_pps are 0"),
              HasSubstr("no peer can open a connection to the cluster"));
  EXPECT_EQ(warning_with(load("floor.yaml", "request_channel: {fraction: 0}\n"), "request_channel.fraction"), "");
}

// The plan names the neighbours and the addresses only their MACs may claim.
TEST_F(PolicyStateTest, ThePlanNamesTheGuardedNeighbourAddresses) {
  const std::string plan = describe_plan(load_policy(dir_.file(
      "n.yaml", stakegate::testing::base_config(
                    "", "infra: {neighbours: [\"02:aa:00:00:00:02\", {mac: \"02:aa:00:00:00:01\", addresses: [198.51.100.1, \"fe80::1\"]}]}\n"))));
  EXPECT_THAT(plan, HasSubstr("neighbours with a budget of their own (as large): 02:aa:00:00:00:02, 02:aa:00:00:00:01\n"));
  EXPECT_THAT(plan, HasSubstr("about these addresses pass only from their MACs (else spoofed): 198.51.100.1 at "
                              "02:aa:00:00:00:01, fe80::1 at 02:aa:00:00:00:01\n"));
  EXPECT_THAT(plan, Not(HasSubstr("routing")));
  const std::string routing = describe_plan(load_policy(dir_.file(
      "r.yaml", stakegate::testing::base_config(
                    "", "infra: {neighbours: [{mac: \"02:aa:00:00:00:01\", addresses: [198.51.100.1]}], "
                        "routing: [ospf, bgp], routing_pps: 500}\n"))));
  EXPECT_THAT(routing, HasSubstr("routing            -          500  per neighbour: bgp, ospf from its MAC and listed "
                                 "addresses, sent on the link (TTL/hop limit 255, or to a link-local group)\n"));
}

// A QoS change that leaves the default sessions share no room applies (the cluster's own
// replies keep their budget, on top of the others) and says so; one past 1 without it is
// refused as before.
TEST_F(PolicyStateTest, AQosChangeLeavingTheDefaultSessionsShareNoRoomIsWarned) {
  const double sessions_pps = state_->plan().sessions.pps;
  ASSERT_GT(sessions_pps, 0);
  RoleQosPatch q;
  q.share = 0.45;  // consensus 0.5 + access 0.45 + unregistered 0.05 = 1
  PolicyState::Change ch = state_->set_role_qos("access", q);
  ASSERT_EQ(ch.warnings.size(), 1u);
  EXPECT_THAT(ch.warnings[0], HasSubstr("sessions.share is not set"));
  EXPECT_DOUBLE_EQ(state_->plan().sessions.pps, sessions_pps);
  q.share = 0.4;
  EXPECT_TRUE(state_->set_role_qos("access", q).warnings.empty());
  q.share = 0.46;
  EXPECT_THROW(state_->set_role_qos("access", q), OpError);
}

// A table that arrives later (the API, a fetch, a watched file) is checked the same way.
TEST_F(PolicyStateTest, AReplacedTableMostlyInsideTheClusterPrefixesIsWarnedAbout) {
  const std::string warning = "nodes of the identity table have addresses inside cluster.prefixes";
  auto ch = replace({node("1", Role::kConsensus, "198.18.255.1:3569"), node("2", Role::kConsensus, "198.18.1.2:3569"),
                     node("3", Role::kAccess, "198.18.1.3:9000")});
  EXPECT_THAT(::testing::PrintToString(ch.warnings), Not(HasSubstr(warning)));  // one: the cluster's own node
  ch = replace({node("1", Role::kConsensus, "198.18.255.1:3569"), node("2", Role::kConsensus, "198.18.255.2:3569"),
                node("3", Role::kAccess, "198.18.1.3:9000")});
  EXPECT_THAT(::testing::PrintToString(ch.warnings), HasSubstr("2 of the 3 " + warning));
  EXPECT_EQ(state_->nodes().size(), 3u);  // a warning, not a refusal
}

// A block inside cluster.prefixes changes nothing (those sources are spoofed from the
// outside; the blocklist never applies inside): accepted, with a warning that says so.
TEST_F(PolicyStateTest, ABlockInsideTheClusterPrefixesIsWarnedAbout) {
  auto ch = state_->block("198.18.255.128/25", "", "", 0);
  EXPECT_THAT(::testing::PrintToString(ch.warnings),
              HasSubstr("198.18.255.128/25 lies inside cluster.prefixes (198.18.255.0/24)"));
  ch = state_->block("198.18.0.0/16", "", "", 0);  // wider than the cluster: it blocks others too
  EXPECT_THAT(::testing::PrintToString(ch.warnings), Not(HasSubstr("lies inside cluster.prefixes")));
  LoadedPolicy p = load_policy(dir_.file("b.yaml", stakegate::testing::base_config("", "blocklist: [{cidr: \"2001:2::ff\"}]\n")));
  EXPECT_THAT(::testing::PrintToString(p.warnings),
              HasSubstr("b.yaml: blocklist[0].cidr: 2001:2::ff/128 lies inside cluster.prefixes (2001:2::ff/128)"));
}

TEST_F(PolicyStateTest, ReloadReadsTheFileAndKeepsApiBlocks) {
  state_->block("203.0.113.0/24", "", "", 0);
  dir_.file("c.yaml", stakegate::testing::base_config("", "blocklist: [{cidr: 198.51.100.0/24}]\n"));
  auto ch = state_->reload();
  ASSERT_EQ(state_->blocklist().size(), 2u);
  EXPECT_EQ(state_->blocklist()[0].origin, "config");
  EXPECT_EQ(state_->blocklist()[1].origin, "api");
  EXPECT_EQ(ch.generation, 3u);
}

// What a reload cannot apply (the ports, the listeners) is said and kept as it runs, so
// that the config the gateway reports is the one in force; what it can is applied.
TEST_F(PolicyStateTest, AReloadSaysWhatTakesEffectOnlyAtTheNextStart) {
  auto warned = [](const PolicyState::Change& ch, const std::string& what) {
    return std::any_of(ch.warnings.begin(), ch.warnings.end(), [&](const std::string& w) { return w.find(what) != std::string::npos; });
  };
  std::string text = stakegate::testing::base_config();
  auto edit = [&](const std::string& from, const std::string& to) { text.replace(text.find(from), from.size(), to); };
  edit("  inside: {vdev: \"net_null1\"}", "  inside: {vdev: \"net_null1\"}\n  mtu: 9000");
  edit("capacity: {pps: 100000}", "capacity: {pps: 200000}");
  dir_.file("c.yaml", text + "control: {metrics: \"127.0.0.1:9100\", socket_mode: 0600, max_connections: 4,\n"
                             "  metrics_basic_auth: {prom: \"$2b$04$abcdefghijklmnopqrstuu5gG3O9rX6d9DG0hhw3e0iE7l5T2LvS.\"}}\n");
  auto ch = state_->reload();
  EXPECT_TRUE(warned(ch, "dataplane settings changed in " + path_ + ": they take effect at the next start"));
  EXPECT_TRUE(warned(ch, "control.socket_mode, control.metrics, control.max_connections changed in " + path_ +
                             ": the listeners keep their settings until the next start"));
  EXPECT_EQ(state_->config().dataplane.mtu, 0u);                  // as it runs
  EXPECT_EQ(state_->config().control.metrics, "127.0.0.1:9469");
  EXPECT_EQ(state_->config().control.socket_mode, 0660u);
  EXPECT_EQ(state_->config().control.metrics_users.size(), 1u);  // applied: re-read on reload
  EXPECT_EQ(state_->config().capacity_pps, 200000);
  // Each reload says it again while the file differs from what runs; the running values
  // back in the file, nothing.
  EXPECT_TRUE(warned(state_->reload(), "control.socket_mode, control.metrics"));
  dir_.file("c.yaml", stakegate::testing::base_config());
  ch = state_->reload();
  EXPECT_FALSE(warned(ch, "take effect at the next start"));
  EXPECT_FALSE(warned(ch, "until the next start"));
}

TEST_F(PolicyStateTest, CapacityIsEnforcedAndSlotsAreReusedWithANewEpoch) {
  make(3);
  uint32_t old_slot = slot_of("198.18.1.1");
  uint32_t old_epoch = state_->snapshot()->source(old_slot).epoch;
  EXPECT_THROW(replace({node("01", Role::kConsensus, "198.18.1.1:3569"),
                                           node("02", Role::kConsensus, "198.18.1.2:3569"),
                                           node("03", Role::kConsensus, "198.18.1.3:3569"),
                                           node("04", Role::kConsensus, "198.18.1.4:3569")}),
               OpError);
  replace({node("07", Role::kConsensus, "198.18.1.7:3569")});
  uint32_t s = slot_of("198.18.1.7");
  EXPECT_LT(s, 3u);
  EXPECT_NE(state_->snapshot()->source(s).epoch, old_epoch);
}

// Worker + swaps: a source's bucket and counters survive, a removed node stops at once,
// and a reused slot starts afresh.
TEST_F(PolicyStateTest, WorkerKeepsMetersAcrossSwaps) {
  Worker w(1024, state_->source_capacity());
  w.bind(state_->snapshot().get());
  auto pass = [&](const std::vector<uint8_t>& b, uint64_t now, bool inside = false) {
    PacketView v{b.data(), static_cast<uint32_t>(b.size())};
    Verdict out = Verdict::kPass;
    if (inside) w.process_inside(&v, 1, now);
    else w.process_outside(&v, 1, now, &out);
    return out;
  };
  // 198.18.1.1 connects to the cluster (a verified connection): 12500 pps, burst 1250.
  stakegate::testing::TcpFlow flow;
  pass(flow.remote_syn(), 0);
  pass(flow.local_syn_ack(), 0, true);
  auto send = [&](const char*, uint64_t now) { return pass(flow.remote_data(), now); };
  // Spend the whole burst.
  int passed = 0;
  for (int i = 0; i < 1300; ++i) passed += send("198.18.1.1", 0) == Verdict::kPass;
  EXPECT_EQ(passed, 1250);
  uint32_t slot = slot_of("198.18.1.1");
  // A new table with the same address (another role even): the bucket stays empty.
  replace({node("01", Role::kConsensus, "198.18.1.1:3569"), node("02", Role::kAccess, "198.18.1.2:3569")});
  w.bind(state_->snapshot().get());
  EXPECT_EQ(send("198.18.1.1", 0), Verdict::kOverRate);
  EXPECT_EQ(w.meter(slot).passed, 1250u);
  EXPECT_EQ(w.meter(slot).dropped_over_rate, 51u);
  // Removed: its packets are now from an unknown source, on a private port.
  replace({node("02", Role::kAccess, "198.18.1.2:3569")});
  w.bind(state_->snapshot().get());
  EXPECT_EQ(send("198.18.1.1", 1'000'000'000), Verdict::kUnregistered);
  // Back again: it finds its counters.
  replace({node("01", Role::kConsensus, "198.18.1.1:3569"), node("02", Role::kAccess, "198.18.1.2:3569")});
  w.bind(state_->snapshot().get());
  EXPECT_EQ(slot_of("198.18.1.1"), slot);
  EXPECT_EQ(send("198.18.1.1", 2'000'000'000), Verdict::kPass);
  EXPECT_EQ(w.meter(slot).passed, 1251u);
}

TEST_F(PolicyStateTest, TheBlocklistLimitRefusesMoreEntriesAndChangesNothing) {
  path_ = dir_.file("c.yaml", stakegate::testing::base_config("", "limits: {blocklist: 3}\n"));
  make(0);
  for (int i = 0; i < 3; ++i) state_->block("198.51.100." + std::to_string(i) + "/32", "", "", 0);
  const uint64_t gen = state_->generation();
  try {
    state_->block("198.51.100.9/32", "", "", 0);
    FAIL() << "a fourth entry was accepted";
  } catch (const OpError& e) {
    EXPECT_EQ(e.code(), "resource_exhausted");
    EXPECT_THAT(e.what(), ::testing::HasSubstr("limits.blocklist"));
  }
  EXPECT_EQ(state_->generation(), gen);
  EXPECT_EQ(state_->blocklist().size(), 3u);
  EXPECT_NO_THROW(state_->block("198.51.100.1/32", "", "", 0));  // refreshing an existing entry is not a new one
  // A config listing more than the limit is refused when loaded, naming the key.
  EXPECT_THROW(parse_config(stakegate::testing::base_config("", "limits: {blocklist: 1}\nblocklist: [{cidr: 198.51.100.0/32}, {cidr: 198.51.100.1/32}]\n"), "x.yaml"),
               ConfigError);
}

TEST_F(PolicyStateTest, ATableRemovingMostNodesNeedsForce) {
  // 3 nodes running; the default guard refuses a change that removes more than half.
  auto before = state_->snapshot();
  auto running = [](char i, Role r, const std::string& addr) {  // a node of base_config()'s table
    NodeIdentity n = node("", r, addr);
    n.node_id = "aa" + std::string(61, '0') + i;
    return n;
  };
  std::vector<NodeIdentity> one = {running('1', Role::kConsensus, "198.18.1.1:3569")};
  try {
    replace(one, false);
    ADD_FAILURE() << "accepted";
  } catch (const OpError& e) {
    EXPECT_EQ(e.code(), "failed_precondition");
    EXPECT_THAT(e.what(), HasSubstr("removes 2 of the 3 running nodes (66 %)"));
    EXPECT_THAT(e.what(), HasSubstr("--force"));
  }
  EXPECT_EQ(state_->snapshot(), before);
  // Removing one of three (33 %) passes; forcing passes anything.
  std::vector<NodeIdentity> two = {running('1', Role::kConsensus, "198.18.1.1:3569"),
                                   running('2', Role::kConsensus, "198.18.1.2:3569")};
  EXPECT_NO_THROW(replace(two, false));
  EXPECT_NO_THROW(replace(one, true));
  EXPECT_EQ(state_->nodes().size(), 1u);
}

// A fetched table: applied when it differs, confirmed either way; its age survives a
// restart of the same table (identity.json), not one with another table.
TEST_F(PolicyStateTest, FetchedTablesAndTheirAgeAcrossRestarts) {
  now_ = 1000;
  const std::vector<NodeIdentity> same = state_->nodes();
  FlowEpoch e{7, "staking"};
  EXPECT_FALSE(state_->apply_fetched(same, e, "ep"));  // unchanged: nothing published
  EXPECT_EQ(published_.size(), 1u);
  EXPECT_EQ(state_->feed().epoch.counter, 7u);
  EXPECT_EQ(state_->feed().last_success, 1000);
  EXPECT_EQ(state_->identity_confirmed_unix(), 1000);
  std::vector<NodeIdentity> next = same;
  next.push_back(node("04", Role::kConsensus, "198.18.1.4:3569"));
  now_ = 2000;
  auto ch = state_->apply_fetched(next, FlowEpoch{8, "committed"}, "ep");
  ASSERT_TRUE(ch);
  EXPECT_EQ(ch->added, 1u);
  EXPECT_EQ(state_->identity_changed_unix(), 2000);
  // A refused one (most nodes removed) changes nothing and counts nothing here: the caller
  // reports it with fetch_failed().
  EXPECT_THROW(state_->apply_fetched({next[0]}, FlowEpoch{9, "staking"}, "ep"), OpError);
  EXPECT_EQ(state_->feed().epoch.counter, 8u);
  state_->fetch_failed("boom");
  EXPECT_EQ(state_->feed().failures, 1u);

  state_->persist_blocks_in(dir_.path() + "/state");
  std::vector<std::string> info, warnings;
  state_->restore_identity(info, warnings);  // writes identity.json for the running table
  now_ = 5000;
  state_->apply_fetched(next, FlowEpoch{8, "committed"}, "ep");  // confirmed at 5000 (saved: 10 min passed)
  // A restart with the same table: its change and confirmation times go on.
  path_ = dir_.file("c2.yaml", stakegate::testing::base_config());
  make(0);
  ASSERT_TRUE(state_->apply_fetched(next, FlowEpoch{8, "committed"}, "ep"));  // back to `next`, at 5000
  now_ = 6000;
  state_->persist_blocks_in(dir_.path() + "/state");
  state_->restore_identity(info, warnings);
  EXPECT_TRUE(warnings.empty());
  EXPECT_EQ(state_->identity_changed_unix(), 2000);
  EXPECT_EQ(state_->identity_confirmed_unix(), 5000);
  EXPECT_EQ(state_->feed().last_success, 5000);
}

// The table's confirmation is a date that the staleness alert compares with Prometheus'
// clock: after NTP steps the wall clock back (it was ahead), the next fetch dates it by
// the clock as it reads now, and identity.json follows at once. (Kept at the later date,
// the table looked current, and the alert stayed silent, for as long as the clock stepped.)
TEST_F(PolicyStateTest, AConfirmationIsDatedByTheWallClockAsItReadsNow) {
  const int64_t year = 365 * 86400;
  now_ = 3 * year;
  const std::vector<NodeIdentity> same = state_->nodes();
  state_->persist_blocks_in(dir_.path() + "/state");
  std::vector<std::string> info, warnings;
  state_->restore_identity(info, warnings);
  state_->apply_fetched(same, FlowEpoch{7, "staking"}, "ep");
  EXPECT_EQ(state_->identity_confirmed_unix(), 3 * year);
  now_ = 2 * year + 60;  // stepped back a year, a minute later
  state_->apply_fetched(same, FlowEpoch{7, "staking"}, "ep");
  EXPECT_EQ(state_->identity_confirmed_unix(), 2 * year + 60);
  EXPECT_EQ(state_->feed().last_success, 2 * year + 60);
  const auto saved = nlohmann::json::parse(stakegate::read_text_file(dir_.path() + "/state/identity.json", "test", "identity", 1 << 20));
  EXPECT_EQ(saved.at("confirmed_at").get<int64_t>(), 2 * year + 60);
  const auto fetched = nlohmann::json::parse(
      stakegate::read_text_file(dir_.path() + "/state/identity-fetched.json", "test", "identity", 1 << 20));
  EXPECT_EQ(fetched.at("fetched_at").get<int64_t>(), 2 * year + 60);
}

// With identity.access_api and a state_dir, the last fetched table is kept and a restart
// starts on it when it is newer than the configured table's file; a configured file
// changed after it wins; a damaged file is a warning and the configured table runs.
TEST_F(PolicyStateTest, ARestartStartsOnTheLastFetchedTableWhenItIsNewer) {
  const std::string cfg = stakegate::testing::base_config();
  const std::string with_api = cfg.substr(0, cfg.find("  nodes:")) + "  access_api: {endpoints: [\"127.0.0.1:9\"]}\n" +
                               cfg.substr(cfg.find("  nodes:"));
  path_ = dir_.file("api.yaml", with_api);
  ::utime(path_.c_str(), nullptr);
  make(0);
  const std::string state = dir_.path() + "/state";
  state_->persist_blocks_in(state);
  now_ = time(nullptr) + 100;  // fetched after the config file was written
  std::vector<NodeIdentity> next = state_->nodes();
  next.push_back(node("04", Role::kConsensus, "198.18.1.4:3569"));
  next[0].weight = 777;
  ASSERT_TRUE(state_->apply_fetched(next, FlowEpoch{12, "setup"}, "ep:9000"));

  const int64_t fetched_at = now_;
  make(0);  // a restart: the configured table first
  ASSERT_EQ(state_->nodes().size(), 3u);
  now_ += 500;
  state_->persist_blocks_in(state);
  std::vector<std::string> info, warnings;
  state_->restore_identity(info, warnings);
  // The kept table is the one identity.json describes: it changed when it was fetched, not
  // at this start.
  EXPECT_EQ(state_->identity_changed_unix(), fetched_at);
  EXPECT_TRUE(warnings.empty()) << warnings.front();
  ASSERT_EQ(info.size(), 1u);
  EXPECT_THAT(info[0], HasSubstr("starting on the table fetched from ep:9000"));
  EXPECT_THAT(info[0], HasSubstr("(epoch 12, setup, 4 nodes)"));
  EXPECT_EQ(state_->nodes().size(), 4u);
  EXPECT_EQ(state_->nodes()[*state_->find_node(next[0].node_id)].weight, 777);
  EXPECT_EQ(state_->feed().epoch.counter, 12u);
  EXPECT_EQ(published_.back(), state_->snapshot());

  // Without access_api (the operator stopped following epochs) it is not used.
  path_ = dir_.file("c.yaml", cfg);
  make(0);
  state_->persist_blocks_in(state);
  info.clear();
  state_->restore_identity(info, warnings);
  EXPECT_TRUE(info.empty());
  EXPECT_EQ(state_->nodes().size(), 3u);

  // The configured file changed after the fetch: it wins.
  path_ = dir_.file("api.yaml", with_api);
  const timespec later[2] = {{now_ + 50, 0}, {now_ + 50, 0}};
  ::utimensat(AT_FDCWD, path_.c_str(), later, 0);
  make(0);
  state_->persist_blocks_in(state);
  state_->restore_identity(info, warnings);
  ASSERT_EQ(info.size(), 1u);
  EXPECT_THAT(info[0], HasSubstr("changed after the table fetched at"));
  EXPECT_EQ(state_->nodes().size(), 3u);

  // A damaged file: a warning naming it, the configured table.
  ::utime(path_.c_str(), nullptr);
  dir_.file("state/identity-fetched.json", "{\"version\": 1, \"fetched_at\": 99999999999, \"nodes\": [");
  make(0);
  state_->persist_blocks_in(state);
  info.clear();
  state_->restore_identity(info, warnings);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_THAT(warnings[0], HasSubstr("identity-fetched.json: ignored, starting on " + path_));
  EXPECT_EQ(state_->nodes().size(), 3u);
}
