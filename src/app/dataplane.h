#pragma once
// The running data path as the control thread sees it: the ports, one Worker and
// WorkerCtx per worker lcore, their launch and stop, and the live sums of what they
// count (the control API's DataPathView, /metrics, the log summary).
#include <atomic>
#include <chrono>
#include <memory>
#include <vector>

#include "lcore_loop.h"
#include "ports.h"
#include "rcu_publisher.h"
#include "stakegate/control/api.h"
#include "stakegate/control/policy_state.h"

namespace stakegate {

class DataPlane : public DataPathView {
 public:
  // Creates the mbuf pool and starts both ports (throws std::runtime_error).
  explicit DataPlane(const Config& cfg);
  ~DataPlane() override;

  // One Worker per worker lcore, sized for the policy's slot capacity, reading `publisher`'s pointer.
  void create_workers(const PolicyState& state, RcuPublisher& publisher);
  void launch();  // throws std::runtime_error
  void stop();    // asks the workers to stop and waits for them (idempotent)

  const PortIo& outside() const { return outside_; }
  const PortIo& inside() const { return inside_; }
  std::vector<Worker*> workers() const;
  // Unix nanoseconds of the data path's clock `ns` (workers count from the gateway's
  // start), by the wall clock now: the wall clock now, less how long ago `ns` was. So it
  // follows a step of the wall clock after start (NTP correcting a bad RTC at boot).
  uint64_t unix_ns_of(uint64_t ns) const;

  Totals totals(bool with_sources) const override;
  uint32_t snapshots_pending_reclaim() const override { return publisher_ ? publisher_->pending_reclaim() : 0; }
  double uptime_s() const override;
  uint64_t tx_dropped(Direction from) const;  // packets that arrived from `from` and could not be sent on
  uint64_t monitor_forwarded() const override;  // outside frames forwarded in monitor mode against their verdict
  // Busy share per worker since the previous call.
  // Share of each worker's loop time spent on bursts with packets, over the last second:
  // sample_busy() (the control loop, once a second) measures; readers only read, so any
  // number of scrapers see the same figure.
  void sample_busy();
  const std::vector<double>& busy_ratios() const { return busy_; }
  std::vector<double> busy() const override { return busy_; }
  // TSC cycles per packet of each worker's loop iterations that carried packets, over the
  // last sample_busy() interval (0 when it carried none).
  std::vector<double> cycles_per_packet() const override { return cycles_; }
  std::vector<uint64_t> outside_packets() const override;
  uint64_t session_capacity() const override { return workers_.empty() ? 0 : workers_.front()->sessions().capacity(); }
  // Per worker, a counter that advances every time its loop turns (its loop's TSC total):
  // the watchdog's proof that no worker is stuck.
  std::vector<uint64_t> loop_progress() const;
  // Reads both ports' links (without waiting) and logs each change: a link down is every
  // node behind the gateway cut off, so it is said at once (a warning), and so is its
  // return. The control loop calls it on its tick; the constructor once, for the start.
  void watch_links();
  std::vector<PortLink> links() const override { return links_; }

 private:
  const Config& cfg_;
  PortIo outside_, inside_;
  bool ports_started_ = false;
  const PolicyState* state_ = nullptr;
  RcuPublisher* publisher_ = nullptr;
  static constexpr unsigned kHandoffRing = 1024;  // frames in flight to one worker from the others
  std::vector<rte_ring*> handoff_;                  // per worker (several workers with RSS); freed after they stop
  std::unique_ptr<SolicitationTable> solicitations_;  // shared by the workers; declared first, destroyed after them
  std::unique_ptr<SolicitationTable> dhcp_;           // the cluster's DHCP transactions, shared alike
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<WorkerCtx> ctxs_;
  std::atomic<bool> stop_{false};
  bool launched_ = false;
  uint64_t mono0_ns_ = 0;
  std::vector<std::pair<uint64_t, uint64_t>> last_busy_;
  std::vector<double> busy_;
  std::vector<uint64_t> last_packets_;
  std::vector<double> cycles_;
  std::vector<PortLink> links_;       // outside, inside
  bool first_up_seen_[2] = {false, false};
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
};

}  // namespace stakegate
