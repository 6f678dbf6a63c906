// stakegate-scenario: writes a capture (and, unless --config names an existing one, the
// identity table, stake file and config that go with it) from a traffic scenario:
// staked nodes at fractions of their rate, flooders, unregistered sources to public and
// private ports, blocklisted and ejected sources, malformed and non-IP frames, IPv6 and
// VLAN tags. It also writes expected.json: what it sent, by kind, so tests can compare.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "bench_workload.h"
#include "packet_builder.h"
#include "stakegate/config/policy.h"
#include "stakegate/identity/flow_import.h"
#include "stakegate/policy/addr_map.h"
#include "stakegate/report/pcap_io.h"

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace stakegate;
using stakegate::testing::FrameSpec;

namespace {

struct Options {
  std::string out_dir, config;
  std::string format = "snapshot";
  unsigned nodes_per_role = 4, extra_nodes = 0, ejected = 1, block_nodes = 0;
  double honest_fraction = 0.5, flood_stake = 0, flood_multiplier = 10;
  double duration_ms = 1000, capacity_pps = 200000;
  unsigned unreg_sources = 8;
  double unreg_fraction = 0.5, unreg_flood = 0;
  unsigned unreg_flood_sources = 256;
  unsigned unreg_private = 100, port_denied = 100, blocklisted = 100, malformed = 100, non_ip = 50;
  unsigned per_source_extra = 20;  // packets each ejected / blocked node sends
  size_t senders = 0;
  std::string bench;
  size_t table_nodes = 1000;  // the first `senders` nodes send traffic; the rest only fill the table
  double ipv6_fraction = 0.25, vlan_fraction = 0.25;
  unsigned frame_size = 64;
  uint64_t seed = 1;
};

const char* kHelp =
    "usage: stakegate-scenario --out DIR [options]\n"
    "  --config FILE            generate traffic for an existing config instead of creating one\n"
    "  --format snapshot|node-infos  identity file to create (default snapshot)\n"
    "  --nodes-per-role N       staked nodes per role (default 4)\n"
    "  --extra-nodes N          silent identities added to the table (table-size benchmarks)\n"
    "  --ejected N              ejected nodes, snapshot format only (default 1)\n"
    "  --block-nodes N          nodes blocklisted by NodeID (default 0)\n"
    "  --honest-fraction F      honest nodes send at F x their rate (default 0.5)\n"
    "  --flood-stake F          fraction of each role's stake that floods (default 0)\n"
    "  --flood-multiplier M     flooders (the first nodes of each role until at least F of its stake) send at M x their rate (default 10)\n"
    "  --duration-ms D          traffic duration (default 1000)\n"
    "  --capacity-pps C         capacity.pps of the created config (default 200000)\n"
    "  --unregistered-sources N       unregistered clients of the public ports (default 8)\n"
    "  --unregistered-fraction F      ... each at F x per_source_pps (default 0.5)\n"
    "  --unregistered-flood X         unregistered flood at X x capacity.pps in total (default 0)\n"
    "  --unregistered-flood-sources N sources of that flood (default 256)\n"
    "  --unregistered-private N       packets from unregistered sources to private ports (default 100)\n"
    "  --port-denied N  --blocklisted N  --malformed N  --non-ip N   packet counts (100/100/100/50)\n"
    "  --ipv6-fraction F  --vlan-fraction F   (default 0.25 each)\n"
    "  --frame-size B   (default 64)   --seed S (default 1)\n"
    "benchmark workloads (docs/performance.md): writes node-infos.pub.json, stakes.json, bench.yaml, bench.pcap\n"
    "  --bench staked|mixed --table-nodes N [--frame-size B]\n";

std::string hex_id(std::mt19937_64& rng, size_t bytes) {
  static const char* h = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < bytes; ++i) {
    uint8_t b = static_cast<uint8_t>(rng());
    s += h[b >> 4];
    s += h[b & 15];
  }
  return s;
}

