// The control API's request handling with a fake gateway: each RPC's success and its
// error cases, JSON and binary protobuf.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "control.pb.h"
#include "stakegate/control/api.h"
#include "stakegate/control/http_server.h"
#include "stakegate/control/metrics.h"
#include "test_util.h"

using namespace stakegate;
using json = nlohmann::json;
using ::testing::HasSubstr;

namespace {

class FakeDataPath : public DataPathView, public Publisher {
 public:
  Totals totals(bool) const override { return t; }
  uint32_t snapshots_pending_reclaim() const override { return 0; }
  double uptime_s() const override { return 12; }
  uint64_t session_capacity() const override { return sessions; }
  std::vector<uint64_t> outside_packets() const override { return by_worker; }
  void publish(std::shared_ptr<const PolicySnapshot>) override {}
  bool wait_applied() override { ++applied; return true; }
  Totals t;
  uint64_t sessions = 0;
  std::vector<uint64_t> by_worker;
  int applied = 0;
};

class ApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    state_ = std::make_unique<PolicyState>(load_policy(dir_.file("c.yaml", stakegate::testing::base_config())), 1, 0, &gw_,
                                           0, [] { return int64_t{1000}; });
    api_ = std::make_unique<ControlApi>(*state_, gw_, nullptr, "test");
    gw_.t.c.packets[0][static_cast<int>(TrafficClass::kConsensus)][static_cast<int>(Verdict::kOverRate)] = 7;
  }
  std::pair<int, json> call(const std::string& rpc, const std::string& body = "") {
    auto r = api_->handle("POST", "/v1/" + rpc, "application/json", body);
    return {r.status, json::parse(r.body)};
  }
  stakegate::testing::TempDir dir_;
  FakeDataPath gw_;
  std::unique_ptr<PolicyState> state_;
  std::unique_ptr<ControlApi> api_;
  const std::string id1 = "aa00000000000000000000000000000000000000000000000000000000000001";
};

}  // namespace

TEST_F(ApiTest, Status) {
  auto [s, j] = call("Status");
  EXPECT_EQ(s, 200);
  EXPECT_EQ(j["identity_generation"], "1");  // uint64 is a string in protobuf's JSON mapping
  EXPECT_EQ(j["nodes"], 3);
  EXPECT_EQ(j["drops_by_reason"]["over_rate"], "7");
}

// Several workers each enforcing rate / N (rss: false) while one receives nearly all the
// traffic: every node gets 1/N of its rate. Status says so (stakegatectl prints it).
TEST(UnspreadShare, OnlyWhenTheRateIsSplitAndOneWorkerHasNearlyAll) {
  EXPECT_DOUBLE_EQ(unspread_share({9500, 500}, 2), 0.95);
  EXPECT_DOUBLE_EQ(unspread_share({0, 0, 4000, 0}, 4), 1.0);
  EXPECT_EQ(unspread_share({9500, 500}, 1), 0);   // RSS on the source: each worker enforces the whole rate
  EXPECT_EQ(unspread_share({8000, 2000}, 2), 0);  // spread, if unevenly (a few heavy sources)
  EXPECT_EQ(unspread_share({999, 0}, 2), 0);      // too few to say
  EXPECT_EQ(unspread_share({5000}, 2), 0);
  EXPECT_EQ(unspread_share({}, 2), 0);
}

TEST_F(ApiTest, StatusSaysWhenOneWorkerTakesTheTrafficOfASplitRate) {
  stakegate::testing::TempDir dir;
  PolicyState split(load_policy(dir.file("c.yaml", stakegate::testing::base_config())), 2, 0, &gw_, 2);
  ControlApi api(split, gw_, nullptr, "test");
  auto status = [&] { return json::parse(api.handle("POST", "/v1/Status", "application/json", "").body); };
  gw_.by_worker = {5000, 4000};
  json j = status();
  EXPECT_EQ(j["rate_split_workers"], 2);
  EXPECT_EQ(j["worker_load"][1]["outside_packets"], "4000");
  EXPECT_EQ(j["diagnostics"]["unspread_share"], 0);
  gw_.by_worker = {20000, 100};
  EXPECT_NEAR(status()["diagnostics"]["unspread_share"].get<double>(), 0.995, 0.001);
  // One worker, or RSS on the source address (rate_split 1): nothing to say.
  EXPECT_EQ(call("Status").second["diagnostics"]["unspread_share"], 0);
}

