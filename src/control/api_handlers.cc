#include "api_handlers.h"

#include <algorithm>

namespace stakegate::rpc {
namespace {

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
  const std::string where = "nodes[" + std::to_string(i) + "]";
  NodeIdentity out;
  set_node_fields(out, n.node_id(), n.role(), n.address(), "request", where);
  out.weight = n.weight() > 0 ? n.weight() : 100;
  out.network_key = n.network_key();
  out.staking_key = n.staking_key();
  if (!set_node_status(out, n.status().empty() ? "active" : n.status()))
    throw OpError("invalid_argument", where + ".status: must be joining, active, leaving or ejected");
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

void to_proto(const SourceTotals& s, pb::NodeCounters& c) {
  c.set_passed(s.passed);
  c.set_blocklisted(s.blocklisted);
  c.set_ejected(s.ejected);
  c.set_port_denied(s.port_denied);
  c.set_over_rate(s.over_rate);
  c.set_request_passed(s.request_passed);
  c.set_request_over_rate(s.request_over_rate);
  c.set_session_passed(s.session_passed);
  c.set_session_over_rate(s.session_over_rate);
}

void to_proto(const PolicyState& st, Role r, pb::RoleQos& q) {
  const RoleQos& c = st.config().roles[static_cast<int>(r)];
  q.set_role(std::string(role_name(r)));
  q.set_share(c.share);
  q.set_min_pps(c.min_pps);
  q.set_burst_ms(c.burst_ms);
  for (uint16_t p : c.ports) q.add_ports(p);
  q.set_role_pps(st.plan().roles[static_cast<int>(r)].pps);
  q.set_nodes(static_cast<uint32_t>(st.plan().roles[static_cast<int>(r)].nodes));
}

void to_proto(const ActiveBlock& b, pb::BlockEntry& e) {
  if (b.entry.cidr) e.set_cidr(b.entry.cidr->to_string());
  e.set_node_id(b.entry.node_id);
  e.set_reason(b.entry.reason);
  e.set_origin(b.origin);
  e.set_expires_at_unix(b.expires_at);
  e.set_created_by(b.created_by);
  e.set_created_at_unix(b.created_at);
}

EvidenceService& need_evidence(ApiContext& c) {
  if (!c.evidence) throw OpError("unavailable", "evidence cases need the running gateway");
  return *c.evidence;
}

void add_warnings(const PolicyState::Change& ch, google::protobuf::RepeatedPtrField<std::string>* out) {
  for (const auto& w : ch.warnings) *out->Add() = w;
  if (!ch.applied) *out->Add() = "a worker did not confirm the new policy within 1 s; it applies it when it resumes";
}

}  // namespace

void status(ApiContext& c, const pb::Empty&, pb::StatusResponse& r) {
  const PolicyState& st = c.state;
  Totals t = c.data.totals(false);
  r.set_version(c.version);
  r.set_identity_generation(st.generation());
  r.set_identity_source(st.identity_source());
  r.set_nodes(static_cast<uint32_t>(st.nodes().size()));
  r.set_sources(static_cast<uint32_t>(st.plan().sources.size()));
  r.set_source_capacity(static_cast<uint32_t>(st.source_capacity()));
  r.set_workers(st.workers());
  r.set_uptime_s(c.data.uptime_s());
  r.set_config_file(st.config().file);
  r.set_blocklist_entries(static_cast<uint32_t>(st.blocklist_size()));
  r.set_snapshots_pending_reclaim(c.data.snapshots_pending_reclaim());
  r.set_outside_packets(t.packets(Direction::kOutside));
  r.set_outside_passed(t.passed(Direction::kOutside));
  r.set_inside_packets(t.packets(Direction::kInside));
  for (int v = 1; v < kVerdictCount; ++v)
    (*r.mutable_drops_by_reason())[std::string(verdict_name(static_cast<Verdict>(v)))] = t.drops(static_cast<Verdict>(v));
  auto* ss = r.mutable_sessions();
  ss->set_created(t.c.sessions_created);
  ss->set_verified(t.c.sessions_verified);
  ss->set_evicted(t.c.sessions_evicted);
  ss->set_table_entries(c.data.session_capacity());
  auto* dg = r.mutable_diagnostics();
  dg->set_spoofed_internal(t.c.spoofed_internal);
  dg->set_neighbour_impostors(t.c.neighbour_impostors);
  dg->set_inside_foreign(t.c.inside_foreign);
  dg->set_routing_over_rate(t.c.routing_over_rate);
  const std::vector<double> busy = c.data.busy(), cycles = c.data.cycles_per_packet();
  const std::vector<uint64_t> received = c.data.outside_packets();
  for (size_t w = 0; w < std::max(cycles.size(), received.size()); ++w) {
    auto* l = r.add_worker_load();
    l->set_busy_ratio(w < busy.size() ? busy[w] : 0.0);
    l->set_cycles_per_packet(w < cycles.size() ? cycles[w] : 0.0);
    l->set_outside_packets(w < received.size() ? received[w] : 0);
  }
  r.set_rate_split_workers(c.state.rate_shards());
  r.set_monitor(c.state.config().monitor);
  r.set_monitor_forwarded(c.data.monitor_forwarded());
  for (const PortLink& l : c.data.links()) {
    auto* p = r.add_ports();
    p->set_name(l.name);
    p->set_link_up(l.up);
    p->set_speed_mbps(l.speed_mbps);
    p->set_full_duplex(l.full_duplex);
    p->set_link_changes(l.changes);
  }
  dg->set_unspread_share(unspread_share(received, c.state.rate_shards()));
}

void get_identities(ApiContext& c, const pb::Empty&, pb::GetIdentitiesResponse& r) {
  r.set_generation(c.state.generation());
  r.set_source(c.state.identity_source());
  for (const auto& n : c.state.nodes()) to_proto(n, *r.add_nodes());
}

IdentityUpload upload_of(const pb::ReplaceIdentitiesRequest& q) {
  IdentityUpload up;
  up.stake_json = q.stake_json();
  up.force = q.force();
  if (q.has_flow_node_infos_json()) {
    up.kind = IdentityUpload::Kind::kFlowNodeInfos;
    up.flow_json = q.flow_node_infos_json();
  } else if (q.has_flow_snapshot_json()) {
    up.kind = IdentityUpload::Kind::kFlowSnapshot;
    up.flow_json = q.flow_snapshot_json();
  } else if (q.has_nodes()) {
    for (int i = 0; i < q.nodes().nodes_size(); ++i) up.nodes.push_back(from_proto(q.nodes().nodes(i), static_cast<size_t>(i)));
  } else {
    throw OpError("invalid_argument", "no table: send a node-infos array, a protocol snapshot, or a ReplaceIdentitiesRequest");
  }
  return up;
}

void fill_replace(const ApiContext& c, const PolicyState::Change& ch, pb::ReplaceIdentitiesResponse& r) {
  r.set_generation(ch.generation);
  r.set_nodes(static_cast<uint32_t>(c.state.nodes().size()));
  r.set_added(static_cast<uint32_t>(ch.added));
  r.set_removed(static_cast<uint32_t>(ch.removed));
  add_warnings(ch, r.mutable_warnings());
}

void replace_identities(ApiContext& c, const pb::ReplaceIdentitiesRequest& q, pb::ReplaceIdentitiesResponse& r) {
  fill_replace(c, c.state.replace_identities(upload_of(q)), r);
}

void block(ApiContext& c, const pb::BlockRequest& q, pb::BlockResponse& r) {
  auto ch = c.state.block(q.cidr(), q.node_id(), q.reason(), q.expires_in_s(), c.caller);
  r.set_generation(ch.generation);
  to_proto(c.state.blocklist().back(), *r.mutable_entry());  // the entry just made is the last one
  add_warnings(ch, r.mutable_warnings());
}

void unblock(ApiContext& c, const pb::UnblockRequest& q, pb::UnblockResponse& r) {
  auto ch = c.state.unblock(q.cidr(), q.node_id());
  r.set_generation(ch.generation);
  r.set_removed(static_cast<uint32_t>(ch.removed));
  add_warnings(ch, r.mutable_warnings());
}

void list_blocklist(ApiContext& c, const pb::Empty&, pb::ListBlocklistResponse& r) {
  for (const auto& b : c.state.blocklist()) to_proto(b, *r.add_entries());
}

void get_role_qos(ApiContext& c, const pb::GetRoleQosRequest& q, pb::GetRoleQosResponse& r) {
  std::optional<Role> only;
  if (!q.role().empty() && !(only = parse_role(q.role())))
    throw OpError("invalid_argument", "unknown role '" + q.role() + "' (collection, consensus, execution, verification, access)");
  for (int i = 0; i < kRoleCount; ++i)
    if (!only || *only == static_cast<Role>(i)) to_proto(c.state, static_cast<Role>(i), *r.add_roles());
  r.set_capacity_pps(c.state.config().capacity_pps);
  r.set_unregistered_share(c.state.config().unregistered.share);
}

void set_role_qos(ApiContext& c, const pb::SetRoleQosRequest& q, pb::SetRoleQosResponse& r) {
  RoleQosPatch p;
  if (q.has_share()) p.share = q.share();
  if (q.has_min_pps()) p.min_pps = q.min_pps();
  if (q.has_burst_ms()) p.burst_ms = q.burst_ms();
  if (q.ports_size() > 0) p.ports = std::vector<uint32_t>(q.ports().begin(), q.ports().end());
  p.all_ports = q.all_ports();
  auto ch = c.state.set_role_qos(q.role(), p);
  r.set_generation(ch.generation);
  add_warnings(ch, r.mutable_warnings());
  to_proto(c.state, *parse_role(q.role()), *r.mutable_qos());
}

void get_node(ApiContext& c, const pb::GetNodeRequest& q, pb::GetNodeResponse& r) {
  const PolicyState& st = c.state;
  const size_t i = st.need_node(q.node_id());
  const NodeIdentity& n = st.nodes()[i];
  const NodePlan& np = st.plan().nodes[i];
  const SourcePlan& sp = st.plan().sources[np.source];
  Totals t = c.data.totals(true);
  to_proto(n, *r.mutable_node());
  r.set_rate_pps(np.rate_pps);
  r.set_burst(np.burst_pkts);
  r.set_blocklisted(sp.blocked);
  if (sp.slot < t.sources.size()) to_proto(t.sources[sp.slot], *r.mutable_counters());
  for (size_t j : sp.nodes)
    if (j != i) r.add_shares_address_with(st.nodes()[j].node_id);
  if (c.evidence)
    if (auto v = c.evidence->source_view(n.node_id)) {
      r.set_score(v->score);
      r.set_graylisted(v->graylisted);
    }
}

void top(ApiContext& c, const pb::TopRequest& q, pb::TopResponse& r) {
  const uint32_t limit = q.limit() ? std::min<uint32_t>(q.limit(), 1000) : 10;
  r.set_monitor(c.state.config().monitor);
  Totals t = c.data.totals(true);
  const StakePlan& plan = c.state.plan();
  std::vector<std::pair<uint64_t, size_t>> ranked;  // (dropped, the source's first node)
  for (const auto& sp : plan.sources) {
    if (sp.slot >= t.sources.size()) continue;
    const SourceTotals& s = t.sources[sp.slot];
    const uint64_t dropped =
        s.blocklisted + s.ejected + s.port_denied + s.over_rate + s.request_over_rate + s.session_over_rate;
    if (dropped) ranked.push_back({dropped, sp.nodes.front()});
  }
  std::sort(ranked.begin(), ranked.end(), [](auto& a, auto& b) { return a.first > b.first; });
  for (size_t k = 0; k < ranked.size() && k < limit; ++k) {
    const NodeIdentity& n = c.state.nodes()[ranked[k].second];
    auto* e = r.add_nodes();
    e->set_node_id(n.node_id);
    e->set_role(std::string(role_name(n.role)));
    e->set_address(n.address);
    e->set_dropped(ranked[k].first);
    to_proto(t.sources[plan.sources[plan.nodes[ranked[k].second].source].slot], *e->mutable_counters());
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
}

void fill_reload(const ApiContext&, const PolicyState::Change& ch, pb::ReloadResponse& r) {
  r.set_generation(ch.generation);
  add_warnings(ch, r.mutable_warnings());
}

// In `run` the control loop answers Reload itself (it reads the files off its thread);
// this synchronous path serves the unit tests and any caller without a loop.
void reload(ApiContext& c, const pb::ReloadRequest& q, pb::ReloadResponse& r) { fill_reload(c, c.state.reload(q.force()), r); }

void list_nodes(ApiContext& c, const pb::ListNodesRequest& q, pb::ListNodesResponse& r) {
  const PolicyState& st = c.state;
  const uint32_t limit = q.limit() ? std::min<uint32_t>(q.limit(), 100000) : 100;
  std::map<uint32_t, double> since;  // graylisted slots
  if (c.evidence)
    for (const auto& e : c.evidence->graylisted()) since[e.slot] = c.evidence->unix_of(e.since_ns);
  std::vector<std::pair<double, pb::NodeScore>> rows;
  for (const auto& sp : st.plan().sources) {
    const bool gray = since.count(sp.slot) != 0;
    if (q.graylisted_only() && !gray) continue;
    auto v = c.evidence ? c.evidence->source_view(st.nodes()[sp.nodes.front()].node_id) : std::nullopt;
    for (size_t j : sp.nodes) {
      const NodeIdentity& n = st.nodes()[j];
      pb::NodeScore s;
      s.set_node_id(n.node_id);
      s.set_role(std::string(role_name(n.role)));
      s.set_address(n.address);
      s.set_rate_pps(st.plan().nodes[j].rate_pps);
      if (v) {
        s.set_score(v->score);
        to_proto(v->counters, *s.mutable_counters());
      }
      s.set_graylisted(gray);
      if (gray) s.set_graylisted_since_unix(since[sp.slot]);
      rows.emplace_back(s.score(), std::move(s));
    }
  }
  std::stable_sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  for (size_t k = 0; k < rows.size() && k < limit; ++k) *r.add_nodes() = std::move(rows[k].second);
  r.set_graylisted(static_cast<uint32_t>(since.size()));
  if (c.evidence) {
    auto [in, out] = c.evidence->graylist_transitions();
    r.set_graylist_entries(in);
    r.set_graylist_exits(out);
  }
}

void open_evidence(ApiContext& c, const pb::OpenEvidenceRequest& q, pb::EvidenceCase& r) {
  c.state.need_node(q.node_id());  // a malformed or unknown NodeID is refused before anything changes
  to_proto(need_evidence(c).open_case(q.node_id()), r);
}

void list_evidence(ApiContext& c, const pb::Empty&, pb::ListEvidenceResponse& r) {
  if (c.evidence) {
    for (const auto& cs : c.evidence->cases()) to_proto(cs, *r.add_cases());
    auto [opened, errors] = c.evidence->case_counts();
    r.set_opened(opened);
    r.set_errors(errors);
  }
  r.set_dir(c.state.config().evidence.dir);
}

}  // namespace stakegate::rpc
