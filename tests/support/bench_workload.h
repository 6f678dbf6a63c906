#pragma once
// The benchmark workloads of docs/performance.md, shared by the Google Benchmark
// (in memory) and `stakegate-scenario --bench` (files for the DPDK runs). Each has the
// cluster's own frames (`inside`, fed once first: the SYN-ACKs that open the nodes'
// connections, the queries that open UDP sessions) and the outside frames that loop:
//  - staked:   every packet from a staked node on its verified connection, within its
//              rate, cycling over the table;
//  - mixed:    half an unregistered flood (65,536 sources, per-source limit exceeded),
//              a quarter one staked flooder far over its rate on its verified
//              connection, a quarter honest nodes on theirs;
//  - sessions: half replies of unregistered servers on UDP sessions the cluster opened
//              (65,536 of them), half honest nodes on verified connections;
//  - inside:   the inside direction alone: the cluster's packets to max(65,536, table)
//              distinct remote 5-tuples, each a session lookup-or-insert (no outside frames;
//              `inside` loops instead).
// Node i has address 198.18.0.0 + i for i < 65,536, then 240.0.0.0 + i (class E:
// reserved, never routed; these frames only ever live in memory or a pcap).
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "packet_builder.h"
#include "stakegate/config/config.h"
#include "stakegate/identity/node.h"

