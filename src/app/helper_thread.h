#pragma once
// The control loop's helper threads (DNS rounds, identity fetches and files, reloads,
// identity replaces) are started through this. A thread cannot be made when the service is
// at its task limit (systemd's TasksMax, a pids cgroup) or no memory can be reserved for
// its stack: std::thread then throws std::system_error, which would end the control loop
// and the gateway with it. Callers get the reason instead, fall back and say so.
#include <string>
#include <system_error>
#include <thread>
#include <utility>

namespace stakegate {

// Runs `fn` on a detached thread; "" when it started, else why no thread could be made.
template <typename F>
std::string start_helper_thread(F&& fn) {
  try {
    std::thread(std::forward<F>(fn)).detach();
    return "";
  } catch (const std::system_error& e) {
    return std::string("cannot start a thread (") + e.what() + ")";
  }
}

}  // namespace stakegate
