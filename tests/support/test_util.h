#pragma once
#include <filesystem>
#include <fstream>
#include <string>

namespace stakegate::testing {

// A scratch folder removed at the end of the test.
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/stakegate-test-XXXXXX";
    path_ = mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string file(const std::string& name, const std::string& content) const {
    std::string p = path_ + "/" + name;
    std::ofstream(p) << content;
    return p;
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A valid config with inline nodes; tests replace parts of it to provoke one error each.
inline std::string base_config(const std::string& extra_roles = "", const std::string& tail = "") {
  return R"(dataplane:
  eal: [--no-huge]
  outside: {vdev: "net_null0"}
  inside: {vdev: "net_null1"}
capacity: {pps: 100000}
identity:
  dns: {servers: ["127.0.0.1:9"], timeout_s: 1}  # a closed port: names fail at once, never the machine's resolver
  nodes:
    - {node_id: "aa00000000000000000000000000000000000000000000000000000000000001", role: consensus, address: "198.18.1.1:3569", weight: 100}
    - {node_id: "aa00000000000000000000000000000000000000000000000000000000000002", role: consensus, address: "198.18.1.2:3569", weight: 300}
    - {node_id: "aa00000000000000000000000000000000000000000000000000000000000003", role: access, address: "[2001:2::3]:3569", weight: 100}
roles:
  consensus: {share: 0.5, min_pps: 100, ports: [3569]}
  access: {share: 0.2, min_pps: 100, ports: [3569, 9000]}
)" + extra_roles + R"(unregistered: {share: 0.05, per_source_pps: 10, ports: [9000]}
cluster: {prefixes: [198.18.255.0/24, "2001:2::ff/128"]}
)" + tail;
}

}  // namespace stakegate::testing
