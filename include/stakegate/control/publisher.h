#pragma once
// How the operations layer reaches the data path: it hands over each new snapshot and
// then waits until every worker decides with it. `run` implements this with an atomic
// pointer and rte_rcu_qsbr (src/app/rcu_publisher.h); replay and tests with plain code.
#include <memory>

#include "stakegate/policy/snapshot.h"

namespace stakegate {

class Publisher {
 public:
  virtual ~Publisher() = default;
  virtual void publish(std::shared_ptr<const PolicySnapshot> snap) = 0;
  // Returns once every worker decides with the newest published snapshot, or false
  // after a bounded wait (a stalled worker).
  virtual bool wait_applied() = 0;
};

// For callers without workers to wait for (check-config, tests): keeps the last snapshot.
class LatestSnapshot : public Publisher {
 public:
  void publish(std::shared_ptr<const PolicySnapshot> snap) override { latest = std::move(snap); ++published; }
  bool wait_applied() override { return true; }
  std::shared_ptr<const PolicySnapshot> latest;
  unsigned published = 0;
};

}  // namespace stakegate
