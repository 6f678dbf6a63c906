#pragma once
// Turns a configuration and its SWQoS plan into the data a worker reads. Control-plane
// side only: the worker headers never include the configuration model.
#include <memory>

#include "stakegate/config/config.h"
#include "stakegate/policy/snapshot.h"
#include "stakegate/policy/stake_plan.h"

namespace stakegate {

class SnapshotBuilder {
 public:
  // `workers`: how many workers share one source's traffic; each enforces rate / workers
  // (virtual devices and NICs without RSS on the source address spread a source over
  // every worker). `previous`, when given, is the snapshot this one replaces: slots
  // whose policy did not change are left out of `changed_slots`, so workers bound to
  // it copy only what changed. `slot_count` reserves slots beyond the plan's.
  static std::shared_ptr<const PolicySnapshot> build(const Config& cfg, const StakePlan& plan, unsigned workers,
                                                     const PolicySnapshot* previous = nullptr, size_t slot_count = 0);
};

}  // namespace stakegate
