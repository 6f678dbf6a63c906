#pragma once
// Prometheus exposition of the gateway's counters (names of DESIGN.md). Every series of
// bounded label sets is present from the first scrape; values are sums of per-worker
// counters taken at scrape time.
#include <string>
#include <vector>

#include "stakegate/control/policy_state.h"
#include "stakegate/report/counters.h"

namespace stakegate {

struct PortMetrics {
  std::string name;  // outside | inside
  uint64_t rx_missed = 0, rx_nombuf = 0, tx_dropped = 0, rx_errors = 0;
  bool link_up = false;
  uint32_t link_speed_mbps = 0;  // 0: down or not known
  uint64_t link_changes = 0;
};

struct MetricsInput {
  const Totals* totals = nullptr;
  const PolicyState* state = nullptr;
  std::vector<PortMetrics> ports;
  std::vector<double> worker_busy;  // per worker, 0..1 since the previous scrape
  std::vector<double> worker_cycles_per_packet;  // per worker, over the last second
  std::vector<uint64_t> worker_outside_packets;  // per worker, since start
  uint32_t snapshots_pending_reclaim = 0;
  std::string version;
  uint64_t graylisted = 0, graylist_entries = 0, graylist_exits = 0;
  uint64_t evidence_cases = 0, evidence_errors = 0, evidence_samples = 0, evidence_samples_lost = 0;
  uint64_t graylist_events_lost = 0;
  uint64_t control_loop_errors = 0;  // exceptions caught in the control loop
  uint64_t session_capacity = 0;  // per worker
  unsigned rate_split = 1;        // workers that share a source's rate (1: RSS, or one worker)
  uint64_t monitor_forwarded = 0;  // outside frames forwarded in monitor mode that enforcing would have dropped
  bool last_reload_success = true;  // the last reload (SIGHUP or the API) was applied
  int64_t last_reload_unix = 0;     // when it ended (the start, before any)
  // DNS names of the table: answering now, failing but with last known addresses, never resolved.
  uint64_t dns_resolved = 0, dns_stale = 0, dns_unresolved = 0, dns_failures = 0;
};

std::string render_metrics(const MetricsInput& in);

}  // namespace stakegate
