#pragma once
// `run`'s signals: SIGTERM and SIGINT stop, SIGHUP reloads. Their handlers only note them
// (two atomics); the control loop acts on what was noted, on its 50 ms tick. They are
// installed first thing in `run` and never replaced, so that no moment is left where a
// default action ends the process: not while it starts (identity read or fetched, EAL
// and ports set up, servers opened: seconds), when a `systemctl reload` would take every
// node behind the gateway down and a SIGTERM would skip the final counters; not while it
// stops, when a second SIGTERM or a log rotation's SIGHUP would cut the report and the
// ports' stop short. (Asio's signal_set restores the default actions when it is destroyed,
// which is why it is not used.)
#include <atomic>
#include <csignal>

namespace stakegate {

inline std::atomic<int> g_stop_signal{0};         // SIGTERM or SIGINT noted (0: none)
inline std::atomic<bool> g_reload_signal{false};  // SIGHUP noted and not yet acted on
static_assert(std::atomic<int>::is_always_lock_free && std::atomic<bool>::is_always_lock_free);

inline void note_run_signals() {
  struct sigaction sa {};
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sa.sa_handler = [](int sig) {
    if (sig == SIGHUP) g_reload_signal.store(true, std::memory_order_relaxed);
    else g_stop_signal.store(sig, std::memory_order_relaxed);
  };
  for (int sig : {SIGTERM, SIGINT, SIGHUP}) sigaction(sig, &sa, nullptr);
}

}  // namespace stakegate
