#pragma once
// The control API's request handling, independent of transport: (HTTP method, path,
// content type, body) in, (status, content type, body) out. The RPCs are the service
// `stakegate.v1.Control` of src/control/control.proto, served at /v1/<Rpc>: a table of
// typed handlers keyed by the service's method descriptors (checked complete when the
// API is built). Handlers are thin adapters over the operations layer (PolicyState,
// EvidenceService); the Beast server and the tests call handle().
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "stakegate/control/evidence_service.h"
#include "stakegate/control/http_server.h"
#include "stakegate/control/policy_state.h"
#include "stakegate/report/counters.h"

namespace google::protobuf {
class Message;
class MethodDescriptor;
}  // namespace google::protobuf

namespace stakegate {

// A port's link as the control thread last read it (DataPlane::watch_links).
struct PortLink {
  std::string name;          // "outside", "inside"
  bool up = false;
  uint32_t speed_mbps = 0;   // 0: down, or not reported
  bool full_duplex = false;
  uint64_t changes = 0;      // up/down changes seen since start
};

// What the API reads of the running data path.
class DataPathView {
 public:
  virtual ~DataPathView() = default;
  // Live sums of the workers' counters; per-slot counters only when asked (O(slots)).
  virtual Totals totals(bool with_sources) const = 0;
  virtual uint32_t snapshots_pending_reclaim() const = 0;
  virtual double uptime_s() const = 0;
  // Per worker, TSC cycles per packet over the last second (see DataPlane).
  virtual std::vector<double> cycles_per_packet() const { return {}; }
  virtual std::vector<double> busy() const { return {}; }
  // Per worker, the outside packets it received since start.
  virtual std::vector<uint64_t> outside_packets() const { return {}; }
  // Session table entries per worker (limits.sessions).
  virtual uint64_t session_capacity() const { return 0; }
  virtual std::vector<PortLink> links() const { return {}; }
  // Outside packets forwarded in monitor mode against their verdict, since start.
  virtual uint64_t monitor_forwarded() const { return 0; }
};

// Everything a handler may reach.
struct ApiContext {
  PolicyState& state;
  const DataPathView& data;
  EvidenceService* evidence;  // null where there is no data path to sample (unit tests)
  std::string version;
  std::string caller;         // of the request being handled (blocks record who made them)
};

class ControlApi {
 public:
  struct Response {
    int status = 200;
    std::string content_type = "application/json";
    std::string body;
    std::string error;  // a refusal's code and message, for the audit log
  };
  using Call = std::function<void(ApiContext&, const google::protobuf::Message& request, google::protobuf::Message& response)>;

  ControlApi(PolicyState& state, const DataPathView& data, EvidenceService* evidence, std::string version);
  ~ControlApi();

  // A read-only caller (Access::kRead) gets 403 permission_denied for an RPC that changes
  // the policy, before its body is parsed.
  Response handle(const std::string& method, const std::string& target, const std::string& content_type,
                  const std::string& body, Access access = Access::kAdmin, const std::string& caller = "");
  // Runs `work` away from the control thread, then `finish` back on it (the control loop's
  // SerialOffload: one at a time, in order).
  using Offload = std::function<void(std::function<void()> work, std::function<void()> finish)>;
  // handle(), answered through `done`. ReplaceIdentities parses its table and waits on DNS
  // in the work half, and commits in the finish half, so the control thread goes on serving
  // (metrics, other RPCs, evidence) meanwhile; every other RPC is answered before this
  // returns, as is a request refused before its table is read.
  void handle_async(const std::string& method, const std::string& target, const std::string& content_type,
                    const std::string& body, Access access, const std::string& caller, const Offload& offload,
                    std::function<void(Response)> done);
  // The RPC a target names ("/v1/Block" -> "Block"), or empty.
  static std::string rpc_of(const std::string& target);
  // Whether a Reload request asks to pass the removal guard (its body or ?force=true).
  bool reload_forced(const std::string& target, const std::string& content_type, const std::string& body) const;
  // The answer to Reload, built from its outcome (the control loop reloads off thread):
  // the change, or the error code and message of a refusal.
  Response reload_response(const std::string& content_type, const PolicyState::Change* change,
                           const std::string& error_code, const std::string& message) const;
  // True for an RPC that changes the running policy (POST only, logged with its caller).
  bool mutates(const std::string& rpc) const;

 private:
  struct Handler {
    const google::protobuf::MethodDescriptor* method;
    bool mutates;
    Call call;
  };
  template <typename Req, typename Resp>
  void add(const char* name, bool mutates, void (*fn)(ApiContext&, const Req&, Resp&));
  // The checks every request gets before its handler runs (path, method, access, media
  // type, body): the refusal, or nullopt with `handler` and the parsed `request` set.
  std::optional<Response> admit(const std::string& method, const std::string& target, const std::string& content_type,
                                const std::string& body, Access access, const Handler*& handler,
                                std::unique_ptr<google::protobuf::Message>& request) const;

  ApiContext ctx_;
  std::map<std::string, Handler, std::less<>> handlers_;
};

}  // namespace stakegate
