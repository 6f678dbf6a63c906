#pragma once
// `run`'s signals: SIGTERM and SIGINT stop, SIGHUP reloads. Their handlers only note them
// (two atomics) and wake the control loop (a byte into a pipe it watches), which then
// acts on what was noted. They are installed first thing in `run` and never replaced, so
// that no moment is left where a default action ends the process: not while it starts
// (identity read or fetched, EAL and ports set up, servers opened: seconds), when a
// `systemctl reload` would take every node behind the gateway down and a SIGTERM would
// skip the final counters; not while it stops, when a second SIGTERM or a log rotation's
// SIGHUP would cut the report and the ports' stop short. (Asio's signal_set restores the
// default actions when it is destroyed, which is why it is not used.)
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>

namespace stakegate {

inline std::atomic<int> g_stop_signal{0};         // SIGTERM or SIGINT noted (0: none)
inline std::atomic<bool> g_reload_signal{false};  // SIGHUP noted and not yet acted on
inline int g_signal_wake[2] = {-1, -1};           // the pipe: [0] read by the control loop
static_assert(std::atomic<int>::is_always_lock_free && std::atomic<bool>::is_always_lock_free);

inline void note_run_signals() {
  if (g_signal_wake[0] < 0 && ::pipe2(g_signal_wake, O_NONBLOCK | O_CLOEXEC) != 0) g_signal_wake[0] = g_signal_wake[1] = -1;
  struct sigaction sa {};
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sa.sa_handler = [](int sig) {
    if (sig == SIGHUP) g_reload_signal.store(true, std::memory_order_relaxed);
    else g_stop_signal.store(sig, std::memory_order_relaxed);
    const int saved = errno;  // write(2) is async-signal-safe; a full pipe is already a wake-up
    if (g_signal_wake[1] >= 0) [[maybe_unused]] auto n = ::write(g_signal_wake[1], "s", 1);
    errno = saved;
  };
  for (int sig : {SIGTERM, SIGINT, SIGHUP}) sigaction(sig, &sa, nullptr);
}

}  // namespace stakegate