std::string hex_to_base64(const std::string& hex) {
  static const char* t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::vector<uint8_t> b;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) b.push_back(static_cast<uint8_t>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  std::string out;
  for (size_t i = 0; i < b.size(); i += 3) {
    uint32_t v = uint32_t{b[i]} << 16 | (i + 1 < b.size() ? uint32_t{b[i + 1]} << 8 : 0) | (i + 2 < b.size() ? b[i + 2] : 0);
    out += t[v >> 18 & 63];
    out += t[v >> 12 & 63];
    out += i + 1 < b.size() ? t[v >> 6 & 63] : '=';
    out += i + 2 < b.size() ? t[v & 63] : '=';
  }
  return out;
}

// Node addresses: 198.18.1.0 onwards (IPv4) or 2001:2::/48 (RFC 5180, IPv6 benchmarking).
IpAddr node_addr(size_t i, bool v6) {
  if (!v6) return IpAddr::from_v4(0xC6120100u + static_cast<uint32_t>(i));
  Ip6 a{};
  a.bytes[0] = 0x20; a.bytes[1] = 0x01; a.bytes[3] = 0x02;
  for (int k = 0; k < 4; ++k) a.bytes[15 - k] = static_cast<uint8_t>(i >> (8 * k));
  a.bytes[11] = 1;
  return IpAddr::from_v6(a);
}

// Unregistered sources: 198.19.0.0/17 (IPv4) or 2001:2:0:1::/64.
IpAddr unreg_addr(size_t i, bool v6) {
  if (!v6) return IpAddr::from_v4(0xC6130000u + static_cast<uint32_t>(i % 32768));
  Ip6 a{};
  a.bytes[0] = 0x20; a.bytes[1] = 0x01; a.bytes[3] = 0x02; a.bytes[7] = 1;
  for (int k = 0; k < 4; ++k) a.bytes[15 - k] = static_cast<uint8_t>(i >> (8 * k));
  return IpAddr::from_v6(a);
}

std::string addr_port(const IpAddr& a, uint16_t port) {
  return a.is_v4 ? a.to_string() + ":" + std::to_string(port) : "[" + a.to_string() + "]:" + std::to_string(port);
}

