#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>

#include <nlohmann/json.hpp>

#include "stakegate/base/files.h"
#include "stakegate/identity/flow_import.h"
#include "stakegate/identity/resolve.h"
#include "stakegate/policy/load.h"
#include "test_util.h"

using namespace stakegate;
using ::testing::HasSubstr;

namespace {
const std::string kExamples = STAKEGATE_EXAMPLES;
const std::string kHosts = R"(  hosts:
    consensus-001.example-operator.net: 198.18.0.10
    access-007.example-operator.net: "2001:2::7"
)";

std::string config_for(const std::string& identity_line) {
  return R"(dataplane:
  outside: {vdev: "net_null0"}
  inside: {vdev: "net_null1"}
capacity: {pps: 100000}
identity:
  )" + identity_line + "\n" + kHosts + R"(roles:
  consensus: {share: 0.3}
  collection: {share: 0.2}
  access: {share: 0.1, ports: [3569, 9000]}
cluster: {prefixes: [198.18.255.0/24]}
state_dir: state
)";
}
}  // namespace

TEST(FlowImport, NodeInfosExample) {
  auto nodes = parse_flow_node_infos(read_text_file(kExamples + "/node-infos.pub.json", "t", "k"), "node-infos.pub.json");
  ASSERT_EQ(nodes.size(), 3u);
  EXPECT_EQ(nodes[0].role, Role::kConsensus);
  EXPECT_EQ(nodes[0].host, "consensus-001.example-operator.net");
  EXPECT_EQ(nodes[0].port, 3569);
  EXPECT_EQ(nodes[0].node_id, "79a7f711ba44dfdcfe774769eb97af6af732337fbcf96b788dbe6c51d29c5ec6");
  EXPECT_EQ(nodes[0].weight, 100);
  EXPECT_EQ(nodes[1].address, "203.0.113.10:3569");
  EXPECT_THAT(nodes[1].network_key, ::testing::StartsWith("87a218215a20cc8f"));
}

TEST(FlowImport, SnapshotExampleDecodesBase64KeysToTheSameHex) {
  auto infos = parse_flow_node_infos(read_text_file(kExamples + "/node-infos.pub.json", "t", "k"), "a");
  auto snap = parse_flow_snapshot(read_text_file(kExamples + "/root-protocol-state-snapshot.excerpt.json", "t", "k"), "b");
  ASSERT_EQ(snap.size(), 3u);
  for (const auto& s : snap) {
    auto it = std::find_if(infos.begin(), infos.end(), [&](auto& n) { return n.node_id == s.node_id; });
    ASSERT_NE(it, infos.end());
    EXPECT_EQ(s.role, it->role);
    EXPECT_EQ(s.address, it->address);
    EXPECT_EQ(s.network_key, it->network_key);
    EXPECT_EQ(s.staking_key, it->staking_key);
    EXPECT_EQ(s.status, "active");
  }
}

TEST(FlowImport, SnapshotHonoursEjected) {
  std::string text = read_text_file(kExamples + "/root-protocol-state-snapshot.excerpt.json", "t", "k");
  const std::string active = "EpochParticipationStatusActive";
  auto last = text.rfind(active);
  text.replace(last, active.size(), "EpochParticipationStatusEjected");
  auto snap = parse_flow_snapshot(text, "s.json");
  EXPECT_EQ(std::count_if(snap.begin(), snap.end(), [](auto& n) { return n.ejected; }), 1);
  text.replace(last, std::string("EpochParticipationStatusEjected").size(), "Sleeping");
  EXPECT_THAT([&] { try { parse_flow_snapshot(text, "s.json"); } catch (const ConfigError& e) { return std::string(e.what()); } return std::string(); }(),
              HasSubstr("ParticipationStatus: unknown status 'Sleeping'"));
}

