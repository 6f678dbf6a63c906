#pragma once
// What keeps the identity table current while the gateway runs, each off the control
// thread with its results applied on it (docs/operations.md, "Following epochs", "DNS"):
// - DNS: names looked up again when their TTL runs out; a snapshot only when one moved;
// - the Access API fetch (identity.access_api), every interval_s;
// - the identity file watch (identity.watch), on inotify; a reload turns it on or off.
#include <utility>  // before Boost.Asio (Boost 1.74 + C++20)

#include <boost/asio/io_context.hpp>
#include <memory>

#include "stakegate/control/policy_state.h"

namespace stakegate {

class IdentityFollowers {
 public:
  // Starts the fetch and the watch (each does nothing unless configured).
  IdentityFollowers(boost::asio::io_context& io, PolicyState& state);
  ~IdentityFollowers();
  // About once a second, from the control loop's timer: names due for DNS, and the file
  // watch following a reload that turned it on or off.
  void poll();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace stakegate