void create_files(const Options& o, std::string& config_path) {
  fs::create_directories(o.out_dir);
  std::mt19937_64 rng(o.seed * 7919);
  json infos = json::array(), table = json::array(), stakes = json::object();
  std::vector<std::string> blocked_ids;
  size_t total = o.nodes_per_role * kRoleCount + o.extra_nodes;
  unsigned ejected_left = o.format == "snapshot" ? o.ejected : 0;
  if (o.ejected && o.format != "snapshot") throw std::runtime_error("--ejected needs --format snapshot (node-infos has no status)");
  for (size_t i = 0; i < total; ++i) {
    Role role = static_cast<Role>(i < o.nodes_per_role * kRoleCount ? i / o.nodes_per_role : i % kRoleCount);
    size_t j = i % std::max(1u, o.nodes_per_role);
    bool v6 = o.ipv6_fraction > 0 && (i % std::max<size_t>(1, std::lround(1 / o.ipv6_fraction))) == 1;
    std::string id = hex_id(rng, 32), nk = hex_id(rng, 64), sk = hex_id(rng, 96);
    std::string address = addr_port(node_addr(i, v6), 3569);
    std::string status = "EpochParticipationStatusActive";
    // Ejected and blocked nodes are the last of the consensus role, so flooders (the first of each role) stay distinct.
    if (role == Role::kConsensus && j + 1 + o.block_nodes + o.ejected > o.nodes_per_role && i < o.nodes_per_role * kRoleCount) {
      if (j + 1 + o.block_nodes > o.nodes_per_role) blocked_ids.push_back(id);
      else if (ejected_left) { status = "EpochParticipationStatusEjected"; --ejected_left; }
    }
    infos.push_back({{"Role", role_name(role)}, {"Address", address}, {"NodeID", id}, {"Weight", 100},
                     {"NetworkPubKey", nk}, {"StakingPubKey", sk}, {"StakingPoP", hex_id(rng, 48)}});
    table.push_back({{"EncodableIdentitySkeleton",
                      {{"NodeID", id}, {"Address", address}, {"Role", role_name(role)}, {"InitialWeight", 100},
                       {"StakingPubKey", hex_to_base64(sk)}, {"NetworkPubKey", hex_to_base64(nk)}}},
                     {"ParticipationStatus", status}});
    stakes[id] = 1000 * (1 + j % 5);
  }
  std::string id_file;
  if (o.format == "snapshot") {
    id_file = "root-protocol-state-snapshot.json";
    json snap = {{"SealingSegment",
                  {{"ProtocolStateEntries",
                    {{hex_id(rng, 32), {{"EpochEntry", {{"CurrentEpochIdentityTable", table}, {"NextEpochIdentityTable", json::array()}}}}}}}}},
                 {"Params", {{"ChainID", "flow-scenario"}}}};
    std::ofstream(o.out_dir + "/" + id_file) << snap.dump(1) << "\n";
  } else if (o.format == "node-infos") {
    id_file = "node-infos.pub.json";
    std::ofstream(o.out_dir + "/" + id_file) << infos.dump(2) << "\n";
  } else {
    throw std::runtime_error("--format must be snapshot or node-infos");
  }
  std::ofstream(o.out_dir + "/stakes.json") << stakes.dump(2) << "\n";

  std::string dir = fs::absolute(o.out_dir).lexically_normal().string();
  std::ofstream c(o.out_dir + "/config.yaml");
  c << "# generated by stakegate-scenario (seed " << o.seed << ")\n"
    << "dataplane:\n"
    << "  eal: [--no-huge, -m, \"512\", --no-pci, --no-shconf]\n"
    << "  outside: {vdev: \"net_pcap0,rx_pcap=" << dir << "/scenario.pcap\"}\n"
    << "  inside: {vdev: \"net_pcap1,tx_pcap=" << dir << "/pass.pcap\"}\n"
    << "  workers: 1\n"
    << "  stats_interval_s: 1\n"
    << "capacity: {pps: " << o.capacity_pps << "}\n"
    << "identity:\n"
    << "  " << (o.format == "snapshot" ? "flow_snapshot" : "flow_node_infos") << ": " << id_file << "\n"
    << "  stake_file: stakes.json\n"
    << "roles:\n"
    << "  consensus:    {share: 0.30, min_pps: 50, burst_ms: 100, ports: [3569]}\n"
    << "  execution:    {share: 0.25, min_pps: 50, burst_ms: 100, ports: [3569]}\n"
    << "  collection:   {share: 0.15, min_pps: 50, burst_ms: 100, ports: [3569]}\n"
    << "  verification: {share: 0.15, min_pps: 50, burst_ms: 100, ports: [3569]}\n"
    << "  access:       {share: 0.10, min_pps: 50, burst_ms: 100, ports: [3569, 9000, 9001]}\n"
    << "unregistered: {share: 0.05, per_source_pps: 50, burst_ms: 100, ports: [9000, 9001, 8000]}\n"
    << "control: {socket: " << dir << "/control.sock, metrics: null}\n"
    << "evidence: {dir: " << dir << "/evidence}\n"
    << "blocklist:\n"
    << "  - {cidr: 198.19.255.0/24, reason: \"scenario: blocked range\"}\n";
  for (const auto& id : blocked_ids) c << "  - {node_id: " << id << ", reason: \"scenario: blocked node\"}\n";
  config_path = o.out_dir + "/config.yaml";
}

struct Event {
  uint64_t ts;
  std::vector<uint8_t> frame;
};

class Generator {
 public:
  Generator(const Options& o, const LoadedPolicy& p) : o_(o), p_(p), rng_(o.seed) {}

