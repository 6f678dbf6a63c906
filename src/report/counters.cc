#include "stakegate/report/counters.h"

#include <algorithm>
#include <cstdio>
#include <sstream>

namespace stakegate {

namespace {
uint64_t relaxed(const uint64_t& x) { return __atomic_load_n(&x, __ATOMIC_RELAXED); }
}  // namespace

void Totals::add(const Worker& w, size_t slots) {
  const WorkerCounters& x = w.counters();
  for (int d = 0; d < kDirectionCount; ++d)
    for (int k = 0; k < kTrafficClassCount; ++k)
      for (int v = 0; v < kVerdictCount; ++v) {
        c.packets[d][k][v] += relaxed(x.packets[d][k][v]);
        c.bytes[d][k][v] += relaxed(x.bytes[d][k][v]);
      }
  c.unregistered_evictions += relaxed(x.unregistered_evictions);
  c.non_first_fragments += relaxed(x.non_first_fragments);
  c.sessions_created += relaxed(x.sessions_created);
  c.sessions_evicted += relaxed(x.sessions_evicted);
  c.sessions_verified += relaxed(x.sessions_verified);
  c.unregistered_proven += relaxed(x.unregistered_proven);
  c.unregistered_reserve += relaxed(x.unregistered_reserve);
  c.request_hop_passed += relaxed(x.request_hop_passed);
  c.fast_path += relaxed(x.fast_path);
  c.fast_path_inside += relaxed(x.fast_path_inside);
  c.neighbour_answers += relaxed(x.neighbour_answers);
  c.handoffs += relaxed(x.handoffs);
  c.fragments_held += relaxed(x.fragments_held);
  c.dhcp_answers += relaxed(x.dhcp_answers);
  c.spoofed_internal += relaxed(x.spoofed_internal);
  c.neighbour_impostors += relaxed(x.neighbour_impostors);
  c.inside_foreign += relaxed(x.inside_foreign);
  if (uint64_t a = relaxed(x.inside_foreign_v4)) c.inside_foreign_v4 = a;  // some worker's last one
  if (uint64_t a = relaxed(x.inside_foreign_v6)) c.inside_foreign_v6 = a;
  c.listed_neighbour_passes += relaxed(x.listed_neighbour_passes);
  c.routing_passes += relaxed(x.routing_passes);
  c.refusals_passed += relaxed(x.refusals_passed);
  c.routing_over_rate += relaxed(x.routing_over_rate);
  size_t n = std::min(w.source_capacity(), slots);
  if (sources.size() < n) sources.resize(n);
  for (uint32_t s = 0; s < n; ++s) {
    const NodeMeter& m = w.meter(s);
    const NodeMeterCold& cm = w.meter_cold(s);
    sources[s].passed += relaxed(m.passed);
    sources[s].blocklisted += relaxed(cm.dropped_blocklisted);
    sources[s].ejected += relaxed(cm.dropped_ejected);
    sources[s].port_denied += relaxed(cm.dropped_port_denied);
    sources[s].over_rate += relaxed(m.dropped_over_rate);
    sources[s].request_passed += relaxed(cm.passed_request);
    sources[s].request_over_rate += relaxed(cm.dropped_request);
    sources[s].session_passed += relaxed(cm.passed_session);
    sources[s].session_over_rate += relaxed(cm.dropped_session);
  }
}

uint64_t Totals::packets(Direction d) const {
  uint64_t sum = 0;
  for (int k = 0; k < kTrafficClassCount; ++k)
    for (int v = 0; v < kVerdictCount; ++v) sum += c.packets[static_cast<int>(d)][k][v];
  return sum;
}

uint64_t Totals::passed(Direction d) const {
  uint64_t sum = 0;
  for (int k = 0; k < kTrafficClassCount; ++k) sum += count(d, static_cast<TrafficClass>(k), Verdict::kPass);
  return sum;
}

uint64_t Totals::drops(Verdict v) const {
  uint64_t sum = 0;
  for (int k = 0; k < kTrafficClassCount; ++k) sum += count(Direction::kOutside, static_cast<TrafficClass>(k), v);
  return sum;
}

nlohmann::json make_report(const Totals& t, const std::vector<NodeIdentity>& nodes, const StakePlan& plan) {
  using json = nlohmann::json;
  json r;
  json dirs = json::object();
  json reasons = json::object();
  for (int v = 1; v < kVerdictCount; ++v) reasons[std::string(verdict_name(static_cast<Verdict>(v)))] = t.drops(static_cast<Verdict>(v));
  for (int d = 0; d < kDirectionCount; ++d) {
    json classes = json::object();
    for (int k = 0; k < kTrafficClassCount; ++k) {
      json verdicts = json::object(), bytes = json::object();
      for (int v = 0; v < kVerdictCount; ++v) {
        if (!t.c.packets[d][k][v]) continue;
        verdicts[std::string(verdict_name(static_cast<Verdict>(v)))] = t.c.packets[d][k][v];
        bytes[std::string(verdict_name(static_cast<Verdict>(v)))] = t.c.bytes[d][k][v];
      }
      if (!verdicts.empty())
        classes[std::string(class_name(static_cast<TrafficClass>(k)))] = {{"packets", verdicts}, {"bytes", bytes}};
    }
    dirs[std::string(direction_name(static_cast<Direction>(d)))] = classes;
  }
  uint64_t passed = t.passed(Direction::kOutside);
  uint64_t outside = t.packets(Direction::kOutside);
  r["totals"] = {{"outside", {{"packets", outside}, {"passed", passed}, {"dropped", outside - passed}}},
                 {"inside", {{"packets", t.packets(Direction::kInside)}}}};
  r["drops_by_reason"] = reasons;
  r["by_direction"] = dirs;
  r["unregistered_evictions"] = t.c.unregistered_evictions;
  r["unregistered_proven"] = t.c.unregistered_proven;
  r["unregistered_reserve"] = t.c.unregistered_reserve;
  r["request_hop_passed"] = t.c.request_hop_passed;
  r["non_first_fragments"] = t.c.non_first_fragments;
  r["fragments_held"] = t.c.fragments_held;
  r["sessions"] = {{"created", t.c.sessions_created}, {"evicted", t.c.sessions_evicted}, {"verified", t.c.sessions_verified}};

  json list = json::array();
  for (size_t i = 0; i < nodes.size(); ++i) {
    const NodeIdentity& n = nodes[i];
    const SourcePlan& sp = plan.sources[plan.nodes[i].source];
    SourceTotals st = sp.slot < t.sources.size() ? t.sources[sp.slot] : SourceTotals{};
    json ips = json::array();
    for (const auto& ip : n.ips) ips.push_back(ip.to_string());
    json e = {{"node_id", n.node_id},
              {"role", std::string(role_name(n.role))},
              {"address", n.address},
              {"ips", ips},
              {"status", n.status},
              {"weight", n.weight},
              {"rate_pps", plan.nodes[i].rate_pps},
              {"passed", st.passed},
              {"dropped", {{"blocklisted", st.blocklisted}, {"ejected", st.ejected},
                           {"port_denied", st.port_denied}, {"over_rate", st.over_rate}}},
              {"request_channel", {{"passed", st.request_passed}, {"request_over_rate", st.request_over_rate}}},
              {"session_replies", {{"passed", st.session_passed}, {"session_over_rate", st.session_over_rate}}}};
    if (sp.nodes.size() > 1) {
      // Nodes behind one address cannot be told apart: the counters are the address's.
      json others = json::array();
      for (size_t j : sp.nodes)
        if (j != i) others.push_back(nodes[j].node_id);
      e["address_shared_with"] = others;
      e["shared_rate_pps"] = sp.rate_pps;
    }
    list.push_back(std::move(e));
  }
  r["nodes"] = list;
  return r;
}

std::string role_table(const Totals& t) {
  std::ostringstream o;
  char line[256];
  std::snprintf(line, sizeof line, "%-13s %10s", "class", "passed");
  o << line;
  for (int v = 1; v < kVerdictCount; ++v) {
    std::snprintf(line, sizeof line, " %*s", static_cast<int>(std::max<size_t>(9, verdict_name(static_cast<Verdict>(v)).size())),
                  std::string(verdict_name(static_cast<Verdict>(v))).c_str());
    o << line;
  }
  o << "\n";
  for (int k = 0; k < kTrafficClassCount; ++k) {
    auto cls = static_cast<TrafficClass>(k);
    uint64_t any = 0;
    for (int v = 0; v < kVerdictCount; ++v) any += t.count(Direction::kOutside, cls, static_cast<Verdict>(v));
    if (!any) continue;
    std::snprintf(line, sizeof line, "%-13s %10llu", std::string(class_name(cls)).c_str(),
                  static_cast<unsigned long long>(t.count(Direction::kOutside, cls, Verdict::kPass)));
    o << line;
    for (int v = 1; v < kVerdictCount; ++v) {
      std::snprintf(line, sizeof line, " %*llu", static_cast<int>(std::max<size_t>(9, verdict_name(static_cast<Verdict>(v)).size())),
                    static_cast<unsigned long long>(t.count(Direction::kOutside, cls, static_cast<Verdict>(v))));
      o << line;
    }
    o << "\n";
  }
  return o.str();
}

double unspread_share(const std::vector<uint64_t>& received, unsigned rate_split) {
  constexpr uint64_t kEnough = 1000;  // fewer say nothing about how the NIC spreads
  constexpr double kUnspread = 0.9;
  if (rate_split < 2 || received.size() < 2) return 0;
  uint64_t total = 0, most = 0;
  for (uint64_t n : received) {
    total += n;
    most = std::max(most, n);
  }
  if (total < kEnough) return 0;
  const double share = static_cast<double>(most) / static_cast<double>(total);
  return share >= kUnspread ? share : 0;
}

std::string summary_line(const Totals& t, uint64_t tx_dropped) {
  const uint64_t rx = t.packets(Direction::kOutside), passed = t.passed(Direction::kOutside);
  std::string s = "outside rx " + std::to_string(rx) + " pass " + std::to_string(passed) + " drop " + std::to_string(rx - passed);
  std::string reasons;
  for (int v = 1; v < kVerdictCount; ++v)
    if (uint64_t d = t.drops(static_cast<Verdict>(v)))
      reasons += (reasons.empty() ? "" : ", ") + std::string(verdict_name(static_cast<Verdict>(v))) + " " + std::to_string(d);
  if (!reasons.empty()) s += " (" + reasons + ")";
  s += " | inside rx " + std::to_string(t.packets(Direction::kInside)) + " | tx dropped " + std::to_string(tx_dropped);
  // Live sessions recycled for room: the cluster's own connections losing their state.
  if (t.c.sessions_evicted) s += " | sessions evicted " + std::to_string(t.c.sessions_evicted) + " (raise limits.sessions)";
  return s;
}

}  // namespace stakegate
