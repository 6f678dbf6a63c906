#include "service_notify.h"

#include <spdlog/spdlog.h>
#include <systemd/sd-daemon.h>

namespace stakegate {

ServiceNotifier::ServiceNotifier() {
  uint64_t usec = 0;
  if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) interval_ = std::chrono::microseconds(usec / 2);
}

void ServiceNotifier::ready(const std::string& status) const {
  sd_notifyf(0, "READY=1\nSTATUS=%s", status.c_str());
  if (watchdog())
    spdlog::info("systemd watchdog: fed every {} ms while the control loop and every worker's loop run",
                 interval_.count() / 1000);
}

void ServiceNotifier::stopping() const { sd_notify(0, "STOPPING=1"); }

void ServiceNotifier::status(const std::string& line) const { sd_notifyf(0, "STATUS=%s", line.c_str()); }

void ServiceNotifier::tick(const std::vector<uint64_t>& progress, Clock::time_point now) {
  if (!watchdog() || now - last_check_ < interval_) return;
  last_check_ = now;
  std::vector<size_t> still;
  for (size_t w = 0; w < progress.size(); ++w)
    if (w < last_progress_.size() && progress[w] == last_progress_[w]) still.push_back(w);
  last_progress_ = progress;
  if (still.empty()) {
    sd_notify(0, "WATCHDOG=1");
    if (stalled_) spdlog::info("systemd watchdog: every worker's loop runs again; fed again");
    stalled_ = false;
    return;
  }
  if (!stalled_) {
    std::string which;
    for (size_t w : still) which += (which.empty() ? "" : ", ") + std::to_string(w);
    spdlog::error("worker {} has not turned its loop for {} ms: the systemd watchdog is not fed, and systemd restarts "
                  "the gateway when WatchdogSec runs out",
                  which, interval_.count() / 1000);
  }
  stalled_ = true;
}

}  // namespace stakegate