TEST_F(ApiTest, StatusCountsTheSessions) {
  gw_.t.c.sessions_created = 40;
  gw_.t.c.sessions_verified = 30;
  gw_.t.c.sessions_evicted = 2;
  gw_.sessions = 262144;
  auto [s, j] = call("Status");
  EXPECT_EQ(s, 200);
  EXPECT_EQ(j["sessions"]["created"], "40");
  EXPECT_EQ(j["sessions"]["verified"], "30");
  EXPECT_EQ(j["sessions"]["evicted"], "2");
  EXPECT_EQ(j["sessions"]["table_entries"], "262144");
}

TEST_F(ApiTest, ReplaceIdentitiesAcceptsFlowFormatsAsTheyAre) {
  std::string infos = R"([{"Role": "consensus", "Address": "198.18.1.1:3569", "NodeID": ")" + id1 + R"(", "Weight": 100}])";
  // It removes 2 of the 3 running nodes: refused unless forced, and the running table stays.
  auto [s0, j0] = call("ReplaceIdentities", infos);
  EXPECT_EQ(s0, 409) << j0.dump();
  EXPECT_THAT(j0["message"].get<std::string>(), ::testing::HasSubstr("removes 2 of the 3 running nodes"));
  EXPECT_EQ(state_->nodes().size(), 3u);
  EXPECT_EQ(gw_.applied, 0);
  auto [s, j] = call("ReplaceIdentities?force=true", infos);
  EXPECT_EQ(s, 200) << j.dump();
  EXPECT_EQ(j["nodes"], 1);
  EXPECT_EQ(j["removed"], 2);
  EXPECT_EQ(state_->identity_source(), "api: node-infos.pub.json");
  EXPECT_EQ(gw_.applied, 1);  // the response waits until workers run the new table
  auto [s2, j2] = call("ReplaceIdentities", json{{"nodes", {{"nodes", {{{"node_id", id1}, {"role", "access"}, {"address", "[2001:2::1]:3569"}}}}}}}.dump());
  EXPECT_EQ(s2, 200) << j2.dump();
  EXPECT_EQ(state_->nodes()[0].role, Role::kAccess);
}

TEST_F(ApiTest, Errors) {
  auto expect = [&](const std::string& rpc, const std::string& body, int status, const char* code, const char* needle) {
    auto [s, j] = call(rpc, body);
    EXPECT_EQ(s, status) << rpc << " " << j.dump();
    EXPECT_EQ(j["code"], code) << rpc;
    EXPECT_THAT(j["message"].get<std::string>(), HasSubstr(needle)) << rpc;
  };
  expect("Block", "{not json", 400, "invalid_argument", "bad JSON");
  expect("Block", R"({"cidr": "198.51.100.0/33"})", 400, "invalid_argument", "bad CIDR '198.51.100.0/33'");
  expect("Block", R"({"node_id": ")" + std::string(64, 'f') + "\"}", 404, "not_found", "not in the identity table");
  expect("Block", R"({"colour": "red"})", 400, "invalid_argument", "bad JSON");
  expect("GetNode", R"({"node_id": "nope"})", 400, "invalid_argument", "64 hex characters");
  expect("GetNode", R"({"node_id": ")" + std::string(64, 'f') + "\"}", 404, "not_found", "not in the identity table");
  expect("SetRoleQos", R"({"role": "access", "share": 0.9})", 400, "invalid_argument", "shares sum to");
  expect("SetRoleQos", R"({"role": "miner", "share": 0.1})", 400, "invalid_argument", "unknown role 'miner'");
  expect("SetRoleQos", R"({"role": "access", "ports": [70000]})", 400, "invalid_argument", "70000");
  expect("ReplaceIdentities", "[{\"Role\": \"consensus\"}]", 400, "invalid_argument", "missing key 'NodeID'");
  expect("ReplaceIdentities", "{}", 400, "invalid_argument", "no table");
  expect("Unblock", R"({"cidr": "198.51.100.0/24"})", 404, "not_found", "no blocklist entry");
  expect("Frobnicate", "", 404, "not_found", "no RPC named 'Frobnicate'");
  EXPECT_EQ(state_->generation(), 1u);  // nothing of the above changed the policy
  auto r = api_->handle("DELETE", "/v1/Status", "", "");
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(api_->handle("GET", "/v1/Status", "", "").status, 200);  // a query may be a GET
  auto get_block = api_->handle("GET", "/v1/Block", "", "");          // a change may not
  EXPECT_EQ(get_block.status, 405);
  EXPECT_THAT(get_block.body, HasSubstr("use POST"));
  EXPECT_EQ(state_->generation(), 1u);
}