TEST(FlowImport, BothExamplesLoadThroughAConfigWithStakeOverride) {
  stakegate::testing::TempDir dir;
  std::string stakes = dir.file("stakes.json", R"({"79a7f711ba44dfdcfe774769eb97af6af732337fbcf96b788dbe6c51d29c5ec6": 300,
  "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff": 5})");
  for (std::string id : {"flow_node_infos: " + kExamples + "/node-infos.pub.json",
                         "flow_snapshot: " + kExamples + "/root-protocol-state-snapshot.excerpt.json"}) {
    std::string cfg = dir.file("c.yaml", config_for(id + "\n  stake_file: stakes.json"));
    LoadedPolicy p = load_policy(cfg);
    ASSERT_EQ(p.nodes.size(), 3u);
    for (const auto& n : p.nodes) {
      ASSERT_EQ(n.ips.size(), 1u) << n.address;
      if (n.role == Role::kConsensus) { EXPECT_EQ(n.weight, 300); EXPECT_EQ(n.ips[0], *parse_ip("198.18.0.10")); }
      if (n.role == Role::kAccess) { EXPECT_EQ(n.ips[0], *parse_ip("2001:2::7")); }
      if (n.role == Role::kCollection) { EXPECT_EQ(n.ips[0], *parse_ip("203.0.113.10")); }
    }
    // The stake for an unknown node is reported, not applied (besides the config's own
    // warnings: infra.neighbours unset).
    ASSERT_EQ(std::count_if(p.warnings.begin(), p.warnings.end(),
                            [](const std::string& w) { return w.find("ffffffff") != std::string::npos; }),
              1);
    EXPECT_EQ(p.warnings.size(), 2u) << p.warnings.back();
  }
}

// A name that does not resolve never refuses the table: the node stays, without an
// address, and the warning names it. The resolver here is a closed port on loopback, so
// the lookup fails at once (the integration test test_dns runs a real resolver).
TEST(FlowImport, ANameThatDoesNotResolveKeepsTheTable) {
  stakegate::testing::TempDir dir;
  dir.file("n.json", R"([{"Role": "consensus", "Address": "no-such-host.invalid:3569",
    "NodeID": "79a7f711ba44dfdcfe774769eb97af6af732337fbcf96b788dbe6c51d29c5ec6", "Weight": 100},
    {"Role": "access", "Address": "198.18.0.7:9000",
    "NodeID": "083fdd06d4a4a560001a3f6576689db323399775198bfd2b75d3345723f0d979", "Weight": 100}])");
  std::string cfg = config_for("flow_node_infos: n.json");
  cfg.replace(cfg.find("  hosts:"), 0, "  dns: {servers: [\"127.0.0.1:9\"], timeout_s: 2}\n");
  LoadedPolicy p = load_policy(dir.file("c.yaml", cfg));
  ASSERT_EQ(p.nodes.size(), 2u);
  for (const auto& n : p.nodes) EXPECT_EQ(n.ips.size(), n.role == Role::kAccess ? 1u : 0u) << n.host;
  std::string all;
  for (const auto& w : p.warnings) all += w + "\n";
  EXPECT_THAT(all, HasSubstr("node 79a7f711ba44dfdcfe774769eb97af6af732337fbcf96b788dbe6c51d29c5ec6 (consensus): host "
                             "'no-such-host.invalid' does not resolve"));
  EXPECT_THAT(all, HasSubstr("stays in the table without an address"));
}

TEST(FlowImport, DnsNamesResolveAtLoadTime) {
  std::vector<NodeIdentity> nodes(1);
  nodes[0].node_id = std::string(64, 'a');
  nodes[0].host = "localhost";  // from /etc/hosts, which c-ares reads before asking DNS
  NameCache cache;
  std::vector<std::string> warnings;
  resolve_identities(nodes, {}, DnsConfig{}, "f", &warnings, true, &cache);
  ASSERT_FALSE(nodes[0].ips.empty());
  EXPECT_TRUE(nodes[0].ips[0] == *parse_ip("127.0.0.1") || nodes[0].ips[0] == *parse_ip("::1"));
  EXPECT_TRUE(warnings.empty());
}

