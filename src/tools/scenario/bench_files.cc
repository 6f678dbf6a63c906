// Benchmark workloads as files for the DPDK runs of scripts/bench.py: the identity
// table, the config and the captures. The outside port loops bench.pcap (net_pcap
// infinite_rx); the inside port reads the cluster's own frames (inside.pcap: the SYN-ACKs
// and queries that open the sessions) once, or loops them for the `inside` workload;
// what the gateway transmits is dropped by the driver (net_pcap without a tx stream).
#include <yaml-cpp/yaml.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "bench_workload.h"
#include "scenario.h"
#include "stakegate/report/pcap_io.h"

namespace stakegate::scenario {

namespace fs = std::filesystem;

// Files for one DPDK benchmark run: identity table (no keys: they only cost parse time),
// the config, bench.pcap (outside) and inside.pcap.
void write_bench(const std::string& dir, const std::string& workload, size_t table_nodes, unsigned frame_size) {
  const auto kind = stakegate::testing::bench_kind(workload);
  if (table_nodes < 2) throw std::runtime_error("--table-nodes must be at least 2");
  fs::create_directories(dir);
  auto w = stakegate::testing::make_bench_workload(table_nodes, kind, frame_size);
  const bool inside_only = kind == stakegate::testing::BenchKind::kInside;
  const size_t looped = inside_only ? w.inside.count : w.outside.count;
  {
    // One element at a time: a million-node table as one JSON document costs gigabytes.
    std::ofstream f(dir + "/node-infos.pub.json");
    f << "[\n";
    for (size_t i = 0; i < w.nodes.size(); ++i) {
      const NodeIdentity& n = w.nodes[i];
      f << (i ? ",\n" : "")
        << nlohmann::json{{"Role", role_name(n.role)}, {"Address", n.address}, {"NodeID", n.node_id}, {"Weight", 100}}.dump();
    }
    f << "\n]\n";
  }
  std::ofstream(dir + "/stakes.json") << nlohmann::json{{w.nodes[0].node_id, w.nodes[0].weight}}.dump() << "\n";
  Config c;
  stakegate::testing::bench_policy(c, w.sessions);
  const std::string abs = fs::absolute(dir).lexically_normal().string();
  YAML::Node y;
  // 1 KiB data rooms (testpmd: --mbuf-size=1152): a 2M-packet capture's pool then fits
  // in memory without hugepages (default-size mbufs for 2M packets cannot be allocated).
  // Memory: the looped capture's mbufs, and the session table (80 bytes an entry).
  const size_t mbufs = looped + 16384;
  y["dataplane"]["eal"] =
      std::vector<std::string>{"--no-huge", "-m", std::to_string(768 + mbufs * 2048 / (1u << 20) + w.sessions * 80 / (1u << 20)),
                               "--no-pci", "--no-shconf"};
  y["dataplane"]["outside"]["vdev"] =
      inside_only ? std::string("net_null0,no-rx=1") : "net_pcap0,rx_pcap=" + abs + "/bench.pcap,infinite_rx=1";
  y["dataplane"]["inside"]["vdev"] = "net_pcap1,rx_pcap=" + abs + "/inside.pcap" + (inside_only ? ",infinite_rx=1" : "");
  y["dataplane"]["workers"] = 1;
  y["dataplane"]["stats_interval_s"] = 1;
  y["dataplane"]["mbufs"] = mbufs;
  y["dataplane"]["mbuf_data_room"] = 1024;
  y["capacity"]["pps"] = decimal(c.capacity_pps);
  y["identity"]["flow_node_infos"] = "node-infos.pub.json";
  y["identity"]["stake_file"] = "stakes.json";
  for (int r = 0; r < kRoleCount; ++r) {
    YAML::Node role = y["roles"][std::string(role_name(static_cast<Role>(r)))];
    role["share"] = decimal(c.roles[r].share);
    role["min_pps"] = decimal(c.roles[r].min_pps);
    role["ports"] = std::vector<int>{3569, 9000};
  }
  y["unregistered"]["share"] = decimal(c.unregistered.share);
  y["unregistered"]["per_source_pps"] = decimal(c.unregistered.per_source_pps);
  y["unregistered"]["ports"] = std::vector<int>{9000, 9001, 8000};
  y["sessions"]["share"] = decimal(c.sessions.share);
  y["cluster"]["prefixes"] = std::vector<std::string>{"198.18.255.0/24"};
  y["limits"]["sessions"] = w.sessions;
  y["control"]["socket"] = abs + "/control.sock";
  y["control"]["metrics"] = YAML::Null;
  YAML::Emitter e;
  e << YAML::Comment("stakegate-scenario --bench " + workload + " --table-nodes " + std::to_string(table_nodes) +
                     " --frame-size " + std::to_string(w.outside.size))
    << YAML::Newline << y;
  std::ofstream(dir + "/bench.yaml") << e.c_str() << "\n";
  {
    PcapWriter pw(dir + "/bench.pcap");
    for (size_t i = 0; i < w.outside.count; ++i) pw.write(i * 1000, w.outside.frame(i), w.outside.size);
    PcapWriter pi(dir + "/inside.pcap");
    for (size_t i = 0; i < w.inside.count; ++i) pi.write(i * 1000, w.inside.frame(i), w.inside.size);
  }
  std::printf("%s: bench.pcap %zu packets, inside.pcap %zu packets, of %u bytes; %zu identities (%s)\n", dir.c_str(),
              w.outside.count, w.inside.count, w.outside.size, table_nodes, workload.c_str());
}

}  // namespace stakegate::scenario
