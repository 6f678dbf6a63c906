// The control API's request decoding and every RPC behind it, on arbitrary requests:
// byte 0 picks the method, byte 1 the RPC (or, when odd, the path is the text up to the
// first newline), byte 2 the content type; the rest is the body. Each input starts from
// a fresh policy, so a finding reproduces from its input alone. Every request must get
// an HTTP status (and a JSON answer a body); an exception escaping handle() is a finding.
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <memory>

#include "fuzz_common.h"
#include "stakegate/policy/load.h"
#include "stakegate/control/api.h"
#include "stakegate/control/policy_state.h"

using namespace stakegate;

namespace {

class DataPath : public DataPathView {
 public:
  Totals totals(bool) const override { return {}; }
  uint32_t snapshots_pending_reclaim() const override { return 0; }
  double uptime_s() const override { return 1; }
};

std::string config_path;

const char* const kRpcs[] = {"Status", "GetIdentities", "ReplaceIdentities", "Block", "Unblock", "ListBlocklist",
                             "GetRoleQos", "SetRoleQos", "GetNode", "Top", "Reload", "ListNodes", "OpenEvidence",
                             "ListEvidence", "Nope"};

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  char dir[] = "/tmp/stakegate-fuzz-api-XXXXXX";
  if (!mkdtemp(dir)) std::abort();
  config_path = std::string(dir) + "/c.yaml";
  std::ofstream(config_path) << R"(dataplane: {eal: [], outside: {vdev: net_null0}, inside: {vdev: net_null1}}
capacity: {pps: 100000}
identity:
  nodes:
    - {node_id: "aa00000000000000000000000000000000000000000000000000000000000001", role: consensus, address: "198.18.1.1:3569"}
    - {node_id: "aa00000000000000000000000000000000000000000000000000000000000002", role: access, address: "[2001:2::2]:3569"}
roles:
  consensus: {share: 0.3, ports: [3569]}
  access: {share: 0.2, ports: [3569, 9000]}
unregistered: {share: 0.05, per_source_pps: 10, ports: [9000]}
limits: {sources: 64}
)";
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 3) return 0;
  static const char* const kMethods[] = {"POST", "GET", "PUT", "DELETE"};
  static const char* const kTypes[] = {"application/json", "application/x-protobuf", "text/plain", ""};
  std::string rest = fuzz::text(data + 3, size - 3), target;
  if (data[1] & 1) {
    size_t nl = rest.find('\n');
    target = rest.substr(0, nl);
    rest = nl == std::string::npos ? "" : rest.substr(nl + 1);
  } else {
    target = std::string("/v1/") + kRpcs[(data[1] >> 1) % (sizeof kRpcs / sizeof *kRpcs)];
  }
  LatestSnapshot publisher;
  PolicyState state(load_policy(config_path), 1, 0, &publisher, 0, [] { return int64_t{1'800'000'000}; });
  DataPath dp;
  ControlApi api(state, dp, nullptr, "fuzz");
  auto r = api.handle(kMethods[data[0] % 4], target, kTypes[data[2] % 4], rest);
  // (An empty message in binary protobuf is an empty body; a JSON answer never is.)
  if (r.status < 200 || r.status > 599 || (r.content_type == "application/json" && r.body.empty())) __builtin_trap();
  return 0;
}
