#pragma once
// Staked sources as the control plane shows them: identity, allowance, counters and
// peer score summed over the workers. Read off the worker cores (run's control thread,
// or replay between packets), so the evidence code and the API share one view.
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "stakegate/config/config.h"
#include "stakegate/identity/node.h"
#include "stakegate/pipeline/worker.h"
#include "stakegate/policy/stake_plan.h"
#include "stakegate/report/counters.h"

namespace stakegate {

// One staked source, looked up when an event arrives.
struct SourceView {
  uint32_t slot = 0, epoch = 0;
  std::vector<NodeIdentity> nodes;  // every node behind the source address
  std::vector<std::string> addrs;
  Role role = Role::kCollection;
  double rate_pps = 0, burst = 0;   // its SWQoS allowance (all workers)
  SourceTotals counters;            // summed over the workers, now
  double score = 0;                 // summed over the workers, decayed to now
  bool graylisted = false;          // by any worker, and not yet recovered by decay
};

// "id (role), id (role) at addr,addr": how logs and reports name a source.
std::string describe_source(const SourceView& s);

// Builds SourceViews from the workers and the identity table in force. Not thread-safe:
// one control thread (or replay) calls it; the workers' fields are read as they are.
class SourceDirectory {
 public:
  // `shards`: how many workers share a source's traffic (1 with RSS on source IP).
  void reset(const std::vector<const Worker*>& workers, const std::vector<NodeIdentity>* nodes, const StakePlan* plan,
             const ScoringConfig& scoring, unsigned shards = 0);
  unsigned shards() const { return shards_; }
  // Scores are decayed to each worker's own clock (Worker::clock_ns).
  std::optional<SourceView> by_slot(uint32_t slot) const;
  std::optional<SourceView> by_node(const std::string& node_id) const;
  uint64_t now() const;  // the latest worker clock: the data path's "now"
  template <typename F>
  void for_each_slot(F&& f) const {
    for (const auto& [slot, index] : by_slot_) f(slot);
  }

 private:
  std::optional<SourceView> make(size_t source_index) const;
  std::vector<const Worker*> workers_;
  const std::vector<NodeIdentity>* nodes_ = nullptr;
  const StakePlan* plan_ = nullptr;
  ScoringConfig scoring_;
  unsigned shards_ = 1;
  std::unordered_map<uint32_t, size_t> by_slot_;      // slot -> index in plan->sources
  std::unordered_map<std::string, size_t> by_node_;   // NodeID -> index in plan->sources
};

}  // namespace stakegate