// ReplaceIdentities through handle_async(): its table is read in the work half (a helper
// thread in the gateway), committed in the finish half; nothing is answered or changed in
// between, and other requests are answered at once meanwhile.
TEST_F(ApiTest, ReplaceIdentitiesOffTheControlThread) {
  std::vector<std::pair<std::function<void()>, std::function<void()>>> jobs;
  ControlApi::Offload offload = [&](std::function<void()> work, std::function<void()> finish) {
    jobs.emplace_back(std::move(work), std::move(finish));
  };
  std::vector<ControlApi::Response> answers;
  auto ask = [&](const std::string& target, const std::string& body, Access access = Access::kAdmin) {
    api_->handle_async("POST", target, "application/json", body, access, "test", offload,
                       [&](ControlApi::Response r) { answers.push_back(std::move(r)); });
  };
  const std::string infos = R"([{"Role": "consensus", "Address": "198.18.1.1:3569", "NodeID": ")" + id1 + R"(", "Weight": 100}])";

  ask("/v1/ReplaceIdentities?force=true", infos);
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_TRUE(answers.empty());
  ask("/v1/Status", "");  // answered in line, with the old table
  ASSERT_EQ(answers.size(), 1u);
  EXPECT_EQ(json::parse(answers[0].body)["nodes"], 3);
  jobs[0].first();  // the work half reads the table: nothing is applied yet
  EXPECT_EQ(state_->nodes().size(), 3u);
  EXPECT_EQ(gw_.applied, 0);
  jobs[0].second();
  ASSERT_EQ(answers.size(), 2u);
  EXPECT_EQ(answers[1].status, 200) << answers[1].body;
  EXPECT_EQ(json::parse(answers[1].body)["nodes"], 1);
  EXPECT_EQ(state_->nodes().size(), 1u);
  EXPECT_EQ(gw_.applied, 1);

  // A table the work half refuses: its error, and the running table stays.
  ask("/v1/ReplaceIdentities", R"([{"Role": "consensus"}])");
  ASSERT_EQ(jobs.size(), 2u);
  jobs[1].first();
  jobs[1].second();
  ASSERT_EQ(answers.size(), 3u);
  EXPECT_EQ(answers[2].status, 400);
  EXPECT_THAT(answers[2].body, HasSubstr("missing key 'NodeID'"));
  // Refused before any table is read (read-only caller, no table, bad JSON): answered at
  // once, nothing offloaded.
  ask("/v1/ReplaceIdentities", infos, Access::kRead);
  ask("/v1/ReplaceIdentities", "{}");
  ask("/v1/ReplaceIdentities", "{nope");
  EXPECT_EQ(jobs.size(), 2u);
  ASSERT_EQ(answers.size(), 6u);
  EXPECT_EQ(answers[3].status, 403);
  EXPECT_THAT(answers[4].body, HasSubstr("no table"));
  EXPECT_EQ(answers[5].status, 400);
  EXPECT_EQ(state_->nodes().size(), 1u);
  EXPECT_EQ(gw_.applied, 1);
}

