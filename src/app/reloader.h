#pragma once
#include <utility>  // before Boost.Asio (Boost 1.74 + C++20)

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "helper_thread.h"
#include "post_back.h"
#include "stakegate/control/access.h"
#include "stakegate/control/policy_state.h"

namespace stakegate {

// Reloads off the control thread: reading the config and identity files (and resolving
// names) happens on a helper thread with a deadline, so the API and /metrics keep
// answering; the result is applied on the control thread. Callers that ask while one is
// in flight get its outcome. A helper that outlives its deadline is left to finish and
// ignored (it cannot block: files are regular and opened non-blocking).
class Reloader {
 public:
  using Done = std::function<void(const PolicyState::Change* change, const std::string& code, const std::string& message)>;
  struct Outcome {
    bool ok = true;
    int64_t unix_s = 0;
  };

  Reloader(boost::asio::io_context& io, PolicyState& state, double timeout_s, std::function<std::string()> after)
      : state_(state), timeout_(timeout_s), after_(std::move(after)),
        timer_(io), back_(io) {
    last_.unix_s = state.now();
  }

  void start(Done done, bool force = false) {
    waiters_.push_back(std::move(done));
    force_ = force_ || force;
    if (waiters_.size() > 1) return;  // joins the reload in flight
    const uint64_t flight = ++flight_;
    const std::string file = state_.config().file;
    auto post = back_.poster();
    std::string no_thread = start_helper_thread([this, post, flight, file] {
      auto result = std::make_shared<std::optional<LoadedPolicy>>();
      auto tokens = std::make_shared<ControlTokens>();
      auto error = std::make_shared<std::string>();
      try {
        *result = PolicyState::load_for_reload(file);
        *tokens = load_tokens((*result)->cfg.control, file);
      } catch (const std::exception& e) {
        result->reset();
        *error = e.what();
      }
      post([this, flight, result, tokens, error] { finish(flight, result, tokens, *error); });
    });
    if (!no_thread.empty())
      return conclude(nullptr, "unavailable", "the config cannot be read: " + no_thread + "; the running policy is unchanged");
    timer_.expires_after(std::chrono::milliseconds(static_cast<int64_t>(timeout_ * 1000)));
    timer_.async_wait([this, flight](const boost::system::error_code& ec) {
      if (ec || flight != flight_ || waiters_.empty()) return;
      conclude(nullptr, "deadline_exceeded",
               "reading the config and identity files took over " + std::to_string(static_cast<int>(timeout_)) +
                   " s (control.reload_timeout_s); the running policy is unchanged");
      ++flight_;  // whatever the helper brings later is ignored
    });
  }

  const Outcome& last() const { return last_; }
  ControlTokens* tokens = nullptr;  // replaced on a successful reload (TCP listener)

 private:
  void finish(uint64_t flight, const std::shared_ptr<std::optional<LoadedPolicy>>& result,
              const std::shared_ptr<ControlTokens>& tokens, const std::string& error) {
    if (flight != flight_ || waiters_.empty()) return;  // timed out already
    timer_.cancel();
    if (!*result) return conclude(nullptr, "invalid_argument", error + "; the running policy is unchanged");
    try {
      const bool force = force_;
      force_ = false;
      PolicyState::Change ch = state_.apply_reload(std::move(**result), force);
      if (tokens && this->tokens) *this->tokens = *tokens;
      if (after_) {
        std::string problems = after_();
        if (!problems.empty()) ch.warnings.push_back(problems);
      }
      conclude(&ch, "", "");
    } catch (const OpError& e) {
      conclude(nullptr, e.code(), std::string(e.what()) + "; the running policy is unchanged");
    } catch (const std::exception& e) {
      conclude(nullptr, "invalid_argument", std::string(e.what()) + "; the running policy is unchanged");
    }
  }

  void conclude(const PolicyState::Change* ch, const std::string& code, const std::string& message) {
    last_ = {ch != nullptr, state_.now()};
    force_ = false;
    auto waiters = std::move(waiters_);
    waiters_.clear();
    for (auto& w : waiters) w(ch, code, message);
  }

  PolicyState& state_;
  double timeout_;
  std::function<std::string()> after_;
  boost::asio::steady_timer timer_;
  std::vector<Done> waiters_;
  uint64_t flight_ = 0;
  bool force_ = false;
  Outcome last_;
  PostBack back_;  // last: destroyed first, so no helper posts to a dead object
};

}  // namespace stakegate