TEST(FlowImport, RefusesDuplicates) {
  stakegate::testing::TempDir dir;
  const std::string a = R"({"Role": "consensus", "Address": "198.18.0.1:3569", "NodeID": "79a7f711ba44dfdcfe774769eb97af6af732337fbcf96b788dbe6c51d29c5ec6", "Weight": 100})";
  const std::string b_same_addr = R"({"Role": "execution", "Address": "198.18.0.1:3569", "NodeID": "083fdd06d4a4a560001a3f6576689db323399775198bfd2b75d3345723f0d979", "Weight": 100})";
  auto err = [&](const std::string& json) {
    dir.file("n.json", json);
    try { load_policy(dir.file("c.yaml", config_for("flow_node_infos: n.json"))); } catch (const ConfigError& e) { return std::string(e.what()); }
    return std::string("(accepted)");
  };
  EXPECT_THAT(err("[" + a + "," + a + "]"), HasSubstr("n.json: NodeID 79a7f711ba44dfdcfe774769eb97af6af732337fbcf96b788dbe6c51d29c5ec6 appears twice"));
  EXPECT_THAT(err("[" + a + "," + b_same_addr + "]"),
              HasSubstr("nodes 79a7f711ba44dfdcfe774769eb97af6af732337fbcf96b788dbe6c51d29c5ec6 and "
                        "083fdd06d4a4a560001a3f6576689db323399775198bfd2b75d3345723f0d979 share the address 198.18.0.1:3569"));
}

TEST(FlowImport, NamesTheBadElement) {
  auto err = [](const std::string& json) {
    try { parse_flow_node_infos(json, "n.json"); } catch (const ConfigError& e) { return std::string(e.what()); }
    return std::string("(accepted)");
  };
  EXPECT_THAT(err("{}"), HasSubstr("n.json: must be a JSON array"));
  EXPECT_THAT(err("[{\"Role\": \"consensus\"}]"), HasSubstr("n.json: [0]: missing key 'NodeID'"));
  EXPECT_THAT(err(R"([{"Role": "miner", "Address": "a:1", "NodeID": "79a7f711ba44dfdcfe774769eb97af6af732337fbcf96b788dbe6c51d29c5ec6", "Weight": 1}])"),
              HasSubstr("[0].Role: unknown role 'miner'"));
  EXPECT_THAT(err(R"([{"Role": "consensus", "Address": "a:1", "NodeID": "79a7", "Weight": 1}])"),
              HasSubstr("[0].NodeID: must be 64 hex characters"));
  EXPECT_THAT(err(R"([{"Role": "consensus", "Address": "a:1", "NodeID": "79a7f711ba44dfdcfe774769eb97af6af732337fbcf96b788dbe6c51d29c5ec6", "Weight": -1}])"),
              HasSubstr("[0].Weight: must be a number >= 0"));
  EXPECT_THAT(err("[1,"), HasSubstr("n.json: not valid JSON"));
  try { parse_flow_snapshot("{}", "s.json"); FAIL(); } catch (const ConfigError& e) {
    EXPECT_THAT(e.what(), HasSubstr("s.json: SealingSegment.ProtocolStateEntries: missing"));
  }
  try { parse_stake_file(R"({"79a7f711ba44dfdcfe774769eb97af6af732337fbcf96b788dbe6c51d29c5ec6": "lots"})", "w.json"); FAIL(); } catch (const ConfigError& e) {
    EXPECT_THAT(e.what(), HasSubstr("w.json: 79a7f711ba44dfdcfe774769eb97af6af732337fbcf96b788dbe6c51d29c5ec6: stake must be a number"));
  }
}

// Stakes copied out of a Cadence script's result are UFix64 strings: taken as decimals,
// and nothing else in a string is.
TEST(FlowImport, AStakeFileTakesDecimalStrings) {
  const std::string a = "79a7f711ba44dfdcfe774769eb97af6af732337fbcf96b788dbe6c51d29c5ec6";
  const std::string b = std::string(64, 'b');
  auto stakes = parse_stake_file("{\"" + a + "\": \"1250000.50000000\", \"" + b + "\": 300}", "w.json");
  EXPECT_DOUBLE_EQ(stakes.at(a), 1250000.5);
  EXPECT_DOUBLE_EQ(stakes.at(b), 300);
  for (const std::string& bad : std::vector<std::string>{"\"-5\"", "\"1e3\"", "\"nan\"", "\"inf\"", "\"\"", "\".\"", "\"1.2.3\"", "\" 7\"", "true",
                                "\"" + std::string(400, '9') + "\""}) {
    try {
      parse_stake_file("{\"" + a + "\": " + bad + "}", "w.json");
      ADD_FAILURE() << bad << " accepted";
    } catch (const ConfigError& e) {
      EXPECT_THAT(e.what(), HasSubstr("w.json: " + a + ": stake must be a number >= 0 (or a decimal string")) << bad;
    }
  }
}

