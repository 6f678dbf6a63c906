#include "stakegate/control/api.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/dynamic_message.h>
#include <google/protobuf/util/json_util.h>

#include <exception>
#include <stdexcept>

#include "api_handlers.h"

namespace stakegate {
namespace {

namespace pb = stakegate::v1;
using google::protobuf::Message;

const google::protobuf::ServiceDescriptor* control_service() {
  const auto* s = pb::Empty::descriptor()->file()->FindServiceByName("Control");
  if (!s) throw std::logic_error("control.proto declares no service Control");
  return s;
}

struct Encoding {
  bool binary = false;  // application/x-protobuf, else protobuf's JSON mapping
};

Encoding encoding_of(const std::string& content_type) {
  return {content_type.rfind("application/x-protobuf", 0) == 0};
}

ControlApi::Response error(const Encoding& e, int status, const std::string& code, const std::string& message) {
  pb::Error m;
  m.set_code(code);
  m.set_message(message);
  ControlApi::Response r;
  r.status = status;
  r.error = code + ": " + message;
  if (e.binary) {
    r.content_type = "application/x-protobuf";
    r.body = m.SerializeAsString();
  } else {
    google::protobuf::util::MessageToJsonString(m, &r.body);
  }
  return r;
}

int status_of(const std::string& code) {
  static const std::map<std::string, int> m = {{"invalid_argument", 400}, {"not_found", 404},
                                               {"resource_exhausted", 422}, {"failed_precondition", 409},
                                               {"unavailable", 503}, {"permission_denied", 403},
                                               {"deadline_exceeded", 504}};
  auto it = m.find(code);
  return it == m.end() ? 500 : it->second;
}

void parse(const Encoding& e, const std::string& body, Message& msg) {
  if (body.empty()) return;
  if (e.binary) {
    if (!msg.ParseFromString(body)) throw OpError("invalid_argument", "body is not a valid binary " + msg.GetTypeName());
    return;
  }
  google::protobuf::util::JsonParseOptions o;
  o.ignore_unknown_fields = false;
  auto st = google::protobuf::util::JsonStringToMessage(body, &msg, o);
  if (!st.ok()) throw OpError("invalid_argument", "bad JSON for " + msg.GetTypeName() + ": " + std::string(st.message()));
}

ControlApi::Response reply(const Encoding& e, const Message& msg) {
  ControlApi::Response r;
  if (e.binary) {
    r.content_type = "application/x-protobuf";
    r.body = msg.SerializeAsString();
  } else {
    google::protobuf::util::JsonPrintOptions o;
    o.add_whitespace = true;
    o.always_print_primitive_fields = true;
    o.preserve_proto_field_names = true;
    google::protobuf::util::MessageToJsonString(msg, &r.body, o);
  }
  return r;
}

// ReplaceIdentities also takes a Flow file as it is, as its body: a node-infos array or a
// protocol state snapshot object. Returns true when `body` was one of those.
bool flow_file_body(const std::string& body, pb::ReplaceIdentitiesRequest& q) {
  size_t first = body.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) return false;
  if (body[first] == '[') {
    q.set_flow_node_infos_json(body);
    return true;
  }
  if (body[first] == '{' && body.find("\"SealingSegment\"") != std::string::npos) {
    q.set_flow_snapshot_json(body);
    return true;
  }
  return false;
}

bool query_force(const std::string& target) {
  auto q = target.find('?');
  if (q == std::string::npos) return false;
  std::string query = "&";
  query.append(target, q + 1).append("&");
  return query.find("&force=true&") != std::string::npos || query.find("&force=1&") != std::string::npos;
}

}  // namespace

bool ControlApi::reload_forced(const std::string& target, const std::string& content_type, const std::string& body) const {
  const Encoding e = encoding_of(content_type);
  pb::ReloadRequest q;
  try {
    parse(e, body, q);
  } catch (const OpError&) {
    return false;  // a bad body is refused by handle() when the reload is asked for that way
  }
  return q.force() || query_force(target);
}

