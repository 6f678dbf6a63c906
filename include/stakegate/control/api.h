#pragma once
// The control API's request handling, independent of transport: (HTTP method, path,
// content type, body) in, (status, content type, body) out. RPCs are the service in
// src/control/control.proto, served at /v1/<Rpc>. The Beast server and tests call it.
#include <cstdint>
#include <functional>
#include <string>

#include "stakegate/control/policy_state.h"
#include "stakegate/report/counters.h"
#include "stakegate/report/evidence.h"

namespace stakegate {

// What the API needs from the running gateway.
class GatewayView {
 public:
  virtual ~GatewayView() = default;
  // Live sums of the workers' counters; per-slot counters only when asked (O(slots)).
  virtual Totals totals(bool with_sources) const = 0;
  virtual uint32_t snapshots_pending_reclaim() const = 0;
  // Returns once every worker decides with the newest published snapshot (or after a
  // bounded wait, returning false).
  virtual bool wait_applied() = 0;
  virtual double uptime_s() const = 0;

  // Peer score and evidence (the running gateway implements these; the defaults serve
  // views without a data path).
  virtual std::optional<SourceView> source_view(const std::string& node_id) {
    (void)node_id;
    return std::nullopt;
  }
  virtual std::vector<GraylistEntry> graylisted() { return {}; }
  virtual std::pair<uint64_t, uint64_t> graylist_transitions() const { return {0, 0}; }  // entries, exits
  virtual double unix_of(uint64_t data_ns) const { return static_cast<double>(data_ns) / 1e9; }
  // Opens a case (throws OpError when it cannot); lists cases.
  virtual CaseSummary open_evidence(const std::string& node_id);
  virtual std::vector<CaseSummary> evidence_cases() const { return {}; }
  virtual std::pair<uint64_t, uint64_t> evidence_counts() const { return {0, 0}; }  // opened, errors
};

class ControlApi {
 public:
  struct Response {
    int status = 200;
    std::string content_type = "application/json";
    std::string body;
  };

  ControlApi(PolicyState& state, GatewayView& view, std::string version)
      : state_(state), view_(view), version_(std::move(version)) {}

  Response handle(const std::string& method, const std::string& target, const std::string& content_type,
                  const std::string& body, int64_t now_unix);

 private:
  PolicyState& state_;
  GatewayView& view_;
  std::string version_;
};

}  // namespace stakegate
