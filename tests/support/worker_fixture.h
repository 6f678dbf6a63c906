#pragma once
// One worker over a policy, as unit tests, fuzz targets and the microbenchmark need it:
// config -> identities -> SWQoS plan -> snapshot -> a bound Worker. Time is whatever the
// caller passes to send(), so every test controls the clock.
#include <cstddef>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "stakegate/config/config.h"
#include "stakegate/identity/resolve.h"
#include "stakegate/pipeline/worker.h"
#include "stakegate/policy/snapshot_builder.h"
#include "stakegate/policy/stake_plan.h"
#include "tcp_flow.h"

namespace stakegate::testing {

struct WorkerFixture {
  Config cfg;
  std::vector<NodeIdentity> nodes;
  StakePlan plan;
  std::shared_ptr<const PolicySnapshot> snap;
  std::unique_ptr<Worker> worker;
  size_t sessions = 4096;  // session table entries of the worker

  // A policy with the config's inline nodes (literal addresses: no DNS in tests).
  void load(const std::string& yaml, unsigned workers = 1, unsigned table = 1024) {
    cfg = parse_config(yaml, "test.yaml");
    nodes = cfg.identity.inline_nodes;
    resolve_identities(nodes, {}, DnsConfig{}, "test.yaml", nullptr, false);  // literal addresses
    plan_and_bind(workers, table);
  }
  // A policy from a config and a table built in code.
  void load(Config c, std::vector<NodeIdentity> n, unsigned workers = 1, unsigned table = 0) {
    cfg = std::move(c);
    nodes = std::move(n);
    plan_and_bind(workers, table ? table : cfg.unregistered.table_size);
  }
  // The plan again (after changing cfg or nodes), then a new snapshot and a fresh worker.
  void plan_and_bind(unsigned workers = 1, unsigned table = 1024) {
    plan = make_stake_plan(cfg, nodes);
    snap = SnapshotBuilder::build(cfg, plan, Sharding::even(workers));
    Worker::Sizes sizes;
    sizes.unregistered = table;
    sizes.sources = snap->source_count();
    sizes.sessions = sessions;
    worker = std::make_unique<Worker>(sizes);
    worker->bind(snap.get());
  }

  // A frame from the inside (the cluster's side): it passes; sessions open or refresh.
  void inside(const std::vector<uint8_t>& frame, uint64_t now_ns) {
    PacketView v{frame.data(), static_cast<uint32_t>(frame.size())};
    worker->process_inside(&v, 1, now_ns);
  }
  // A remote dials the cluster and proves it receives the cluster's packets: SYN, the
  // cluster's SYN-ACK, and the ACK that verifies the connection (its verdict is returned).
  Verdict accept(TcpFlow& flow, uint64_t now_ns) {
    send(flow.remote_syn(), now_ns);
    inside(flow.local_syn_ack(), now_ns);
    return send(flow.remote_data(), now_ns);
  }
  Verdict send(const std::vector<uint8_t>& frame, uint64_t now_ns) {
    PacketView v{frame.data(), static_cast<uint32_t>(frame.size())};
    Verdict out;
    worker->process_outside(&v, 1, now_ns, &out);
    return out;
  }
  uint32_t slot_of(const std::string& ip) const {
    IpAddr a = *parse_ip(ip);
    return a.is_v4 ? snap->find_v4(a.v4) : snap->find_v6(a.v6);
  }
  const NodeMeter& meter(const std::string& ip) const { return worker->meter(slot_of(ip)); }
  uint64_t count(TrafficClass c, Verdict v, Direction d = Direction::kOutside) const {
    return worker->counters().packets[static_cast<int>(d)][static_cast<int>(c)][static_cast<int>(v)];
  }
};

static_assert(offsetof(NodeMeter, epoch) + sizeof(uint32_t) == sizeof(NodeMeter),
              "NodeMeter has no padding: tests compare meters with memcmp");

// The first counter in which two workers differ ("" when none), field by field: one
// memcmp of the structs would also compare their padding (alignas(64)), which holds no
// counter and need not be equal (under ASan, a copy's was not). `fast_path`: compare the
// fast-path counts too (not when one worker runs without its fast paths).
inline std::string counters_differ(const WorkerCounters& a, const WorkerCounters& b, bool fast_path = true) {
  static_assert(offsetof(WorkerCounters, inside_foreign_v6) == offsetof(WorkerCounters, unregistered_evictions) + 22 * 8,
                "WorkerCounters changed: compare the new counter here");
  if (std::memcmp(a.packets, b.packets, sizeof a.packets) != 0) return "packets";
  if (std::memcmp(a.bytes, b.bytes, sizeof a.bytes) != 0) return "bytes";
  if (a.unregistered_evictions != b.unregistered_evictions) return "unregistered_evictions";
  if (a.non_first_fragments != b.non_first_fragments) return "non_first_fragments";
  if (a.sessions_created != b.sessions_created) return "sessions_created";
  if (a.sessions_evicted != b.sessions_evicted) return "sessions_evicted";
  if (a.sessions_verified != b.sessions_verified) return "sessions_verified";
  if (a.unregistered_proven != b.unregistered_proven) return "unregistered_proven";
  if (a.unregistered_reserve != b.unregistered_reserve) return "unregistered_reserve";
  if (a.request_hop_passed != b.request_hop_passed) return "request_hop_passed";
  if (fast_path && a.fast_path != b.fast_path) return "fast_path";
  if (fast_path && a.fast_path_inside != b.fast_path_inside) return "fast_path_inside";
  if (a.neighbour_answers != b.neighbour_answers) return "neighbour_answers";
  if (a.handoffs != b.handoffs) return "handoffs";
  if (a.fragments_held != b.fragments_held) return "fragments_held";
  if (a.dhcp_answers != b.dhcp_answers) return "dhcp_answers";
  if (a.listed_neighbour_passes != b.listed_neighbour_passes) return "listed_neighbour_passes";
  if (a.routing_passes != b.routing_passes) return "routing_passes";
  if (a.refusals_passed != b.refusals_passed) return "refusals_passed";
  if (a.routing_over_rate != b.routing_over_rate) return "routing_over_rate";
  if (a.spoofed_internal != b.spoofed_internal) return "spoofed_internal";
  if (a.neighbour_impostors != b.neighbour_impostors) return "neighbour_impostors";
  if (a.inside_foreign != b.inside_foreign) return "inside_foreign";
  if (a.inside_foreign_v4 != b.inside_foreign_v4) return "inside_foreign_v4";
  if (a.inside_foreign_v6 != b.inside_foreign_v6) return "inside_foreign_v6";
  return "";
}

// The first field in which two session entries differ ("" when none). Field by field for
// the reason above: a Session has padding inside (after its key's 37 bytes, and before
// seq0) that a copy need not carry.
inline std::string session_differs(const Session& a, const Session& b) {
  static_assert(offsetof(Session, rm_ack) + sizeof(uint32_t) == sizeof(Session) && offsetof(Session, seq0) == 44,
                "Session changed: compare the new field here");
  if (!(a.key == b.key)) return "key";
  if (a.state != b.state) return "state";
  if (a.flags != b.flags) return "flags";
  if (a.wscale != b.wscale) return "wscale";
  if (a.seq0 != b.seq0) return "seq0";
  if (a.snd_max != b.snd_max) return "snd_max";
  if (a.cl_ack != b.cl_ack) return "cl_ack";
  if (a.cl_win != b.cl_win) return "cl_win";
  if (a.rm_win != b.rm_win) return "rm_win";
  if (a.rm_ack != b.rm_ack) return "rm_ack";
  return "";
}

}  // namespace stakegate::testing
