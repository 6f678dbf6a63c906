#include "stakegate/report/source_directory.h"

#include <algorithm>

namespace stakegate {

std::string describe_source(const SourceView& s) {
  std::string out;
  for (const auto& n : s.nodes) out += (out.empty() ? "" : ", ") + n.node_id + " (" + std::string(role_name(n.role)) + ")";
  out += " at ";
  for (size_t i = 0; i < s.addrs.size(); ++i) out += (i ? "," : "") + s.addrs[i];
  return out;
}

void SourceDirectory::reset(const std::vector<const Worker*>& workers, const std::vector<NodeIdentity>* nodes,
                            const StakePlan* plan, const ScoringConfig& scoring, unsigned shards) {
  workers_ = workers;
  shards_ = shards ? shards : std::max<unsigned>(1, static_cast<unsigned>(workers.size()));
  nodes_ = nodes;
  plan_ = plan;
  scoring_ = scoring;
  by_slot_.clear();
  by_node_.clear();
  for (size_t i = 0; i < plan->sources.size(); ++i) {
    by_slot_[plan->sources[i].slot] = i;
    for (size_t n : plan->sources[i].nodes) by_node_[(*nodes)[n].node_id] = i;
  }
}

uint64_t SourceDirectory::now() const {
  uint64_t t = 0;
  for (const Worker* w : workers_) t = std::max(t, w->clock_ns());
  return t;
}

std::optional<SourceView> SourceDirectory::make(size_t index) const {
  const SourcePlan& sp = plan_->sources[index];
  SourceView v;
  v.slot = sp.slot;
  v.epoch = sp.slot_epoch;
  for (size_t i : sp.nodes) v.nodes.push_back((*nodes_)[i]);
  for (const IpAddr& a : sp.addrs) v.addrs.push_back(a.to_string());
  v.role = sp.role;
  v.rate_pps = sp.rate_pps;
  v.burst = sp.burst_pkts;
  const double workers = shards_;
  for (const Worker* w : workers_) {
    if (sp.slot >= w->source_capacity()) continue;
    const NodeMeter& m = w->meter(sp.slot);
    const NodeMeterCold& c = w->meter_cold(sp.slot);
    if (m.epoch != sp.slot_epoch) continue;  // this worker has not adopted the slot's source yet
    v.counters.passed += m.passed;
    v.counters.over_rate += m.dropped_over_rate;
    v.counters.blocklisted += c.dropped_blocklisted;
    v.counters.ejected += c.dropped_ejected;
    v.counters.port_denied += c.dropped_port_denied;
    v.counters.request_passed += c.passed_request;
    v.counters.request_over_rate += c.dropped_request;
    v.counters.session_passed += c.passed_session;
    v.counters.session_over_rate += c.dropped_session;
    double s = decayed_score(c.peer.score, c.peer.score_ns, w->clock_ns(), scoring_.half_life_s * 1e9);
    v.score += s;
    if ((m.flags & SourcePolicy::kGraylisted) && scoring_.enabled && s <= scoring_.recover / workers) v.graylisted = true;
  }
  return v;
}

std::optional<SourceView> SourceDirectory::by_slot(uint32_t slot) const {
  auto it = by_slot_.find(slot);
  if (!plan_ || it == by_slot_.end()) return std::nullopt;
  return make(it->second);
}

std::optional<SourceView> SourceDirectory::by_node(const std::string& node_id) const {
  auto it = by_node_.find(node_id);
  if (!plan_ || it == by_node_.end()) return std::nullopt;
  return make(it->second);
}

}  // namespace stakegate