// Fuzz finding (tests/fuzz/regressions/identity): a number the JSON reader cannot hold
// threw an exception that was not a ConfigError, and aborted check-config and replay.
TEST(FlowImport, ANumberOutOfRangeIsARefusalNotACrash) {
  const std::string text = R"([{"Role": "consensus", "Address": "198.18.1.1:3569", "NodeID": ")" + std::string(64, 'a') +
                           R"(", "Weight": 6e927}])";
  try {
    parse_flow_node_infos(text, "n.json");
    FAIL() << "accepted";
  } catch (const ConfigError& e) {
    EXPECT_THAT(e.what(), HasSubstr("n.json: not valid JSON"));
  }
  EXPECT_THROW(parse_flow_snapshot("{\"a\": 1e999}", "s.json"), ConfigError);
  EXPECT_THROW(parse_stake_file("{\"a\": -1e999}", "w.json"), ConfigError);
}

// Input files are read only when they are regular files, without blocking, up to a cap:
// a FIFO named by mistake must be refused at once rather than hang the control plane.
TEST(InputFiles, OnlyRegularFilesUpToTheCap) {
  stakegate::testing::TempDir dir;
  const std::string fifo = dir.path() + "/fifo";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  try {
    read_text_file(fifo, "c.yaml", "identity.flow_node_infos");
    FAIL() << "read a FIFO";
  } catch (const ConfigError& e) {
    EXPECT_THAT(e.what(), HasSubstr("c.yaml: identity.flow_node_infos: cannot read '" + fifo + "': not a regular file"));
  }
  EXPECT_THROW(read_text_file(dir.path(), "c.yaml", "k"), ConfigError);  // a directory
  const std::string big = dir.file("big.json", std::string(2000, 'x'));
  EXPECT_THAT([&] { try { read_text_file(big, "c.yaml", "k", 1000); } catch (const ConfigError& e) { return std::string(e.what()); } return std::string(); }(),
              HasSubstr("2000 bytes, over the limit of 1000"));
  EXPECT_EQ(read_text_file(big, "c.yaml", "k").size(), 2000u);
  EXPECT_THROW(read_text_file(dir.path() + "/missing", "c.yaml", "k"), ConfigError);
}

// Snapshot layouts: several protocol-state entries (around phase changes) are told apart by
// the newest block of the sealing segment, a block up to flow-go v0.42 and a proposal
// wrapping one from v0.43. Synthetic: the shared excerpt has one entry and no blocks, so
// the test adds a second entry (a copy without the last node) and the blocks.
TEST(FlowImport, SnapshotWithSeveralEntriesInBothBlockLayouts) {
  auto doc = nlohmann::json::parse(read_text_file(kExamples + "/root-protocol-state-snapshot.excerpt.json", "t", "k"));
  auto& entries = doc["SealingSegment"]["ProtocolStateEntries"];
  const std::string first = entries.begin().key(), second = std::string(64, 'e');
  entries[second] = entries[first];
  entries[second]["EpochEntry"]["CurrentEpochIdentityTable"].erase(2);
  auto& seg = doc["SealingSegment"];
  seg["Blocks"] = nlohmann::json::array({{{"Payload", {{"ProtocolStateID", first}}}},
                                         {{"Payload", {{"ProtocolStateID", second}}}}});
  EXPECT_EQ(parse_flow_snapshot(doc.dump(), "v042.json").size(), 2u);  // the newest block names `second`
  seg["Blocks"] = nlohmann::json::array(
      {{{"Block", {{"Payload", {{"ProtocolStateID", second}}}}}, {"ProposerSigData", "AAAA"}},
       {{"Block", {{"Payload", {{"ProtocolStateID", first}}}}}, {"ProposerSigData", "AAAA"}}});
  EXPECT_EQ(parse_flow_snapshot(doc.dump(), "v043.json").size(), 3u);  // proposals: the newest names `first`
  seg.erase("Blocks");
  EXPECT_THAT([&] { try { parse_flow_snapshot(doc.dump(), "s.json"); } catch (const ConfigError& e) { return std::string(e.what()); } return std::string(); }(),
              HasSubstr("several entries"));
}