template <typename Req, typename Resp>
void ControlApi::add(const char* name, bool mutates, void (*fn)(ApiContext&, const Req&, Resp&)) {
  const auto* m = control_service()->FindMethodByName(name);
  if (!m) throw std::logic_error(std::string("control.proto has no RPC ") + name);
  if (m->input_type() != Req::descriptor() || m->output_type() != Resp::descriptor())
    throw std::logic_error(std::string("handler types of ") + name + " differ from control.proto");
  // The messages are made from this method's descriptors, so these casts are exact.
  Call call = [fn](ApiContext& c, const Message& q, Message& r) { fn(c, static_cast<const Req&>(q), static_cast<Resp&>(r)); };
  handlers_.emplace(name, Handler{m, mutates, std::move(call)});
}

ControlApi::ControlApi(PolicyState& state, const DataPathView& data, EvidenceService* evidence, std::string version)
    : ctx_{state, data, evidence, std::move(version), {}} {
  add("Status", false, rpc::status);
  add("GetIdentities", false, rpc::get_identities);
  add("ReplaceIdentities", true, rpc::replace_identities);
  add("Block", true, rpc::block);
  add("Unblock", true, rpc::unblock);
  add("ListBlocklist", false, rpc::list_blocklist);
  add("GetRoleQos", false, rpc::get_role_qos);
  add("SetRoleQos", true, rpc::set_role_qos);
  add("GetNode", false, rpc::get_node);
  add("Top", false, rpc::top);
  add("Reload", true, rpc::reload);
  add("ListNodes", false, rpc::list_nodes);
  add("OpenEvidence", true, rpc::open_evidence);
  add("ListEvidence", false, rpc::list_evidence);
  const auto* svc = control_service();
  for (int i = 0; i < svc->method_count(); ++i)
    if (!handlers_.count(svc->method(i)->name()))
      throw std::logic_error("no handler for the RPC " + svc->method(i)->name());
}

ControlApi::~ControlApi() = default;

bool ControlApi::mutates(const std::string& rpc) const {
  auto it = handlers_.find(rpc);
  return it != handlers_.end() && it->second.mutates;
}

std::string ControlApi::rpc_of(const std::string& target) {
  std::string path = target.substr(0, target.find('?'));
  return path.rfind("/v1/", 0) == 0 ? path.substr(4) : std::string();
}

ControlApi::Response ControlApi::reload_response(const std::string& content_type, const PolicyState::Change* change,
                                                 const std::string& error_code, const std::string& message) const {
  const Encoding e = encoding_of(content_type);
  if (!change) return error(e, status_of(error_code), error_code, message);
  pb::ReloadResponse r;
  rpc::fill_reload(ctx_, *change, r);
  return reply(e, r);
}

namespace {

// Runs a handler's body and turns what it throws into the API's error answers.
template <typename Body>
ControlApi::Response answer(const Encoding& e, Message& resp, Body&& body) {
  try {
    body();
    return reply(e, resp);
  } catch (const OpError& x) {
    return error(e, status_of(x.code()), x.code(), x.what());
  } catch (const ConfigError& x) {
    return error(e, 400, "invalid_argument", x.what());
  }
}

}  // namespace