  void run() {
    const uint64_t dur = static_cast<uint64_t>(o_.duration_ms * 1e6);
    json honest = json::array(), flooders = json::array();
    // Flooders: in each role, the first nodes until flood_stake of the role's weight.
    std::array<double, kRoleCount> flood_weight{};
    uint16_t denied_port = 22;
    std::vector<size_t> honest_nodes;
    for (size_t i = 0; i < p_.nodes.size(); ++i) {
      const NodeIdentity& n = p_.nodes[i];
      const SourcePlan& sp = p_.plan.sources[p_.plan.nodes[i].source];
      if (n.ips.empty() || i >= o_.senders) continue;  // silent table entries send nothing
      if (sp.blocked) { spread(sp_frames(n, 17), o_.per_source_extra, dur); expect_["blocklisted"] += o_.per_source_extra; continue; }
      if (sp.ejected) { spread(sp_frames(n, 17), o_.per_source_extra, dur); expect_["ejected"] += o_.per_source_extra; continue; }
      int r = static_cast<int>(n.role);
      double rate = p_.plan.nodes[i].rate_pps;
      bool flood = flood_weight[r] < o_.flood_stake * p_.plan.roles[r].total_weight - 1e-9;
      if (flood) {
        flood_weight[r] += n.weight;
        uint64_t sent = every(sp_frames(n, 17), rate * o_.flood_multiplier, dur);
        flooders.push_back({{"node_id", n.node_id}, {"sent", sent}, {"rate_pps", rate},
                            {"burst", p_.plan.nodes[i].burst_pkts}});
      } else {
        uint64_t sent = every(sp_frames(n, 6), rate * o_.honest_fraction, dur);
        honest.push_back({{"node_id", n.node_id}, {"sent", sent}, {"rate_pps", rate}});
        if (!sp.all_ports) honest_nodes.push_back(i);
      }
    }
    // Port-denied: honest nodes of port-restricted roles to a port no role allows.
    for (unsigned k = 0; k < o_.port_denied && !honest_nodes.empty(); ++k) {
      const NodeIdentity& n = p_.nodes[honest_nodes[k % honest_nodes.size()]];
      FrameSpec f = base(n.ips[0], 6, denied_port);
      add(uniform(dur), f);
      expect_["port_denied"]++;
    }
    const auto& u = p_.cfg.unregistered;
    std::vector<uint16_t> pub = u.ports;
    // Unregistered clients within their per-source rate, and a flood from many sources.
    for (unsigned s = 0; s < o_.unreg_sources && !pub.empty(); ++s) {
      FrameSpec f = base(unreg_addr(s, s % 4 == 3), 6, pub[s % pub.size()]);
      unreg_public_ += every(f, u.per_source_pps * o_.unreg_fraction, dur);
    }
    if (o_.unreg_flood > 0 && !pub.empty()) {
      double per = o_.unreg_flood * p_.cfg.capacity_pps / o_.unreg_flood_sources;
      for (unsigned s = 0; s < o_.unreg_flood_sources; ++s)
        unreg_flood_ += every(base(unreg_addr(1000 + s, false), 17, pub[s % pub.size()]), per, dur);
    }
    for (unsigned k = 0; k < o_.unreg_private; ++k) {
      add(uniform(dur), base(unreg_addr(20000 + k % 64, k % 5 == 4), 6, 3569));
      expect_["unregistered"]++;
    }
    // Blocklisted range: the first IPv4 CIDR of the blocklist.
    for (const auto& b : p_.cfg.blocklist) {
      if (!b.cidr || !b.cidr->base.is_v4) continue;
      uint32_t hosts = b.cidr->prefix_len >= 32 ? 1 : std::min<uint32_t>(250, (1u << (32 - b.cidr->prefix_len)) - 1);
      for (unsigned k = 0; k < o_.blocklisted; ++k) {
        add(uniform(dur), base(IpAddr::from_v4(b.cidr->base.v4 + (hosts > 1 ? 1 + k % hosts : 0)), 6, 9000));
        expect_["blocklisted"]++;
      }
      break;
    }
    for (unsigned k = 0; k < o_.malformed; ++k) { events_.push_back({uniform(dur), malformed(k)}); expect_["malformed"]++; }
    for (unsigned k = 0; k < o_.non_ip; ++k) {
      events_.push_back({uniform(dur), k % 2 ? stakegate::testing::build_lldp()
                                             : stakegate::testing::build_arp(unreg_addr(1, false), node_addr(0, false))});
      l2_++;
    }
    std::stable_sort(events_.begin(), events_.end(), [](const Event& a, const Event& b) { return a.ts < b.ts; });

    PcapWriter w(o_.out_dir + "/scenario.pcap");
    const uint64_t t0 = 1'700'000'000ull * 1'000'000'000ull;
    for (const Event& e : events_) w.write(t0 + e.ts, e.frame.data(), static_cast<uint32_t>(e.frame.size()));

    json exp = {{"packets", events_.size()}, {"duration_ms", o_.duration_ms}, {"expected_drops", expect_},
                {"l2", l2_}, {"honest", honest}, {"flooders", flooders},
                {"unregistered_public_sent", unreg_public_}, {"unregistered_flood_sent", unreg_flood_},
                {"vlan_tagged", vlan_}, {"ipv6", ipv6_}};
    std::ofstream(o_.out_dir + "/expected.json") << exp.dump(2) << "\n";
    std::printf("%s/scenario.pcap: %zu packets over %.0f ms\n", o_.out_dir.c_str(), events_.size(), o_.duration_ms);
  }

