#pragma once
// systemd's service protocol (sd_notify(3), libsystemd): READY=1 once the gateway forwards
// and its control API listens (the unit is Type=notify, so `systemctl start` returns when
// traffic flows), STOPPING=1 on the way out, and, when the unit sets WatchdogSec,
// WATCHDOG=1 at half that interval while the control loop turns and every worker's loop
// advances. A hung worker or a hung control loop stops the pings and systemd restarts the
// gateway (Restart=always): an inline appliance that is stuck is as down as one that
// crashed, and only the first is restarted without a watchdog. Outside systemd (no
// NOTIFY_SOCKET) every call does nothing.
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace stakegate {

class ServiceNotifier {
 public:
  using Clock = std::chrono::steady_clock;

  ServiceNotifier();  // reads the watchdog interval systemd gave (WATCHDOG_USEC)
  void ready(const std::string& status) const;
  void stopping() const;
  // What `systemctl status` shows on its Status line (each stats interval).
  void status(const std::string& line) const;
  // Each control-loop tick: `progress` holds a counter per worker that advances while its
  // loop turns (DataPlane::loop_progress). At half the watchdog interval, pings when every
  // worker advanced since the previous check; else says once which did not.
  void tick(const std::vector<uint64_t>& progress, Clock::time_point now);
  bool watchdog() const { return interval_.count() > 0; }

 private:
  std::chrono::microseconds interval_{0};  // half of WatchdogSec; 0: no watchdog
  Clock::time_point last_check_{};
  std::vector<uint64_t> last_progress_;
  bool stalled_ = false;  // the last check found a worker that did not advance
};

}  // namespace stakegate
