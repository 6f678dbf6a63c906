#pragma once
// Turns a configuration and its SWQoS plan into the data a worker reads. Control-plane
// side only: the worker headers never include the configuration model.
#include <memory>

#include "stakegate/config/config.h"
#include "stakegate/policy/snapshot.h"
#include "stakegate/policy/stake_plan.h"

namespace stakegate {

// How the workers share the traffic: each enforces a source's rate / `per_source` (1 when
// RSS on the source address sends every source to one worker; the number of workers when
// a source's packets may reach any of them) and a shared budget's rate / `pools` (always
// the number of workers: every worker takes a share of every pool).
struct Sharding {
  unsigned per_source = 1;
  unsigned pools = 1;
  static Sharding even(unsigned workers) { return {workers, workers}; }
};

class SnapshotBuilder {
 public:
  // `previous`, when given, is the snapshot this one replaces: slots whose policy did not
  // change are left out of `changed_slots`, so workers bound to it copy only what
  // changed. `slot_count` reserves slots beyond the plan's.
  static std::shared_ptr<const PolicySnapshot> build(const Config& cfg, const StakePlan& plan, Sharding sharding,
                                                     const PolicySnapshot* previous = nullptr, size_t slot_count = 0);
};

}  // namespace stakegate