std::optional<ControlApi::Response> ControlApi::admit(const std::string& method, const std::string& target,
                                                      const std::string& content_type, const std::string& body,
                                                      Access access, const Handler*& handler,
                                                      std::unique_ptr<Message>& request) const {
  const Encoding e = encoding_of(content_type);
  std::string path = target.substr(0, target.find('?'));
  if (path.rfind("/v1/", 0) != 0) return error(e, 404, "not_found", "no such path: " + path + " (RPCs are at /v1/<Rpc>)");
  auto it = handlers_.find(std::string_view(path).substr(4));
  if (it == handlers_.end()) return error(e, 404, "not_found", "no RPC named '" + path.substr(4) + "'");
  const Handler& h = it->second;
  if (method != "POST" && !(method == "GET" && !h.mutates))
    return error(e, 405, "method_not_allowed",
                 h.mutates ? "this RPC changes the policy: use POST" : "use POST (or GET without a body)");
  if (h.mutates && access != Access::kAdmin)
    return error(e, 403, "permission_denied",
                 path.substr(4) + " changes the policy: this caller has read-only access (the admin socket or token can)");
  if (!e.binary && !content_type.empty() && content_type.rfind("application/json", 0) != 0 && !body.empty())
    return error(e, 415, "unsupported_media_type", "send application/json or application/x-protobuf");

  auto& factory = *google::protobuf::MessageFactory::generated_factory();
  std::unique_ptr<Message> req(factory.GetPrototype(h.method->input_type())->New());
  try {
    auto* replace = dynamic_cast<pb::ReplaceIdentitiesRequest*>(req.get());
    if (!(replace && !e.binary && flow_file_body(body, *replace))) parse(e, body, *req);
    // A Flow file sent as it is can carry the guard's override in the query: ?force=true.
    if (replace && query_force(target)) replace->set_force(true);
  } catch (const OpError& x) {
    return error(e, status_of(x.code()), x.code(), x.what());
  }
  handler = &h;
  request = std::move(req);
  return std::nullopt;
}

ControlApi::Response ControlApi::handle(const std::string& method, const std::string& target,
                                        const std::string& content_type, const std::string& body, Access access,
                                        const std::string& caller) {
  ctx_.caller = caller;
  const Handler* h = nullptr;
  std::unique_ptr<Message> req;
  if (auto refused = admit(method, target, content_type, body, access, h, req)) return std::move(*refused);
  const Encoding e = encoding_of(content_type);
  auto& factory = *google::protobuf::MessageFactory::generated_factory();
  std::unique_ptr<Message> resp(factory.GetPrototype(h->method->output_type())->New());
  return answer(e, *resp, [&] { h->call(ctx_, *req, *resp); });
}

void ControlApi::handle_async(const std::string& method, const std::string& target, const std::string& content_type,
                              const std::string& body, Access access, const std::string& caller, const Offload& offload,
                              std::function<void(Response)> done) {
  if (!offload || rpc_of(target) != "ReplaceIdentities") return done(handle(method, target, content_type, body, access, caller));
  ctx_.caller = caller;
  const Handler* h = nullptr;
  std::unique_ptr<Message> req;
  if (auto refused = admit(method, target, content_type, body, access, h, req)) return done(std::move(*refused));
  const Encoding e = encoding_of(content_type);
  struct Job {
    IdentityUpload upload;
    std::optional<PolicyState::PreparedIdentities> prepared;
    std::exception_ptr failed;
  };
  auto job = std::make_shared<Job>();
  // The request as an upload; one that holds no table is answered now.
  pb::ReplaceIdentitiesResponse unused;
  Response early = answer(e, unused, [&] { job->upload = rpc::upload_of(static_cast<const pb::ReplaceIdentitiesRequest&>(*req)); });
  if (early.status != 200) return done(std::move(early));
  offload(
      [job, identity = ctx_.state.config().identity] {
        try {
          job->prepared = PolicyState::prepare_identities(std::move(job->upload), identity);
        } catch (...) {
          job->failed = std::current_exception();
        }
      },
      [this, job, e, done = std::move(done)] {
        pb::ReplaceIdentitiesResponse r;
        Response out;
        try {
          out = answer(e, r, [&] {
            if (job->failed) std::rethrow_exception(job->failed);
            rpc::fill_replace(ctx_, ctx_.state.commit_identities(std::move(*job->prepared)), r);
          });
        } catch (const std::exception& x) {  // on the control loop: nothing may escape
          out = error(e, 500, "internal", x.what());
        }
        done(std::move(out));
      });
}

}  // namespace stakegate
