#pragma once
// The benchmark workloads of docs/performance.md, shared by the Google Benchmark
// (in memory) and `stakegate-scenario --bench` (files for the DPDK runs):
//  - staked: every packet from a staked node within its rate, cycling over the table;
//  - mixed:  half an unregistered flood (65,536 sources, per-source limit exceeded),
//            a quarter one staked flooder far over its rate, a quarter honest nodes.
// Node i has address 198.18.0.0 + i for i < 65,536, then 240.0.0.0 + i (class E:
// reserved, never routed; these frames only ever live in memory or a pcap).
#include <cstdint>
#include <string>
#include <vector>

#include "packet_builder.h"
#include "stakegate/config/config.h"
#include "stakegate/identity/node.h"

namespace stakegate::testing {

struct BenchWorkload {
  std::vector<NodeIdentity> nodes;
  std::vector<uint8_t> frames;  // `count` frames of `frame_size` bytes, back to back
  uint32_t frame_size = 64;
  size_t count = 0;
  const uint8_t* frame(size_t i) const { return frames.data() + i * frame_size; }
};

inline IpAddr bench_node_addr(size_t i) {
  return IpAddr::from_v4(i < 65536 ? 0xC6120000u + static_cast<uint32_t>(i) : 0xF0000000u + static_cast<uint32_t>(i));
}

// Packets: the table size for `staked` (each node once per cycle), twice it for `mixed`,
// at least 65,536.
inline size_t bench_packets(size_t table_nodes, bool mixed) {
  return std::max<size_t>(65536, mixed ? 2 * table_nodes : table_nodes);
}

inline BenchWorkload make_bench_workload(size_t table_nodes, bool mixed, uint32_t frame_size) {
  BenchWorkload w;
  w.frame_size = std::max<uint32_t>(frame_size, 60);
  w.count = bench_packets(table_nodes, mixed);
  w.nodes.resize(table_nodes);
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
  w.frames.resize(w.count * w.frame_size);
  size_t honest = 0;
  for (size_t k = 0; k < w.count; ++k) {
    FrameSpec f;
    f.frame_size = w.frame_size;
    f.dst = IpAddr::from_v4(0xC612FF01);
    f.src_port = static_cast<uint16_t>(32768 + k % 28000);
    unsigned kind = mixed ? k % 4 : 3;
    if (kind < 2) {         // unregistered flood to a public port
      f.src = IpAddr::from_v4(0xC6130000u + static_cast<uint32_t>((k / 2 * 2654435761u) % 65536));
      f.dst_port = 9000;
      f.proto = 17;
    } else if (kind == 2) { // the staked flooder
      f.src = bench_node_addr(0);
      f.proto = 17;
    } else {                // honest staked traffic, cycling over the table
      size_t i = mixed ? 1 + honest++ % (table_nodes - 1) : k % table_nodes;
      f.src = bench_node_addr(i);
    }
    auto b = build_frame(f);
    std::copy(b.begin(), b.end(), w.frames.begin() + static_cast<std::ptrdiff_t>(k * w.frame_size));
  }
  return w;
}

// Capacity so large that every node's share exceeds what it is offered: only the
// flooder (at its min_pps) and the unregistered per-source limit drop anything.
inline void bench_policy(Config& c) {
  c.capacity_pps = 1e10;
  for (int r = 0; r < kRoleCount; ++r) c.roles[r] = RoleQos{true, 0.19, 50, 100, {3569, 9000}};
  c.unregistered = UnregisteredQos{0.04, 50, 100, {9000, 9001, 8000}, 65536};
}

}  // namespace stakegate::testing
