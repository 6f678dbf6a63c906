#include "stakegate/policy/stake_plan.h"

#include <algorithm>
#include <map>
#include <numeric>
#include <set>

#include "stakegate/policy/cidr_matcher.h"

namespace stakegate {

StakePlan make_stake_plan(const Config& cfg, const std::vector<NodeIdentity>& nodes) {
  StakePlan plan;
  for (int r = 0; r < kRoleCount; ++r) {
    const RoleQos& q = cfg.roles[r];
    plan.roles[r].share = q.share;
    plan.roles[r].pps = q.share * cfg.capacity_pps;
    plan.roles[r].bps = q.share * cfg.capacity_bps;
  }
  for (const auto& n : nodes) {
    int r = static_cast<int>(n.role);
    if (!cfg.roles[r].configured)
      throw ConfigError(cfg.file, "roles." + std::string(role_name(n.role)),
                        "missing, but node " + n.node_id + " has this role");
    plan.roles[r].nodes++;
    if (n.ejected) plan.roles[r].ejected++;
    else plan.roles[r].total_weight += n.weight;
  }

  plan.nodes.resize(nodes.size());
  for (size_t i = 0; i < nodes.size(); ++i) {
    const NodeIdentity& n = nodes[i];
    const RoleQos& q = cfg.roles[static_cast<int>(n.role)];
    const RolePlan& rp = plan.roles[static_cast<int>(n.role)];
    NodePlan& np = plan.nodes[i];
    if (n.ejected) continue;  // an ejected node gets no rate; its packets drop as `ejected`
    double frac = rp.total_weight > 0 ? n.weight / rp.total_weight : 0;
    np.rate_pps = std::max(q.min_pps, rp.pps * frac);
    if (cfg.capacity_bps > 0) np.rate_bps = std::max(q.min_pps * kFullFrameBytes * 8, rp.bps * frac);
    np.burst_pkts = np.rate_pps * q.burst_ms / 1000.0;
  }

  // Group nodes that share a source address (union-find), so each group is one bucket.
  std::vector<size_t> parent(nodes.size());
  std::iota(parent.begin(), parent.end(), 0);
  auto find = [&](size_t x) {
    while (parent[x] != x) x = parent[x] = parent[parent[x]];
    return x;
  };
  std::map<IpAddr, size_t> owner;
  for (size_t i = 0; i < nodes.size(); ++i)
    for (const IpAddr& ip : nodes[i].ips)
      if (auto [it, fresh] = owner.emplace(ip, i); !fresh) parent[find(i)] = find(it->second);

  std::map<size_t, uint32_t> group_source;
  for (size_t i = 0; i < nodes.size(); ++i) {
    auto [it, fresh] = group_source.emplace(find(i), static_cast<uint32_t>(plan.sources.size()));
    if (fresh) {
      plan.sources.emplace_back();
      plan.sources.back().slot = it->second;
    }
    plan.nodes[i].source = it->second;
    plan.sources[it->second].nodes.push_back(i);
  }

  // The blocklist, indexed: a source is blocked by one of its NodeIDs or addresses.
  std::set<std::string> blocked_ids;
  CidrMatcher blocked_ranges;
  for (const auto& b : cfg.blocklist) {
    if (!b.node_id.empty()) blocked_ids.insert(b.node_id);
    if (b.cidr) blocked_ranges.add(*b.cidr);
  }
  const std::set<std::string> sampled_ids(cfg.evidence_nodes.begin(), cfg.evidence_nodes.end());

  for (SourcePlan& s : plan.sources) {
    double fastest = -1;
    s.ejected = true;
    std::vector<uint16_t> ports;
    for (size_t i : s.nodes) {
      const NodeIdentity& n = nodes[i];
      const NodePlan& np = plan.nodes[i];
      const RoleQos& q = cfg.roles[static_cast<int>(n.role)];
      for (const IpAddr& ip : n.ips)
        if (std::find(s.addrs.begin(), s.addrs.end(), ip) == s.addrs.end()) s.addrs.push_back(ip);
      if (blocked_ids.count(n.node_id)) s.blocked = true;
      if (sampled_ids.count(n.node_id)) s.sampled = true;
      if (n.ejected) continue;
      s.ejected = false;
      s.rate_pps += np.rate_pps;
      s.rate_bps += np.rate_bps;
      s.burst_pkts += np.burst_pkts;
      s.burst_bytes += np.rate_bps / 8 * q.burst_ms / 1000.0;
      if (q.ports.empty()) s.all_ports = true;
      ports.insert(ports.end(), q.ports.begin(), q.ports.end());
      if (np.rate_pps > fastest) { fastest = np.rate_pps; s.role = n.role; }
      const RequestChannelConfig& rc = cfg.request_channel;
      const double request = std::max(rc.min_pps, rc.fraction * np.rate_pps);
      s.request_pps += request;
      s.request_burst += request * rc.burst_ms / 1000.0;
    }
    if (s.ejected) s.role = nodes[s.nodes.front()].role;
    std::sort(s.addrs.begin(), s.addrs.end());
    std::sort(ports.begin(), ports.end());
    ports.erase(std::unique(ports.begin(), ports.end()), ports.end());
    if (!s.all_ports) s.ports = std::move(ports);
    for (const IpAddr& ip : s.addrs)
      if (blocked_ranges.match(ip)) s.blocked = true;
  }

  const UnregisteredQos& u = cfg.unregistered;
  UnregisteredPlan& up = plan.unregistered;
  up.pool_pps = u.share * cfg.capacity_pps;
  up.pool_bps = u.share * cfg.capacity_bps;
  up.pool_burst = up.pool_pps * u.burst_ms / 1000.0;
  up.pool_burst_bytes = up.pool_bps / 8 * u.burst_ms / 1000.0;
  up.per_source_pps = u.per_source_pps;
  up.per_source_burst = u.per_source_pps * u.burst_ms / 1000.0;
  const SessionConfig& sc = cfg.sessions;
  plan.sessions = {sc.share * cfg.capacity_pps, sc.share * cfg.capacity_bps, sc.share * cfg.capacity_pps * sc.burst_ms / 1000.0,
                   sc.share * cfg.capacity_bps / 8 * sc.burst_ms / 1000.0};
  plan.infra = {cfg.infra.pps, 0, cfg.infra.pps * cfg.infra.burst_ms / 1000.0, 0};
  const double errors = cfg.infra.icmp_errors_pps.value_or(cfg.infra.pps);
  plan.icmp_errors = {errors, 0, errors * cfg.infra.burst_ms / 1000.0, 0};
  plan.routing = {cfg.infra.routing_pps, 0, cfg.infra.routing_pps * cfg.infra.burst_ms / 1000.0, 0};
  return plan;
}

}  // namespace stakegate