 private:
  FrameSpec base(const IpAddr& src, uint8_t proto, uint16_t dport) {
    FrameSpec f;
    f.src = src;
    f.dst = src.is_v4 ? IpAddr::from_v4(0xC612FF01) : node_addr(0xfffff, true);  // a protected node
    f.proto = proto;
    f.dst_port = dport;
    f.src_port = static_cast<uint16_t>(32768 + rng_() % 28000);
    f.frame_size = std::max(o_.frame_size, 60u);
    return f;
  }
  FrameSpec sp_frames(const NodeIdentity& n, uint8_t proto) {
    const SourcePlan& sp = p_.plan.sources[p_.plan.nodes[&n - p_.nodes.data()].source];
    uint16_t port = sp.all_ports || sp.ports.empty() ? 3569 : (std::count(sp.ports.begin(), sp.ports.end(), 3569) ? 3569 : sp.ports[0]);
    return base(n.ips[0], proto, port);
  }
  uint64_t uniform(uint64_t dur) { return rng_() % std::max<uint64_t>(dur, 1); }

  void add(uint64_t ts, FrameSpec f) {
    double r = std::uniform_real_distribution<double>(0, 1)(rng_);
    if (r < o_.vlan_fraction) {
      f.vlans = r < o_.vlan_fraction / 4 ? std::vector<uint16_t>{200, 100} : std::vector<uint16_t>{100};
      vlan_++;
    }
    if (!f.src.is_v4) ipv6_++;
    events_.push_back({ts, stakegate::testing::build_frame(f)});
  }
  // `rate` packets per second, evenly spaced with a random phase. Returns how many.
  uint64_t every(const FrameSpec& f, double rate, uint64_t dur) {
    if (rate <= 0) return 0;
    double gap = 1e9 / rate;
    double t = std::uniform_real_distribution<double>(0, gap)(rng_);
    uint64_t n = 0;
    for (; t < static_cast<double>(dur); t += gap, ++n) add(static_cast<uint64_t>(t), f);
    return n;
  }
  void spread(const FrameSpec& f, unsigned count, uint64_t dur) {
    for (unsigned k = 0; k < count; ++k) add(uniform(dur), f);
  }
  // A catalogue of broken headers, each of which the gateway must drop as malformed.
  std::vector<uint8_t> malformed(unsigned k) {
    FrameSpec f = base(unreg_addr(300, false), 6, 9000);
    std::vector<uint8_t> b = stakegate::testing::build_frame(f);
    switch (k % 8) {
      case 0: b.resize(10); break;                   // shorter than an Ethernet header
      case 1: b[14] = 0x55; break;                   // IPv4 version 5
      case 2: b[14] = 0x44; break;                   // IHL 4 (< 20 bytes)
      case 3: b[16] = 0x40; b[17] = 0; break;        // total length 16384 beyond the frame
      case 4: b.resize(14 + 20 + 10); b[16] = 0; b[17] = 30; break;  // TCP header cut short
      case 5: { FrameSpec v = base(unreg_addr(301, true), 6, 9000);   // IPv6 extension chain past the frame
                v.ipv6_ext = {{0, {6, 200, 0, 0, 0, 0, 0, 0}}};
                b = stakegate::testing::build_frame(v); break; }
      case 6: b.resize(16); b[12] = 0x81; b[13] = 0x00; break;       // VLAN TPID, tag cut off
      case 7: b[14] = 0x4f; break;                   // IHL 60 beyond total length
    }
    return b;
  }

