#pragma once
// The EAL main lcore's job while the workers forward: one Boost.Asio io_context serving
// the control API (Unix socket, optional TCP), /metrics, DPDK telemetry, the signals
// run_signals.h notes (SIGTERM/SIGINT stop, SIGHUP reloads) and a 50 ms timer (snapshot
// reclamation, evidence, block expiry, the periodic summary, --exit-on-idle).
#include <optional>
#include <string>

#include "dataplane.h"
#include "rcu_publisher.h"
#include "stakegate/control/access.h"
#include "stakegate/control/evidence_service.h"
#include "stakegate/control/policy_state.h"

namespace stakegate {

struct ControlLoopOptions {
  double exit_on_idle_s = 0;         // 0: until a signal
  std::string version;
  ControlTokens tokens;              // of the TCP control listener (control.tcp), read at start
};

// Runs until a stop signal (or idle exit). Throws std::runtime_error when a listener
// cannot be opened.
void run_control_loop(PolicyState& state, DataPlane& dp, RcuPublisher& publisher, EvidenceService& evidence,
                      const ControlLoopOptions& o);

}  // namespace stakegate
