// The generated cluster: identities in either Flow format, stakes and a config that
// runs it on net_pcap devices. JSON through nlohmann, YAML through yaml-cpp.
#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <fstream>
#include <iomanip>
#include <sstream>
#include <nlohmann/json.hpp>
#include <random>

#include "scenario.h"

namespace stakegate::scenario {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

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

std::string addr_port(const IpAddr& a, uint16_t port) {
  return a.is_v4 ? a.to_string() + ":" + std::to_string(port) : "[" + a.to_string() + "]:" + std::to_string(port);
}

YAML::Node flow_map() {
  YAML::Node n(YAML::NodeType::Map);
  n.SetStyle(YAML::EmitterStyle::Flow);
  return n;
}
YAML::Node ports(std::initializer_list<int> list) {
  YAML::Node n(YAML::NodeType::Sequence);
  n.SetStyle(YAML::EmitterStyle::Flow);
  for (int p : list) n.push_back(p);
  return n;
}
YAML::Node blocked(const char* key, const std::string& what, const std::string& reason) {
  YAML::Node n = flow_map();
  n[key] = what;
  n["reason"] = reason;
  return n;
}

}  // namespace

IpAddr cluster_addr(bool v6) {
  if (!v6) return IpAddr::from_v4(0xC612FF01);  // 198.18.255.1
  Ip6 a{};
  a.bytes[0] = 0x20; a.bytes[1] = 0x01; a.bytes[3] = 0x02; a.bytes[5] = 0xff; a.bytes[15] = 1;  // 2001:2:ff::1
  return IpAddr::from_v6(a);
}

std::string decimal(double v) {
  std::ostringstream o;
  o << std::setprecision(12) << v;
  return o.str();
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

std::string create_cluster_files(const Options& o) {
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

  const std::string dir = fs::absolute(o.out_dir).lexically_normal().string();
  YAML::Node c;
  c["dataplane"]["eal"] = std::vector<std::string>{"--no-huge", "-m", "512", "--no-pci", "--no-shconf"};
  c["dataplane"]["outside"]["vdev"] = "net_pcap0,rx_pcap=" + dir + "/outside.pcap,tx_pcap=" + dir + "/out.pcap";
  c["dataplane"]["inside"]["vdev"] = "net_pcap1,rx_pcap=" + dir + "/inside.pcap,tx_pcap=" + dir + "/pass.pcap";
  c["dataplane"]["workers"] = 1;
  c["dataplane"]["stats_interval_s"] = 1;
  c["capacity"]["pps"] = decimal(o.capacity_pps);
  c["identity"][o.format == "snapshot" ? "flow_snapshot" : "flow_node_infos"] = id_file;
  c["identity"]["stake_file"] = "stakes.json";
  const std::pair<Role, double> shares[] = {{Role::kConsensus, 0.25}, {Role::kExecution, 0.25}, {Role::kCollection, 0.15},
                                            {Role::kVerification, 0.15}, {Role::kAccess, 0.10}};
  for (const auto& [role, share] : shares) {
    YAML::Node r = flow_map();
    r["share"] = decimal(share);
    r["min_pps"] = 50;
    r["burst_ms"] = 100;
    r["ports"] = role == Role::kAccess ? ports({3569, 9000, 9001}) : ports({3569});
    c["roles"][std::string(role_name(role))] = r;
  }
  YAML::Node u = flow_map();
  u["share"] = decimal(0.05);
  u["per_source_pps"] = 50;
  u["burst_ms"] = 100;
  u["ports"] = ports({9000, 9001, 8000});
  c["unregistered"] = u;
  YAML::Node prefixes(YAML::NodeType::Sequence);
  prefixes.SetStyle(YAML::EmitterStyle::Flow);
  prefixes.push_back("198.18.255.0/24");
  prefixes.push_back("2001:2:ff::/64");
  c["cluster"]["prefixes"] = prefixes;
  c["control"]["socket"] = dir + "/control.sock";
  c["control"]["metrics"] = YAML::Null;
  c["evidence"]["dir"] = dir + "/evidence";
  c["blocklist"].push_back(blocked("cidr", "198.19.255.0/24", "scenario: blocked range"));
  for (const auto& id : blocked_ids) c["blocklist"].push_back(blocked("node_id", id, "scenario: blocked node"));
  YAML::Emitter e;
  e << YAML::Comment("generated by stakegate-scenario (seed " + std::to_string(o.seed) + ")") << YAML::Newline << c;
  const std::string path = o.out_dir + "/config.yaml";
  std::ofstream(path) << e.c_str() << "\n";
  return path;
}

}  // namespace stakegate::scenario
