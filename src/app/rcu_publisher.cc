#include "rcu_publisher.h"

#include <rte_errno.h>
#include <rte_malloc.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <stdexcept>
#include <thread>

namespace stakegate {

RcuPublisher::RcuPublisher(unsigned workers) {
  size_t size = rte_rcu_qsbr_get_memsize(workers);
  rcu_ = static_cast<rte_rcu_qsbr*>(rte_zmalloc("stakegate_rcu", size, RTE_CACHE_LINE_SIZE));
  if (!rcu_ || rte_rcu_qsbr_init(rcu_, workers) != 0) {
    rte_free(rcu_);
    throw std::runtime_error("cannot set up RCU for " + std::to_string(workers) + " workers");
  }
  for (unsigned i = 0; i < workers; ++i) rte_rcu_qsbr_thread_register(rcu_, i);
}

RcuPublisher::~RcuPublisher() {
  retired_.clear();
  rte_free(rcu_);
}

void RcuPublisher::publish(std::shared_ptr<const PolicySnapshot> snap) {
  auto old = std::move(current_);
  current_ = std::move(snap);
  pointer_.store(current_.get(), std::memory_order_release);
  // The grace period starts after the store: a worker quiescent since then cannot hold `old`.
  if (old) retired_.push_back({std::move(old), rte_rcu_qsbr_start(rcu_)});
}

void RcuPublisher::reclaim() {
  while (!retired_.empty() && rte_rcu_qsbr_check(rcu_, retired_.front().token, false) == 1) retired_.pop_front();
}

bool RcuPublisher::wait_applied() {
  uint64_t token = rte_rcu_qsbr_start(rcu_);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(1);
  while (rte_rcu_qsbr_check(rcu_, token, false) != 1) {
    if (std::chrono::steady_clock::now() > deadline) {
      spdlog::warn("a worker did not adopt the new policy within 1 s");
      return false;
    }
    std::this_thread::sleep_for(std::chrono::microseconds(20));
  }
  reclaim();
  return true;
}

}  // namespace stakegate
