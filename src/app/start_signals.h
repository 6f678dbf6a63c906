#pragma once
// Signals that arrive while `run` starts, before the control loop's handlers are in place
// (identity fetched, ports set up, servers opened: seconds, on a slow Access API). Their
// default action ends the process at once: a `systemctl reload` (SIGHUP) during start
// would take the cluster down, and a SIGTERM would skip the drain and the final counters.
// Until the control loop takes over they are only noted; it then acts on them. Once it
// has ended (stopping) they are noted again, and nothing acts on them: the stop goes on.
#include <atomic>
#include <csignal>

namespace stakegate {

inline std::atomic<int> g_start_stop_signal{0};   // SIGTERM or SIGINT seen while starting
inline std::atomic<bool> g_start_reload{false};   // SIGHUP seen while starting
static_assert(std::atomic<int>::is_always_lock_free && std::atomic<bool>::is_always_lock_free);

// Installed first thing in `run`; the control loop's signal_set replaces these handlers,
// and restores the default actions when it ends: installed again then, so that a second
// SIGTERM or a SIGHUP cannot cut the stop short (the final counters, the report, the ports).
inline void note_signals_outside_control_loop() {
  struct sigaction sa {};
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sa.sa_handler = [](int sig) {
    if (sig == SIGHUP) g_start_reload.store(true, std::memory_order_relaxed);
    else g_start_stop_signal.store(sig, std::memory_order_relaxed);
  };
  for (int sig : {SIGTERM, SIGINT, SIGHUP}) sigaction(sig, &sa, nullptr);
}

}  // namespace stakegate