TEST_F(ApiTest, BlockShowsInNodeAndBlocklist) {
  auto [s, j] = call("Block", R"({"node_id": ")" + id1 + R"(", "reason": "flood", "expires_in_s": 60})");
  EXPECT_EQ(s, 200) << j.dump();
  EXPECT_EQ(j["entry"]["expires_at_unix"], "1060");
  auto [s2, n] = call("GetNode", R"({"node_id": ")" + id1 + "\"}");
  EXPECT_EQ(n["blocklisted"], true);
  EXPECT_DOUBLE_EQ(n["rate_pps"].get<double>(), 12500);
  auto [s3, l] = call("ListBlocklist");
  ASSERT_EQ(l["entries"].size(), 1u);
  EXPECT_EQ(l["entries"][0]["reason"], "flood");
  auto [s4, u] = call("Unblock", R"({"node_id": ")" + id1 + "\"}");
  EXPECT_EQ(u["removed"], 1);
}

TEST_F(ApiTest, RoleQosGetAndSet) {
  auto [s, j] = call("SetRoleQos", R"({"role": "access", "share": 0.25, "ports": [9000, 3569, 9000]})");
  EXPECT_EQ(s, 200) << j.dump();
  EXPECT_DOUBLE_EQ(j["qos"]["role_pps"].get<double>(), 25000);
  EXPECT_EQ(j["qos"]["ports"], json::array({3569, 9000}));
  auto [s2, g] = call("GetRoleQos", R"({"role": "access"})");
  ASSERT_EQ(g["roles"].size(), 1u);
  EXPECT_DOUBLE_EQ(g["roles"][0]["share"].get<double>(), 0.25);
}

TEST_F(ApiTest, BinaryProtobuf) {
  stakegate::v1::GetNodeRequest q;
  q.set_node_id(id1);
  auto r = api_->handle("POST", "/v1/GetNode", "application/x-protobuf", q.SerializeAsString());
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.content_type, "application/x-protobuf");
  stakegate::v1::GetNodeResponse resp;
  ASSERT_TRUE(resp.ParseFromString(r.body));
  EXPECT_EQ(resp.node().role(), "consensus");
  auto bad = api_->handle("POST", "/v1/GetNode", "application/x-protobuf", "\xff\xff\xff");
  EXPECT_EQ(bad.status, 400);
  stakegate::v1::Error e;
  ASSERT_TRUE(e.ParseFromString(bad.body));
  EXPECT_EQ(e.code(), "invalid_argument");
}

TEST(Metrics, EverySeriesPresentFromTheStart) {
  stakegate::testing::TempDir dir;
  PolicyState st(load_policy(dir.file("c.yaml", stakegate::testing::base_config())), 1, 0, nullptr);  // no workers to publish to
  Totals t;
  MetricsInput in{&t, &st, {{"outside", 0, 0, 0, 3}, {"inside", 0, 0, 0, 0}}, {0.5}, {312.5}, {1234}, 0, "9.9"};
  std::string text = render_metrics(in);
  for (const char* s : {"# TYPE stakegate_packets_total counter", "# HELP stakegate_drops_total",
                        "stakegate_drops_total{role=\"consensus\",reason=\"over_rate\"} 0",
                        "stakegate_drops_total{role=\"unregistered\",reason=\"unregistered_over_rate\"} 0",
                        "stakegate_packets_total{direction=\"inside\",role=\"none\",verdict=\"pass\"} 0",
                        "stakegate_identity_nodes{role=\"consensus\"} 2", "stakegate_identity_generation 1",
                        "stakegate_port_rx_missed_total{port=\"outside\"} 0",
                        "stakegate_port_rx_errors_total{port=\"outside\"} 3", "stakegate_worker_busy_ratio{worker=\"0\"} 0.5",
                        "stakegate_worker_cycles_per_packet{worker=\"0\"} 312.5",
                        "# TYPE stakegate_worker_outside_packets_total counter",
                        "stakegate_worker_outside_packets_total{worker=\"0\"} 1234",
                        "stakegate_graylisted_nodes 0", "stakegate_build_info{version=\"9.9\"} 1"})
    EXPECT_THAT(text, HasSubstr(s));
}

TEST(HttpServer, ConstantTimeEqual) {
  EXPECT_TRUE(constant_time_equal("secret-token-123", "secret-token-123"));
  EXPECT_FALSE(constant_time_equal("secret-token-123", "secret-token-124"));
  EXPECT_FALSE(constant_time_equal("secret-token-123", "secret-token-12"));
  EXPECT_FALSE(constant_time_equal("", "x"));
}
