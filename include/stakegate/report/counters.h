#pragma once
// Sums per-worker counters (the reader aggregates; workers never share a written line)
// and renders them as the replay/run report and the per-role table.
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "stakegate/identity/node.h"
#include "stakegate/pipeline/worker.h"
#include "stakegate/policy/stake_plan.h"

namespace stakegate {

// One source's counters. `passed` and `over_rate` are its verified connections (its
// allowance); `request_*` the request channel (traffic off verified connections, which
// proves nothing about who sent it); `session_*` its UDP and ICMP replies on sessions the
// cluster opened (the shared sessions budget; unattributable too).
struct SourceTotals {
  uint64_t passed = 0, blocklisted = 0, ejected = 0, port_denied = 0, over_rate = 0;
  uint64_t request_passed = 0, request_over_rate = 0;
  uint64_t session_passed = 0, session_over_rate = 0;
};

struct Totals {
  WorkerCounters c{};
  std::vector<SourceTotals> sources;  // by slot

  // Adds a worker's counters, read with relaxed loads so that another thread may read a
  // running worker, and those of its first `slots` meter slots (O(slots); 0: none).
  // A reader on another thread passes the slot count of the policy it knows, never the
  // worker's own snapshot pointer, which only the worker may follow.
  void add(const Worker& w, size_t slots);
  uint64_t packets(Direction d) const;
  uint64_t passed(Direction d) const;
  uint64_t count(Direction d, TrafficClass cls, Verdict v) const {
    return c.packets[static_cast<int>(d)][static_cast<int>(cls)][static_cast<int>(v)];
  }
  uint64_t drops(Verdict v) const;  // outside direction, every class
};

// With the rate divided over the workers (`dataplane.rss: false`: `rate_split` workers,
// each enforcing rate / rate_split on what it receives), a NIC that does not spread its
// queues gives one worker nearly everything, and every node then gets 1/rate_split of its
// rate. Given the outside packets each worker received (over an interval, or since start):
// the busiest worker's share when the rate is split, it holds at least 90 % and there were
// at least 1,000 packets; else 0.
double unspread_share(const std::vector<uint64_t>& received, unsigned rate_split);

nlohmann::json make_report(const Totals& t, const std::vector<NodeIdentity>& nodes, const StakePlan& plan);

// One row per traffic class seen from the outside: passed and dropped by reason.
std::string role_table(const Totals& t);

// "outside rx N pass P drop D (reason n, ...) | inside rx M | tx dropped X": the log summary.
std::string summary_line(const Totals& t, uint64_t tx_dropped);

}  // namespace stakegate
