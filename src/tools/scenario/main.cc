// stakegate-scenario: writes a capture (and, unless --config names an existing one, the
// identity table, stake file and config that go with it) from a traffic scenario:
// staked nodes at fractions of their rate, flooders, unregistered sources to public and
// private ports, blocklisted and ejected sources, malformed and non-IP frames, IPv6 and
// VLAN tags. It also writes expected.json: what it sent, by kind, so tests can compare.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>

#include "scenario.h"

int main(int argc, char** argv) {
  using stakegate::scenario::Options;
  Options o;
  CLI::App app{"stakegate-scenario: traffic, identities and config for the demo, the tests and the benchmark",
               "stakegate-scenario"};
  app.add_option("--out", o.out_dir, "output folder")->required();
  app.add_option("--config", o.config, "generate traffic for an existing config instead of creating one");
  app.add_option("--format", o.format, "identity file to create")->check(CLI::IsMember({"snapshot", "node-infos"}));
  app.add_option("--nodes-per-role", o.nodes_per_role, "staked nodes per role (default 4)");
  app.add_option("--extra-nodes", o.extra_nodes, "silent identities added to the table (table-size benchmarks)");
  app.add_option("--ejected", o.ejected, "ejected nodes, snapshot format only (default 1)");
  app.add_option("--block-nodes", o.block_nodes, "nodes blocklisted by NodeID (default 0)");
  app.add_option("--honest-fraction", o.honest_fraction, "honest nodes send at F x their rate (default 0.5)");
  app.add_option("--flood-stake", o.flood_stake, "fraction of each role's stake that floods (default 0)");
  app.add_option("--flood-multiplier", o.flood_multiplier,
                 "flooders (the first nodes of each role until at least --flood-stake of its stake) send at M x their rate (default 10)");
  app.add_option("--duration-ms", o.duration_ms, "traffic duration (default 1000)")->check(CLI::PositiveNumber);
  app.add_option("--capacity-pps", o.capacity_pps, "capacity.pps of the created config (default 200000)")->check(CLI::PositiveNumber);
  app.add_option("--unregistered-sources", o.unreg_sources, "unregistered clients of the public ports (default 8)");
  app.add_option("--unregistered-fraction", o.unreg_fraction, "... each at F x per_source_pps (default 0.5)");
  app.add_option("--unregistered-flood", o.unreg_flood, "unregistered flood at X x capacity.pps in total (default 0)");
  app.add_option("--unregistered-flood-sources", o.unreg_flood_sources, "sources of that flood (default 256, at most 32768)");
  app.add_flag("--unregistered-flood-tcp", o.unreg_flood_tcp, "that flood as TCP ACKs with guessed numbers (default UDP)");
  app.add_option("--unregistered-private", o.unreg_private, "packets from unregistered sources to private ports (default 100)");
  app.add_option("--port-denied", o.port_denied, "packets of staked nodes to ports their role does not allow (default 100)");
  app.add_option("--blocklisted", o.blocklisted, "packets from the blocklisted range (default 100)");
  app.add_option("--malformed", o.malformed, "malformed frames (default 100)");
  app.add_option("--non-ip", o.non_ip, "non-IP frames: ARP and LLDP (default 50)");
  app.add_option("--spoofed", o.spoofed, "packets claiming a source inside the cluster's prefixes (default 50)");
  app.add_option("--cluster-queries", o.cluster_queries, "DNS queries the cluster sends, each answered (default 20)");
  app.add_option("--infra", o.infra, "ICMP errors about the cluster's packets and neighbour solicitations (default 20)");
  app.add_option("--spoof-multiplier", o.spoof_multiplier,
                 "traffic forged with each honest node's address (UDP, and TCP with guessed sequence numbers), at X x its rate");
  app.add_option("--ipv6-fraction", o.ipv6_fraction, "share of IPv6 nodes and packets (default 0.25)");
  app.add_option("--vlan-fraction", o.vlan_fraction, "share of VLAN-tagged packets (default 0.25)");
  app.add_option("--frame-size", o.frame_size, "frame size in bytes (default 64)")->check(CLI::Range(60u, 9000u));
  app.add_option("--seed", o.seed, "random seed (default 1)");
  app.add_option("--bench", o.bench, "benchmark workload files instead (docs/performance.md)")
      ->check(CLI::IsMember({"staked", "mixed", "sessions", "inside"}));
  app.add_option("--table-nodes", o.table_nodes, "identities of the benchmark table (default 1000)")->check(CLI::Range(size_t{2}, size_t{1} << 26));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  try {
    if (!o.bench.empty()) {
      stakegate::scenario::write_bench(o.out_dir, o.bench, o.table_nodes, o.frame_size);
      return 0;
    }
    std::string cfg = o.config;
    if (cfg.empty()) cfg = stakegate::scenario::create_cluster_files(o);
    else std::filesystem::create_directories(o.out_dir);
    stakegate::LoadedPolicy p = stakegate::load_policy(cfg);
    o.senders = o.config.empty() ? size_t{o.nodes_per_role} * stakegate::kRoleCount : p.nodes.size();
    stakegate::scenario::generate_traffic(o, p);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "stakegate-scenario: %s\n", e.what());
    return 1;
  }
}
