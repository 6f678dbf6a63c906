#pragma once
// Publishes policy snapshots to the workers and reclaims replaced ones: the new pointer
// is stored atomically, each worker adopts it between bursts and reports a quiescent
// state once per loop (rte_rcu_qsbr); a replaced snapshot is freed once every worker has
// passed a quiescent point since the swap.
#include <rte_rcu_qsbr.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>

#include "stakegate/control/publisher.h"

namespace stakegate {

class RcuPublisher : public Publisher {
 public:
  explicit RcuPublisher(unsigned workers);  // throws std::runtime_error
  ~RcuPublisher() override;
  RcuPublisher(const RcuPublisher&) = delete;
  RcuPublisher& operator=(const RcuPublisher&) = delete;

  void publish(std::shared_ptr<const PolicySnapshot> snap) override;
  // Waits up to a second for every worker to pass a quiescent point (so none decides with
  // an older policy), then reclaims what it can.
  bool wait_applied() override;
  // Frees replaced snapshots every worker has moved past. Cheap: called from a timer.
  void reclaim();

  const std::atomic<const PolicySnapshot*>* pointer() const { return &pointer_; }
  rte_rcu_qsbr* rcu() const { return rcu_; }
  uint32_t pending_reclaim() const { return static_cast<uint32_t>(retired_.size()); }

 private:
  struct Retired {
    std::shared_ptr<const PolicySnapshot> snap;
    uint64_t token;
  };
  rte_rcu_qsbr* rcu_ = nullptr;
  std::atomic<const PolicySnapshot*> pointer_{nullptr};
  std::shared_ptr<const PolicySnapshot> current_;
  std::deque<Retired> retired_;
};

}  // namespace stakegate