TEST(FlowImport, OlderNodeInfosCallTheWeightStake) {
  auto nodes = parse_flow_node_infos(R"([{"Role": "consensus", "Address": "198.18.0.10:3569",
    "NodeID": "79a7f711ba44dfdcfe774769eb97af6af732337fbcf96b788dbe6c51d29c5ec6", "Stake": 1500}])", "old.json");
  ASSERT_EQ(nodes.size(), 1u);
  EXPECT_EQ(nodes[0].weight, 1500);
}

TEST(FlowImport, AnEmptyTableIsRefused) {
  stakegate::testing::TempDir dir;
  dir.file("empty.json", "[]");
  std::string cfg = dir.file("c.yaml", config_for("flow_node_infos: empty.json"));
  EXPECT_THAT([&] { try { load_policy(cfg); } catch (const ConfigError& e) { return std::string(e.what()); } return std::string(); }(),
              HasSubstr("the identity table is empty"));
}

TEST(FlowImport, TheSnapshotTellsTheEpochAndItsPhase) {
  auto doc = nlohmann::json::parse(read_text_file(kExamples + "/root-protocol-state-snapshot.excerpt.json", "t", "k"));
  auto& ee = doc["SealingSegment"]["ProtocolStateEntries"].begin().value()["EpochEntry"];
  FlowEpoch e;
  parse_flow_snapshot(doc.dump(), "s.json", &e);
  EXPECT_EQ(e.counter, 1u);
  EXPECT_EQ(e.phase, "staking");  // no next epoch yet
  ee["CurrentEpochSetup"]["Counter"] = 42;
  ee["NextEpoch"] = {{"SetupID", std::string(64, 'a')}, {"CommitID", std::string(64, '0')}};
  parse_flow_snapshot(doc.dump(), "s.json", &e);
  EXPECT_EQ(e.counter, 42u);
  EXPECT_EQ(e.phase, "setup");
  ee["NextEpoch"]["CommitID"] = std::string(64, 'c');
  parse_flow_snapshot(doc.dump(), "s.json", &e);
  EXPECT_EQ(e.phase, "committed");
  ee["EpochFallbackTriggered"] = true;
  parse_flow_snapshot(doc.dump(), "s.json", &e);
  EXPECT_EQ(e.phase, "fallback");
}

TEST(FlowImport, StakesFromTheCadenceScript) {
  const std::string id = "79a7f711ba44dfdcfe774769eb97af6af732337fbcf96b788dbe6c51d29c5ec6";
  auto stakes = parse_cadence_stakes(R"({"type": "Dictionary", "value": [
    {"key": {"type": "String", "value": ")" + id + R"("}, "value": {"type": "UFix64", "value": "1250000.50000000"}}]})", "script");
  ASSERT_EQ(stakes.size(), 1u);
  EXPECT_DOUBLE_EQ(stakes[id], 1250000.5);
  auto err = [](const std::string& text) {
    try { parse_cadence_stakes(text, "script"); } catch (const ConfigError& e) { return std::string(e.what()); }
    return std::string("(accepted)");
  };
  EXPECT_THAT(err(R"({"type": "Array", "value": []})"), HasSubstr("expected a JSON-Cadence Dictionary"));
  EXPECT_THAT(err(R"({"type": "Dictionary", "value": [{"key": {"type": "String", "value": "xyz"}, "value": {"type": "UFix64", "value": "1.0"}}]})"),
              HasSubstr("value[0].key: not a NodeID"));
  EXPECT_THAT(err(R"({"type": "Dictionary", "value": [{"key": {"type": "String", "value": ")" + id +
                  R"("}, "value": {"type": "UFix64", "value": "-3"}}]})"),
              HasSubstr("not a UFix64: '-3'"));
  EXPECT_THAT(err("{\"type\": \"Dictionary\", \"val"), HasSubstr("not valid JSON"));
}
