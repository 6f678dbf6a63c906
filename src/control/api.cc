#include "stakegate/control/api.h"

#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <map>

#include "control.pb.h"
#include "stakegate/identity/flow_import.h"

namespace stakegate {

CaseSummary GatewayView::open_evidence(const std::string&) {
  throw OpError("unavailable", "evidence cases need the running gateway");
}
namespace {

namespace pb = stakegate::v1;
using google::protobuf::Message;

struct Call {
  bool binary = false;  // application/x-protobuf
};

ControlApi::Response error(const Call& c, int status, const std::string& code, const std::string& message) {
  pb::Error e;
  e.set_code(code);
  e.set_message(message);
  ControlApi::Response r;
  r.status = status;
  if (c.binary) {
    r.content_type = "application/x-protobuf";
    r.body = e.SerializeAsString();
  } else {
    google::protobuf::util::MessageToJsonString(e, &r.body);
  }
  return r;
}

int status_of(const std::string& code) {
  static const std::map<std::string, int> m = {{"invalid_argument", 400}, {"not_found", 404},
                                               {"resource_exhausted", 422}, {"failed_precondition", 409},
                                               {"unavailable", 503}};
  auto it = m.find(code);
  return it == m.end() ? 500 : it->second;
}

void parse(const Call& c, const std::string& body, Message& msg) {
  if (body.empty()) return;
  if (c.binary) {
    if (!msg.ParseFromString(body)) throw OpError("invalid_argument", "body is not a valid binary " + msg.GetTypeName());
    return;
  }
  google::protobuf::util::JsonParseOptions o;
  o.ignore_unknown_fields = false;
  auto st = google::protobuf::util::JsonStringToMessage(body, &msg, o);
  if (!st.ok()) throw OpError("invalid_argument", "bad JSON for " + msg.GetTypeName() + ": " + std::string(st.message()));
}

ControlApi::Response reply(const Call& c, const Message& msg) {
  ControlApi::Response r;
  if (c.binary) {
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

// NodeIDs are hex; the table stores them lower case.
std::string lower_id(std::string id) {
  std::transform(id.begin(), id.end(), id.begin(), ::tolower);
  return id;
}

void to_proto(const NodeIdentity& n, pb::Node& out) {
  out.set_node_id(n.node_id);
  out.set_role(std::string(role_name(n.role)));
  out.set_address(n.address);
  for (const auto& ip : n.ips) out.add_ips(ip.to_string());
  out.set_weight(n.weight);
  out.set_status(n.status);
  out.set_network_key(n.network_key);
  out.set_staking_key(n.staking_key);
}

NodeIdentity from_proto(const pb::Node& n, size_t i) {
  std::string where = "nodes[" + std::to_string(i) + "]";
  NodeIdentity out;
  out.node_id = lower_id(n.node_id());
  if (!valid_node_id(out.node_id)) throw OpError("invalid_argument", where + ".node_id: must be 64 hex characters");
  auto role = parse_role(n.role());
  if (!role) throw OpError("invalid_argument", where + ".role: unknown role '" + n.role() + "'");
  out.role = *role;
  out.address = n.address();
  if (!split_host_port(out.address, out.host, out.port))
    throw OpError("invalid_argument", where + ".address: must be host:port, got '" + out.address + "'");
  out.weight = n.weight() > 0 ? n.weight() : 100;
  out.network_key = n.network_key();
  out.staking_key = n.staking_key();
  out.status = n.status().empty() ? "active" : n.status();
  if (out.status != "active" && out.status != "joining" && out.status != "leaving" && out.status != "ejected")
    throw OpError("invalid_argument", where + ".status: must be joining, active, leaving or ejected");
  out.ejected = out.status == "ejected";
  return out;
}

void to_proto(const CaseSummary& s, pb::EvidenceCase& c) {
  c.set_id(s.id);
  c.set_dir(s.dir);
  c.set_reason(s.reason);
  c.set_node_id(s.node_id);
  c.set_opened_unix(s.opened_unix);
  c.set_closed_unix(s.closed_unix);
  c.set_samples(s.samples);
  c.set_open(s.open);
  c.set_error(s.error);
}

void fill(const SourceTotals& s, pb::NodeCounters& c) {
  c.set_passed(s.passed);
  c.set_blocklisted(s.blocklisted);
  c.set_ejected(s.ejected);
  c.set_port_denied(s.port_denied);
  c.set_over_rate(s.over_rate);
}

void fill_qos(const PolicyState& st, Role r, pb::RoleQos& q) {
  const RoleQos& c = st.config().roles[static_cast<int>(r)];
  q.set_role(std::string(role_name(r)));
  q.set_share(c.share);
  q.set_min_pps(c.min_pps);
  q.set_burst_ms(c.burst_ms);
  for (uint16_t p : c.ports) q.add_ports(p);
  q.set_role_pps(st.plan().roles[static_cast<int>(r)].pps);
  q.set_nodes(static_cast<uint32_t>(st.plan().roles[static_cast<int>(r)].nodes));
}

Role need_role(const std::string& name) {
  auto r = parse_role(name);
  if (!r) throw OpError("invalid_argument", "unknown role '" + name + "' (collection, consensus, execution, verification, access)");
  return *r;
}

}  // namespace

ControlApi::Response ControlApi::handle(const std::string& method, const std::string& target,
                                        const std::string& content_type, const std::string& body, int64_t now) {
  Call c;
  c.binary = content_type.rfind("application/x-protobuf", 0) == 0;
  std::string path = target.substr(0, target.find('?'));
  if (path.rfind("/v1/", 0) != 0) return error(c, 404, "not_found", "no such path: " + path + " (RPCs are at /v1/<Rpc>)");
  std::string rpc = path.substr(4);
  if (method != "POST" && method != "GET") return error(c, 405, "method_not_allowed", "use POST (or GET without a body)");
  if (!c.binary && !content_type.empty() && content_type.rfind("application/json", 0) != 0 && !body.empty())
    return error(c, 415, "unsupported_media_type", "send application/json or application/x-protobuf");

  try {
    if (rpc == "Status") {
      Totals t = view_.totals(false);
      pb::StatusResponse r;
      r.set_version(version_);
      r.set_identity_generation(state_.generation());
      r.set_identity_source(state_.identity_source());
      r.set_nodes(static_cast<uint32_t>(state_.nodes().size()));
      r.set_sources(static_cast<uint32_t>(state_.plan().sources.size()));
      r.set_source_capacity(static_cast<uint32_t>(state_.source_capacity()));
      r.set_workers(state_.workers());
      r.set_uptime_s(view_.uptime_s());
      r.set_config_file(state_.config().file);
      r.set_blocklist_entries(static_cast<uint32_t>(state_.blocklist().size()));
      r.set_snapshots_pending_reclaim(view_.snapshots_pending_reclaim());
      uint64_t out = t.packets(Direction::kOutside), passed = 0;
      for (int k = 0; k < kTrafficClassCount; ++k) passed += t.count(Direction::kOutside, static_cast<TrafficClass>(k), Verdict::kPass);
      r.set_outside_packets(out);
      r.set_outside_passed(passed);
      r.set_inside_packets(t.packets(Direction::kInside));
      for (int v = 1; v < kVerdictCount; ++v)
        (*r.mutable_drops_by_reason())[std::string(verdict_name(static_cast<Verdict>(v)))] = t.drops(static_cast<Verdict>(v));
      return reply(c, r);
    }
    if (rpc == "GetIdentities") {
      pb::GetIdentitiesResponse r;
      r.set_generation(state_.generation());
      r.set_source(state_.identity_source());
      for (const auto& n : state_.nodes()) to_proto(n, *r.add_nodes());
      return reply(c, r);
    }
    if (rpc == "ReplaceIdentities") {
      std::vector<NodeIdentity> nodes;
      std::string source = "api", stakes;
      size_t first = body.find_first_not_of(" \t\r\n");
      bool raw_json = !c.binary && first != std::string::npos;
      if (raw_json && body[first] == '[') {
        nodes = parse_flow_node_infos(body, "request body (node-infos)");
        source = "api: node-infos.pub.json";
      } else if (raw_json && body.find("\"SealingSegment\"") != std::string::npos) {
        nodes = parse_flow_snapshot(body, "request body (protocol snapshot)");
        source = "api: protocol state snapshot";
      } else {
        pb::ReplaceIdentitiesRequest q;
        parse(c, body, q);
        if (q.has_flow_node_infos_json()) {
          nodes = parse_flow_node_infos(q.flow_node_infos_json(), "flow_node_infos_json");
          source = "api: node-infos.pub.json";
        } else if (q.has_flow_snapshot_json()) {
          nodes = parse_flow_snapshot(q.flow_snapshot_json(), "flow_snapshot_json");
          source = "api: protocol state snapshot";
        } else if (q.has_nodes()) {
          for (int i = 0; i < q.nodes().nodes_size(); ++i) nodes.push_back(from_proto(q.nodes().nodes(i), static_cast<size_t>(i)));
          source = "api: identity table";
        } else {
          throw OpError("invalid_argument", "no table: send a node-infos array, a protocol snapshot, or a ReplaceIdentitiesRequest");
        }
        stakes = q.stake_json();
      }
      auto ch = state_.replace_identities(std::move(nodes), source, stakes);
      view_.wait_applied();
      pb::ReplaceIdentitiesResponse r;
      r.set_generation(ch.generation);
      r.set_nodes(static_cast<uint32_t>(state_.nodes().size()));
      r.set_added(static_cast<uint32_t>(ch.added));
      r.set_removed(static_cast<uint32_t>(ch.removed));
      for (const auto& w : ch.warnings) r.add_warnings(w);
      return reply(c, r);
    }
    if (rpc == "Block") {
      pb::BlockRequest q;
      parse(c, body, q);
      BlockEntry e;
      if (!q.cidr().empty()) {
        std::string why;
        e.cidr = parse_cidr(q.cidr(), &why);
        if (!e.cidr) throw OpError("invalid_argument", "bad CIDR '" + q.cidr() + "': " + why);
      }
      if (!q.node_id().empty()) {
        e.node_id = lower_id(q.node_id());
        if (!valid_node_id(e.node_id)) throw OpError("invalid_argument", "node_id must be 64 hex characters");
        if (state_.find_node(e.node_id) < 0)
          throw OpError("not_found", "node " + e.node_id + " is not in the identity table");
      }
      e.reason = q.reason();
      int64_t expires = q.expires_in_s() ? now + static_cast<int64_t>(q.expires_in_s()) : 0;
      auto ch = state_.block(e, expires);
      view_.wait_applied();
      pb::BlockResponse r;
      r.set_generation(ch.generation);
      if (e.cidr) r.mutable_entry()->set_cidr(e.cidr->to_string());
      r.mutable_entry()->set_node_id(e.node_id);
      r.mutable_entry()->set_reason(e.reason);
      r.mutable_entry()->set_origin("api");
      r.mutable_entry()->set_expires_at_unix(expires);
      return reply(c, r);
    }
    if (rpc == "Unblock") {
      pb::UnblockRequest q;
      parse(c, body, q);
      auto ch = state_.unblock(q.cidr(), lower_id(q.node_id()));
      view_.wait_applied();
      pb::UnblockResponse r;
      r.set_generation(ch.generation);
      r.set_removed(static_cast<uint32_t>(ch.removed));
      return reply(c, r);
    }
    if (rpc == "ListBlocklist") {
      pb::ListBlocklistResponse r;
      for (const auto& b : state_.blocklist()) {
        auto* e = r.add_entries();
        if (b.entry.cidr) e->set_cidr(b.entry.cidr->to_string());
        e->set_node_id(b.entry.node_id);
        e->set_reason(b.entry.reason);
        e->set_origin(b.origin);
        e->set_expires_at_unix(b.expires_at);
      }
      return reply(c, r);
    }
    if (rpc == "GetRoleQos") {
      pb::GetRoleQosRequest q;
      parse(c, body, q);
      pb::GetRoleQosResponse r;
      for (int i = 0; i < kRoleCount; ++i) {
        Role role = static_cast<Role>(i);
        if (!q.role().empty() && need_role(q.role()) != role) continue;
        fill_qos(state_, role, *r.add_roles());
      }
      r.set_capacity_pps(state_.config().capacity_pps);
      r.set_unregistered_share(state_.config().unregistered.share);
      return reply(c, r);
    }
    if (rpc == "SetRoleQos") {
      pb::SetRoleQosRequest q;
      parse(c, body, q);
      Role role = need_role(q.role());
      RoleQos qos = state_.config().roles[static_cast<int>(role)];
      if (q.has_share()) qos.share = q.share();
      if (q.has_min_pps()) qos.min_pps = q.min_pps();
      if (q.has_burst_ms()) qos.burst_ms = q.burst_ms();
      if (q.ports_size() > 0 && q.all_ports()) throw OpError("invalid_argument", "give ports or all_ports, not both");
      if (q.ports_size() > 0) {
        qos.ports.clear();
        for (uint32_t p : q.ports()) {
          if (p < 1 || p > 65535) throw OpError("invalid_argument", "port " + std::to_string(p) + " is not between 1 and 65535");
          qos.ports.push_back(static_cast<uint16_t>(p));
        }
        std::sort(qos.ports.begin(), qos.ports.end());
        qos.ports.erase(std::unique(qos.ports.begin(), qos.ports.end()), qos.ports.end());
      }
      if (q.all_ports()) qos.ports.clear();
      auto ch = state_.set_role_qos(role, qos);
      view_.wait_applied();
      pb::SetRoleQosResponse r;
      r.set_generation(ch.generation);
      fill_qos(state_, role, *r.mutable_qos());
      return reply(c, r);
    }
    if (rpc == "GetNode") {
      pb::GetNodeRequest q;
      parse(c, body, q);
      long i = state_.find_node(lower_id(q.node_id()));
      if (i < 0) throw OpError("not_found", "node '" + q.node_id() + "' is not in the identity table");
      const NodeIdentity& n = state_.nodes()[static_cast<size_t>(i)];
      const NodePlan& np = state_.plan().nodes[static_cast<size_t>(i)];
      const SourcePlan& sp = state_.plan().sources[np.source];
      Totals t = view_.totals(true);
      pb::GetNodeResponse r;
      to_proto(n, *r.mutable_node());
      r.set_rate_pps(np.rate_pps);
      r.set_burst(np.burst_pkts);
      r.set_blocklisted(sp.blocked);
      if (sp.slot < t.sources.size()) fill(t.sources[sp.slot], *r.mutable_counters());
      for (size_t j : sp.nodes)
        if (j != static_cast<size_t>(i)) r.add_shares_address_with(state_.nodes()[j].node_id);
      if (auto v = view_.source_view(n.node_id)) {
        r.set_score(v->score);
        r.set_graylisted(v->graylisted);
      }
      return reply(c, r);
    }
    if (rpc == "ListNodes") {
      pb::ListNodesRequest q;
      parse(c, body, q);
      uint32_t limit = q.limit() ? std::min<uint32_t>(q.limit(), 100000) : 100;
      std::map<uint32_t, double> since;
      for (const auto& e : view_.graylisted()) since[e.slot] = view_.unix_of(e.since_ns);
      pb::ListNodesResponse r;
      std::vector<std::pair<double, pb::NodeScore>> rows;
      for (const auto& sp : state_.plan().sources) {
        bool gray = since.count(sp.slot) != 0;
        if (q.graylisted_only() && !gray) continue;
        auto v = view_.source_view(state_.nodes()[sp.nodes.front()].node_id);
        for (size_t j : sp.nodes) {
          const NodeIdentity& n = state_.nodes()[j];
          pb::NodeScore s;
          s.set_node_id(n.node_id);
          s.set_role(std::string(role_name(n.role)));
          s.set_address(n.address);
          s.set_rate_pps(state_.plan().nodes[j].rate_pps);
          if (v) {
            s.set_score(v->score);
            fill(v->counters, *s.mutable_counters());
          }
          s.set_graylisted(gray);
          if (gray) s.set_graylisted_since_unix(since[sp.slot]);
          rows.emplace_back(s.score(), std::move(s));
        }
      }
      std::stable_sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
      for (size_t k = 0; k < rows.size() && k < limit; ++k) *r.add_nodes() = std::move(rows[k].second);
      r.set_graylisted(static_cast<uint32_t>(since.size()));
      auto [in, out] = view_.graylist_transitions();
      r.set_graylist_entries(in);
      r.set_graylist_exits(out);
      return reply(c, r);
    }
    if (rpc == "OpenEvidence") {
      pb::OpenEvidenceRequest q;
      parse(c, body, q);
      std::string id = lower_id(q.node_id());
      if (!valid_node_id(id)) throw OpError("invalid_argument", "node_id must be 64 hex characters");
      if (state_.find_node(id) < 0) throw OpError("not_found", "node " + id + " is not in the identity table");
      pb::EvidenceCase r;
      to_proto(view_.open_evidence(id), r);
      return reply(c, r);
    }
    if (rpc == "ListEvidence") {
      pb::ListEvidenceResponse r;
      for (const auto& cs : view_.evidence_cases()) to_proto(cs, *r.add_cases());
      auto [opened, errors] = view_.evidence_counts();
      r.set_opened(opened);
      r.set_errors(errors);
      r.set_dir(state_.config().evidence.dir);
      return reply(c, r);
    }
    if (rpc == "Top") {
      pb::TopRequest q;
      parse(c, body, q);
      uint32_t limit = q.limit() ? std::min<uint32_t>(q.limit(), 1000) : 10;
      Totals t = view_.totals(true);
      const auto& plan = state_.plan();
      std::vector<std::pair<uint64_t, size_t>> ranked;  // (dropped, node index of the source's first node)
      for (const auto& sp : plan.sources) {
        if (sp.slot >= t.sources.size()) continue;
        const SourceTotals& s = t.sources[sp.slot];
        uint64_t dropped = s.blocklisted + s.ejected + s.port_denied + s.over_rate;
        if (dropped) ranked.push_back({dropped, sp.nodes.front()});
      }
      std::sort(ranked.begin(), ranked.end(), [](auto& a, auto& b) { return a.first > b.first; });
      pb::TopResponse r;
      for (size_t k = 0; k < ranked.size() && k < limit; ++k) {
        const NodeIdentity& n = state_.nodes()[ranked[k].second];
        const SourcePlan& sp = plan.sources[plan.nodes[ranked[k].second].source];
        auto* e = r.add_nodes();
        e->set_node_id(n.node_id);
        e->set_role(std::string(role_name(n.role)));
        e->set_address(n.address);
        e->set_dropped(ranked[k].first);
        fill(t.sources[sp.slot], *e->mutable_counters());
      }
      for (int k = 0; k < kTrafficClassCount; ++k) {
        auto cls = static_cast<TrafficClass>(k);
        auto* rd = r.add_roles();
        rd->set_role(std::string(class_name(cls)));
        rd->set_passed(t.count(Direction::kOutside, cls, Verdict::kPass));
        for (int v = 1; v < kVerdictCount; ++v)
          (*rd->mutable_dropped())[std::string(verdict_name(static_cast<Verdict>(v)))] =
              t.count(Direction::kOutside, cls, static_cast<Verdict>(v));
      }
      return reply(c, r);
    }
    if (rpc == "Reload") {
      auto ch = state_.reload();
      view_.wait_applied();
      pb::ReloadResponse r;
      r.set_generation(ch.generation);
      for (const auto& w : ch.warnings) r.add_warnings(w);
      return reply(c, r);
    }
    return error(c, 404, "not_found", "no RPC named '" + rpc + "'");
  } catch (const OpError& e) {
    return error(c, status_of(e.code()), e.code(), e.what());
  } catch (const ConfigError& e) {
    return error(c, 400, "invalid_argument", e.what());
  }
}

}  // namespace stakegate