  const Options& o_;
  const LoadedPolicy& p_;
  std::mt19937_64 rng_;
  std::vector<Event> events_;
  std::map<std::string, uint64_t> expect_ = {
      {"malformed", 0}, {"blocklisted", 0}, {"ejected", 0}, {"port_denied", 0}, {"unregistered", 0}};
  uint64_t l2_ = 0, unreg_public_ = 0, unreg_flood_ = 0, vlan_ = 0, ipv6_ = 0;
};

// Files for one DPDK benchmark run: identity table (no keys: they only cost parse time),
// a config with net_pcap infinite_rx in and net_null out, and the capture.
void write_bench(const std::string& dir, const std::string& workload, size_t table_nodes, unsigned frame_size) {
  if (workload != "staked" && workload != "mixed") throw std::runtime_error("--bench must be staked or mixed");
  if (table_nodes < 2) throw std::runtime_error("--table-nodes must be at least 2");
  fs::create_directories(dir);
  auto w = stakegate::testing::make_bench_workload(table_nodes, workload == "mixed", frame_size);
  {
    std::ofstream f(dir + "/node-infos.pub.json");
    f << "[\n";
    for (size_t i = 0; i < w.nodes.size(); ++i)
      f << (i ? ",\n" : "") << R"({"Role":")" << role_name(w.nodes[i].role) << R"(","Address":")" << w.nodes[i].address
        << R"(","NodeID":")" << w.nodes[i].node_id << R"(","Weight":100})";
    f << "\n]\n";
  }
  std::ofstream(dir + "/stakes.json") << "{\"" << w.nodes[0].node_id << "\": " << w.nodes[0].weight << "}\n";
  Config c;
  stakegate::testing::bench_policy(c);
  std::string abs = fs::absolute(dir).lexically_normal().string();
  std::ofstream y(dir + "/bench.yaml");
  y << "# stakegate-scenario --bench " << workload << " --table-nodes " << table_nodes << " --frame-size " << w.frame_size << "\n"
    << "dataplane:\n"
    // 1 KiB data rooms (testpmd: --mbuf-size=1152): a 2M-packet capture's pool then fits
    // in memory without hugepages (default-size mbufs for 2M packets cannot be allocated).
    << "  eal: [--no-huge, -m, \"" << 768 + (w.count + 16384) * 2048 / (1u << 20) << "\", --no-pci, --no-shconf]\n"
    << "  outside: {vdev: \"net_pcap0,rx_pcap=" << abs << "/bench.pcap,infinite_rx=1\"}\n"
    << "  inside: {vdev: \"net_null1,no-rx=1\"}\n"
    << "  workers: 1\n  stats_interval_s: 1\n"
    << "  mbufs: " << w.count + 16384 << "\n  mbuf_data_room: 1024\n"
    << "capacity: {pps: " << c.capacity_pps << "}\n"
    << "identity: {flow_node_infos: node-infos.pub.json, stake_file: stakes.json}\n"
    << "roles:\n";
  for (int r = 0; r < kRoleCount; ++r)
    y << "  " << role_name(static_cast<Role>(r)) << ": {share: " << c.roles[r].share << ", min_pps: " << c.roles[r].min_pps
      << ", ports: [3569, 9000]}\n";
  y << "unregistered: {share: " << c.unregistered.share << ", per_source_pps: " << c.unregistered.per_source_pps
    << ", ports: [9000, 9001, 8000]}\n"
    << "control: {socket: " << abs << "/control.sock, metrics: null}\n";
  PcapWriter pw(dir + "/bench.pcap");
  for (size_t i = 0; i < w.count; ++i) pw.write(i * 1000, w.frame(i), w.frame_size);
  std::printf("%s/bench.pcap: %zu packets of %u bytes, %zu identities (%s)\n", dir.c_str(), w.count, w.frame_size,
              table_nodes, workload.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  try {
    for (int i = 1; i < argc; ++i) {
      std::string a = argv[i];
      if (a == "--help" || a == "-h") { std::printf("%s", kHelp); return 0; }
      if (i + 1 >= argc) throw std::runtime_error(a + " needs a value");
      std::string v = argv[++i];
      std::map<std::string, unsigned*> u = {
          {"--nodes-per-role", &o.nodes_per_role}, {"--extra-nodes", &o.extra_nodes}, {"--ejected", &o.ejected},
          {"--block-nodes", &o.block_nodes}, {"--unregistered-sources", &o.unreg_sources},
          {"--unregistered-flood-sources", &o.unreg_flood_sources}, {"--unregistered-private", &o.unreg_private},
          {"--port-denied", &o.port_denied}, {"--blocklisted", &o.blocklisted}, {"--malformed", &o.malformed},
          {"--non-ip", &o.non_ip}, {"--frame-size", &o.frame_size}};
      std::map<std::string, double*> d = {
          {"--honest-fraction", &o.honest_fraction}, {"--flood-stake", &o.flood_stake},
          {"--flood-multiplier", &o.flood_multiplier}, {"--duration-ms", &o.duration_ms},
          {"--capacity-pps", &o.capacity_pps}, {"--unregistered-fraction", &o.unreg_fraction},
          {"--unregistered-flood", &o.unreg_flood}, {"--ipv6-fraction", &o.ipv6_fraction},
          {"--vlan-fraction", &o.vlan_fraction}};
      if (a == "--out") o.out_dir = v;
      else if (a == "--bench") o.bench = v;
      else if (a == "--table-nodes") o.table_nodes = std::stoull(v);
      else if (a == "--config") o.config = v;
      else if (a == "--format") o.format = v;
      else if (a == "--seed") o.seed = std::stoull(v);
      else if (u.count(a)) *u[a] = static_cast<unsigned>(std::stoul(v));
      else if (d.count(a)) *d[a] = std::stod(v);
      else throw std::runtime_error("unknown option " + a);
    }
    if (o.out_dir.empty()) throw std::runtime_error("--out DIR is required");
    if (o.frame_size > 9000) throw std::runtime_error("--frame-size must be at most 9000");
    if (!o.bench.empty()) {
      write_bench(o.out_dir, o.bench, o.table_nodes, o.frame_size);
      return 0;
    }
    std::string cfg = o.config;
    if (cfg.empty()) create_files(o, cfg);
    else fs::create_directories(o.out_dir);
    LoadedPolicy p = load_policy(cfg);
    o.senders = o.config.empty() ? size_t{o.nodes_per_role} * kRoleCount : p.nodes.size();
    Generator(o, p).run();
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "stakegate-scenario: %s\n%s", e.what(), kHelp);
    return 2;
  }
}