namespace stakegate::testing {

enum class BenchKind { kStaked, kMixed, kSessions, kInside };

inline BenchKind bench_kind(const std::string& name) {
  if (name == "staked") return BenchKind::kStaked;
  if (name == "mixed") return BenchKind::kMixed;
  if (name == "sessions") return BenchKind::kSessions;
  if (name == "inside") return BenchKind::kInside;
  throw std::runtime_error("unknown benchmark workload '" + name + "' (staked, mixed, sessions, inside)");
}

struct Frames {
  std::vector<uint8_t> bytes;  // `count` frames of `size` bytes, back to back
  uint32_t size = 64;
  size_t count = 0;
  const uint8_t* frame(size_t i) const { return bytes.data() + i * size; }
  void add(FrameSpec f) {
    f.frame_size = size;
    auto b = build_frame(f);
    b.resize(size);
    bytes.insert(bytes.end(), b.begin(), b.end());
    ++count;
  }
};

struct BenchWorkload {
  std::vector<NodeIdentity> nodes;
  Frames outside, inside;
  size_t sessions = 0;  // session table entries the workload needs per worker
};

inline IpAddr bench_node_addr(size_t i) {
  return IpAddr::from_v4(i < 65536 ? 0xC6120000u + static_cast<uint32_t>(i) : 0xF0000000u + static_cast<uint32_t>(i));
}
inline constexpr uint32_t kBenchCluster = 0xC612FF01;  // 198.18.255.1 (cluster.prefixes 198.18.255.0/24)
inline constexpr uint32_t kBenchRemoteIsn = 1000, kBenchClusterIsn = 7000000;

// Outside packets: the table size for `staked` (each node once per cycle), twice it
// otherwise, at least 65,536.
inline size_t bench_packets(size_t table_nodes, BenchKind k) {
  return std::max<size_t>(65536, k == BenchKind::kStaked ? table_nodes : 2 * table_nodes);
}

// Node i's connection to the cluster's 3569, as the gateway sees it: the cluster's
// SYN-ACK (inside) and the remote's in-window segments (outside; the first verifies it).
inline FrameSpec bench_syn_ack(size_t i) {
  FrameSpec f;
  f.src = IpAddr::from_v4(kBenchCluster);
  f.dst = bench_node_addr(i);
  f.src_port = 3569;
  f.dst_port = 40000;
  f.tcp_flags = 0x12;
  f.seq = kBenchClusterIsn;
  f.ack = kBenchRemoteIsn + 1;
  f.wscale = 7;
  return f;
}
inline FrameSpec bench_segment(size_t i) {
  FrameSpec f;
  f.src = bench_node_addr(i);
  f.dst = IpAddr::from_v4(kBenchCluster);
  f.src_port = 40000;
  f.dst_port = 3569;
  f.tcp_flags = 0x10;
  f.seq = kBenchRemoteIsn + 1;
  f.ack = kBenchClusterIsn + 1;
  return f;
}
// UDP session j: the cluster's query (inside) and the server's reply (outside).
inline FrameSpec bench_query(size_t j, bool reply) {
  FrameSpec f;
  f.proto = 17;
  f.src = IpAddr::from_v4(kBenchCluster);
  f.dst = IpAddr::from_v4(0xC6130000u + static_cast<uint32_t>(j % 65536));  // 198.19.x.y
  f.src_port = static_cast<uint16_t>(1024 + j / 65536);
  f.dst_port = 53;
  if (reply) {
    std::swap(f.src, f.dst);
    std::swap(f.src_port, f.dst_port);
  }
  return f;
}

inline BenchWorkload make_bench_workload(size_t table_nodes, BenchKind kind, uint32_t frame_size) {
  BenchWorkload w;
  const uint32_t size = std::max<uint32_t>(frame_size, 60);
  w.outside.size = w.inside.size = size;
  w.nodes.resize(table_nodes);
  const bool mixed = kind == BenchKind::kMixed;
  for (size_t i = 0; i < table_nodes; ++i) {
    NodeIdentity& n = w.nodes[i];
    char id[65];
    std::snprintf(id, sizeof id, "%016zx%048x", i + 1, 0xbe9c4);
    n.node_id = id;
    n.role = static_cast<Role>(i % kRoleCount);
    n.ips = {bench_node_addr(i)};
    n.host = n.ips[0].to_string();
    n.port = 3569;
    n.address = n.host + ":3569";
    n.weight = (mixed && i == 0) ? 1e-9 : 100;  // node 0 floods: its rate is the role's min_pps
  }
  const size_t count = bench_packets(table_nodes, kind);
  if (kind == BenchKind::kInside) {
    for (size_t j = 0; j < count; ++j) w.inside.add(bench_query(j, false));
    w.sessions = std::max<size_t>(262144, 2 * count);
    return w;
  }
  for (size_t i = 0; i < table_nodes; ++i) w.inside.add(bench_syn_ack(i));
  if (kind == BenchKind::kSessions)
    for (size_t j = 0; j < 65536; ++j) w.inside.add(bench_query(j, false));
  w.sessions = std::max<size_t>(262144, 2 * w.inside.count);
  size_t honest = 0, replies = 0;
  for (size_t k = 0; k < count; ++k) {
    if (kind == BenchKind::kStaked) {
      w.outside.add(bench_segment(k % table_nodes));
    } else if (kind == BenchKind::kSessions) {
      if (k % 2 == 0) w.outside.add(bench_query(replies++ % 65536, true));
      else w.outside.add(bench_segment(honest++ % table_nodes));
    } else if (k % 4 < 2) {  // mixed: the unregistered flood to a public port
      FrameSpec f;
      f.src = IpAddr::from_v4(0xC6130000u + static_cast<uint32_t>((k / 2 * 2654435761u) % 65536));
      f.dst = IpAddr::from_v4(kBenchCluster);
      f.src_port = static_cast<uint16_t>(32768 + k % 28000);
      f.dst_port = 9000;
      f.proto = 17;
      w.outside.add(f);
    } else if (k % 4 == 2) {  // the staked flooder, on its own connection
      w.outside.add(bench_segment(0));
    } else {
      w.outside.add(bench_segment(1 + honest++ % (table_nodes - 1)));
    }
  }
  return w;
}

// Capacity so large that every node's share exceeds what it is offered: only the
// flooder (at its min_pps) and the unregistered per-source limit drop anything.
inline void bench_policy(Config& c, size_t sessions) {
  c.capacity_pps = 1e10;
  for (int r = 0; r < kRoleCount; ++r) c.roles[r] = RoleQos{true, 0.18, 50, 100, {3569, 9000}};
  c.unregistered = UnregisteredQos{0.04, 50, 100, {9000, 9001, 8000}, 65536};
  c.sessions.share = 0.05;
  c.cluster.prefixes = {*parse_cidr("198.18.255.0/24")};
  c.limits_sessions = sessions;
}

}  // namespace stakegate::testing
