#pragma once
// stakegate-scenario: traffic scenarios for the demo, the tests and the benchmark.
#include <cstdint>
#include <string>

#include "stakegate/policy/load.h"

namespace stakegate::scenario {

struct Options {
  std::string out_dir, config;
  std::string format = "snapshot";
  unsigned nodes_per_role = 4, extra_nodes = 0, ejected = 1, block_nodes = 0;
  double honest_fraction = 0.5, flood_stake = 0, flood_multiplier = 10;
  double duration_ms = 1000, capacity_pps = 200000;
  unsigned unreg_sources = 8;
  double unreg_fraction = 0.5, unreg_flood = 0;
  unsigned unreg_flood_sources = 256;
  bool unreg_flood_tcp = false;  // the flood as TCP ACKs (guessed numbers), not UDP
  unsigned unreg_private = 100, port_denied = 100, blocklisted = 100, malformed = 100, non_ip = 50;
  unsigned spoofed = 50;           // packets claiming a source inside the cluster's prefixes
  unsigned cluster_queries = 20;   // DNS queries the cluster sends (their replies reach its ephemeral ports)
  unsigned infra = 20;             // neighbour solicitations and ICMP errors about the cluster's packets
  double spoof_multiplier = 0;     // forged traffic with each honest node's address, at X x its rate
  unsigned per_source_extra = 20;  // packets each ejected / blocked node sends
  size_t senders = 0;              // the first `senders` nodes send traffic; the rest only fill the table
  std::string bench;
  size_t table_nodes = 1000;
  double ipv6_fraction = 0.25, vlan_fraction = 0.25;
  unsigned frame_size = 64;
  uint64_t seed = 1;
};

// Writes the identity table (Flow snapshot or node-infos), stakes.json and config.yaml
// for a generated cluster into o.out_dir; returns the config's path.
std::string create_cluster_files(const Options& o);

// Writes the traffic for a policy: scenario.pcap (both directions in time order, as a span
// port would capture them: what `replay` takes), outside.pcap and inside.pcap (each port's
// frames, for `run` on net_pcap devices) and expected.json (what was sent, by kind).
void generate_traffic(const Options& o, const LoadedPolicy& p);

// Files for one DPDK benchmark run: node-infos.pub.json, stakes.json, bench.yaml, bench.pcap.
void write_bench(const std::string& dir, const std::string& workload, size_t table_nodes, unsigned frame_size);

// A number as people write it in YAML ("0.3", not 0.29999999999999999).
std::string decimal(double v);

// Node addresses: 198.18.1.0 onwards (IPv4) or 2001:2::/48 (RFC 5180, IPv6 benchmarking).
IpAddr node_addr(size_t i, bool v6);
// The protected cluster: 198.18.255.0/24 and 2001:2:ff::/64 (its `cluster.prefixes`).
IpAddr cluster_addr(bool v6);
// Unregistered sources: 198.19.0.0/17 (IPv4) or 2001:2:0:1::/64.
IpAddr unreg_addr(size_t i, bool v6);

}  // namespace stakegate::scenario
