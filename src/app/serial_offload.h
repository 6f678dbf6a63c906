#pragma once
// Slow halves of control operations (parsing a large identity table, waiting on DNS) run
// on a helper thread, one at a time in the order they came, and their second halves back
// on the control loop, so that the loop keeps serving metrics, the API and evidence
// meanwhile, and changes still commit in the order they were asked for.
#include <utility>  // before Boost.Asio (Boost 1.74 + C++20)

#include <deque>
#include <functional>
#include <string>
#include <spdlog/spdlog.h>

#include "helper_thread.h"
#include "post_back.h"

namespace stakegate {

class SerialOffload {
 public:
  // `what` names the work in the log ("the identity replace").
  SerialOffload(boost::asio::io_context& io, std::string what) : what_(std::move(what)), back_(io) {}

  // `work` runs on a helper thread once the jobs before it are done; `finish` then runs on
  // the loop. Neither may throw. Called on the loop.
  void run(std::function<void()> work, std::function<void()> finish) {
    jobs_.push_back({std::move(work), std::move(finish)});
    if (jobs_.size() == 1) start();
  }

 private:
  struct Job {
    std::function<void()> work, finish;
  };
  void start() {
    // Detached, as the reloader's: a helper still waiting on DNS when the gateway stops is
    // left to end with the process; what it posts after its owner is gone is dropped.
    auto post = back_.poster();
    std::string no_thread = start_helper_thread([this, post, work = jobs_.front().work] {
      work();
      post([this] { done(); });
    });
    if (no_thread.empty()) return;
    // No thread to be had (a task limit): the work runs here, as it did before it was
    // offloaded; the loop waits on it, but the change is made.
    spdlog::warn("{}: {} runs on the control thread", no_thread, what_);
    jobs_.front().work();
    post([this] { done(); });
  }
  void done() {
    Job job = std::move(jobs_.front());
    jobs_.pop_front();
    if (!jobs_.empty()) start();
    job.finish();
  }

  std::string what_;
  std::deque<Job> jobs_;
  PostBack back_;  // last: destroyed first, so no helper posts to a dead object
};

}  // namespace stakegate
