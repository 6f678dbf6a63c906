#pragma once
// The worker lcore's loop, in the order a burst travels:
//   adopt a new policy if one was published; RX inside -> sessions -> TX outside;
//   RX outside -> decide -> TX inside; report quiescence to RCU; publish the worker's clock.
#include <rte_rcu_qsbr.h>
#include <rte_ring.h>

#include <atomic>
#include <cstdint>

#include "stakegate/pipeline/worker.h"

namespace stakegate {

struct PortQueues {
  uint16_t port = 0;
  uint16_t rx_queues = 0;  // 0: the device cannot receive (e.g. a tx-only net_pcap)
  uint16_t tx_queues = 0;
};

// One worker lcore's context: set up by the main lcore before launch, then written only
// by that worker (its counters on their own cache line) and read by the control thread.
struct WorkerCtx {
  Worker* worker = nullptr;
  uint16_t queue = 0;
  PortQueues outside, inside;
  unsigned burst = 32;
  uint64_t ns_per_tsc_q32 = 0;  // ns = (tsc delta * ns_per_tsc_q32) >> 32: no division per burst
  uint64_t mono0_ns = 0;        // CLOCK_MONOTONIC at the gateway's start: every worker's clock counts from it
  const std::atomic<const PolicySnapshot*>* policy = nullptr;
  rte_rcu_qsbr* rcu = nullptr;
  const std::atomic<bool>* stop = nullptr;
  // Several workers with RSS: frames the worker hands to another (Worker::kHandoff) go to
  // that worker's ring, handoff[i]; its own is handoff[queue]. Null: no handoffs.
  rte_ring* const* handoff = nullptr;
  alignas(64) uint64_t tx_dropped[kDirectionCount] = {};  // outside: also handoffs a full ring refused
  uint64_t busy_tsc = 0;      // TSC spent in loop iterations that carried packets
  uint64_t total_tsc = 0;
  uint64_t busy_packets = 0;  // packets those iterations carried (both directions)
  uint64_t monitor_forwarded = 0;  // outside frames forwarded in monitor mode that enforcing would have dropped
};

inline constexpr unsigned kMaxBurst = 256;

// rte_eal_remote_launch entry point; `arg` is a WorkerCtx.
int worker_main(void* arg);

}  // namespace stakegate
