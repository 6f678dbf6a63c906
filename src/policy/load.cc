#include "stakegate/policy/load.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "stakegate/base/files.h"
#include "stakegate/identity/flow_import.h"
#include "stakegate/identity/resolve.h"
#include "stakegate/identity/table.h"

namespace stakegate {

std::string identity_source(const Config& cfg) {
  return cfg.identity.path.empty() ? cfg.file + " (identity.nodes)" : cfg.identity.path;
}

std::vector<NodeIdentity> load_identities(const Config& cfg, std::vector<std::string>* warnings) {
  std::vector<NodeIdentity> nodes;
  std::string source = cfg.file;
  switch (cfg.identity.kind) {
    case IdentityConfig::Kind::kNodeInfos:
      source = cfg.identity.path;
      nodes = parse_flow_node_infos(read_text_file(source, cfg.file, "identity.flow_node_infos"), source);
      break;
    case IdentityConfig::Kind::kSnapshot:
      source = cfg.identity.path;
      nodes = parse_flow_snapshot(read_text_file(source, cfg.file, "identity.flow_snapshot"), source);
      break;
    case IdentityConfig::Kind::kInline:
      nodes = cfg.identity.inline_nodes;
      break;
  }
  check_identity_table(nodes, source);
  if (!cfg.identity.stake_file.empty()) {
    const std::string& sf = cfg.identity.stake_file;
    apply_stakes(nodes, parse_stake_file(read_text_file(sf, cfg.file, "identity.stake_file"), sf), sf, warnings);
  }
  NameCache& names = NameCache::process();
  if (std::string w = names.use_state_dir(cfg.state_dir); !w.empty() && warnings) warnings->push_back(w);
  resolve_identities(nodes, cfg.identity.hosts, cfg.identity.dns, source, warnings);
  return nodes;
}

std::string block_in_cluster(const Config& c, const BlockEntry& b) {
  if (!b.cidr) return {};
  for (const Cidr& p : c.cluster.prefixes)
    if (p.covers(*b.cidr))
      return b.cidr->to_string() + " lies inside cluster.prefixes (" + p.to_string() +
             "): from the outside those sources are already dropped as spoofed, and the blocklist does not apply to "
             "the cluster's own traffic, so the block changes nothing";
  return {};
}

namespace {
std::string join_ports(const std::vector<uint16_t>& ports) {
  if (ports.empty()) return "any";
  std::string s;
  for (uint16_t x : ports) s.append(s.empty() ? "" : ",").append(std::to_string(x));
  return s;
}

// Public ports listed, and a budget that lets nothing through them: accepted (closing the
// public API for a while is a choice), but said, since it looks like an open port.
std::string unregistered_closed(const UnregisteredQos& u) {
  if (u.ports.empty() && !u.icmp_echo) return {};
  std::string why;
  if (u.share <= 0) why = "unregistered.share is 0";
  if (u.per_source_pps <= 0) why += std::string(why.empty() ? "" : " and ") + "unregistered.per_source_pps is 0";
  if (why.empty()) return {};
  const std::string open = u.ports.empty() ? "unregistered.icmp_echo is on"
                                           : "unregistered.ports lists " + join_ports(u.ports) + " (the public API)";
  return why + ": no unregistered packet can pass, though " + open +
         "; set unregistered.share (e.g. 0.05) and per_source_pps (e.g. 50), or " +
         (u.ports.empty() ? "turn icmp_echo off" : "remove the ports") + " (docs/configuration.md)";
}

// Budgets the cluster's own reachability rests on, set to nothing: accepted (an operator may
// mean it for a while) but said, since the gateway is inline and these cut the cluster off.
void starved_budgets(const Config& c, std::vector<std::string>& out) {
  const std::string f = c.file + ": ";
  if (c.infra.pps <= 0)
    out.push_back(f + "infra.pps is 0: ARP, neighbour discovery, MLD and IGMP from the outside are all dropped (but "
                      "answers to the cluster's own requests), so the router cannot resolve the cluster's addresses "
                      "and the cluster becomes unreachable once the router's neighbour entries expire");
  if (c.infra.icmp_errors_pps.value_or(c.infra.pps) <= 0)
    out.push_back(f + "infra.icmp_errors_pps is 0: ICMP errors on the cluster's connections (fragmentation needed, "
                      "packet too big, unreachable) are all dropped, which breaks path MTU discovery: connections "
                      "across a link with a smaller MTU stall");
  if (c.sessions.share_set && c.sessions.share <= 0)
    out.push_back(f + "sessions.share is 0: replies from unregistered senders on sessions the cluster opened (its "
                      "DNS resolvers, NTP and HTTPS servers) are all dropped");
  if (c.request_channel.fraction <= 0 && c.request_channel.min_pps <= 0)
    out.push_back(f + "request_channel.fraction and request_channel.min_pps are 0: staked nodes' packets off a "
                      "verified connection, their SYNs among them, are all dropped, so no peer can open a connection "
                      "to the cluster");
}

// What a config accepts but an operator should hear about.
void config_warnings(const Config& c, std::vector<std::string>& out) {
  if (c.monitor)
    out.push_back(c.file + ": mode: monitor: every packet is decided and counted, and forwarded whatever its verdict; "
                           "nothing protects the cluster until mode is enforce (stakegate_monitor_forwarded_total "
                           "counts what enforcing would have dropped; docs/operations.md)");
  starved_budgets(c, out);
  if (c.cluster.prefixes.empty())
    out.push_back(c.file + ": cluster.prefixes is not set: every inside source opens sessions and no outside source is "
                            "judged spoofed by its address (docs/configuration.md)");
  if (std::string w = sessions_share_warning(c); !w.empty()) out.push_back(c.file + ": " + w);
  if (std::string w = unregistered_closed(c.unregistered); !w.empty()) out.push_back(c.file + ": " + w);
  if (c.state_dir.empty())
    out.push_back(c.file + ": state_dir is not set: blocks made through the API are lost on a restart "
                           "(docs/configuration.md)");
  if (c.infra.neighbours.empty())
    out.push_back(c.file + ": infra.neighbours is not set: the upstream router's ARP and neighbour solicitations for the "
                           "cluster share the infra budget with every other host of the outside link, so a flood there can "
                           "keep the router from reaching the nodes; list its MAC (docs/deployment.md)");
  if (!c.control.tcp.empty() && !c.control.tls.on())
    out.push_back(c.file + ": control.tcp has no TLS: its bearer token travels in clear (control.tls)");
  for (size_t i = 0; i < c.blocklist.size(); ++i)
    if (std::string w = block_in_cluster(c, c.blocklist[i]); !w.empty())
      out.push_back(c.file + ": blocklist[" + std::to_string(i) + "].cidr: " + w);
  const ScoringConfig& s = c.scoring;
  if (s.penalty_port_denied > 0 || s.penalty_blocklisted > 0 || s.penalty_ejected > 0)
    out.push_back(c.file + ": scoring.penalties for port_denied, blocklisted and ejected have no effect: those drops "
                            "are never on a verified connection, so they cannot be attributed (docs/operations.md)");
}

// A node with an address inside cluster.prefixes: one of the cluster's own (its packets
// from the outside are forged, and dropped as spoofed).
bool in_cluster(const Config& c, const NodeIdentity& n) {
  return std::any_of(n.ips.begin(), n.ips.end(), [&](const IpAddr& ip) {
    return std::any_of(c.cluster.prefixes.begin(), c.cluster.prefixes.end(), [&](const Cidr& p) { return p.contains(ip); });
  });
}

size_t nodes_in_cluster(const Config& c, const std::vector<NodeIdentity>& nodes) {
  return std::count_if(nodes.begin(), nodes.end(), [&](const NodeIdentity& n) { return in_cluster(c, n); });
}
}  // namespace

std::string table_in_cluster(const Config& c, const std::vector<NodeIdentity>& nodes, const std::string& source) {
  const size_t inside = nodes_in_cluster(c, nodes);
  if (inside <= 1 || 2 * inside <= nodes.size()) return {};
  return source + ": " + std::to_string(inside) + " of the " + std::to_string(nodes.size()) +
         " nodes of the identity table have addresses inside cluster.prefixes, so their packets from the outside are "
         "dropped as spoofed: cluster.prefixes should list only the addresses behind the gateway";
}

std::string cluster_ports_closed(const Config& c, const std::vector<NodeIdentity>& nodes, const std::string& source) {
  std::ostringstream text;
  size_t closed = 0;
  for (const NodeIdentity& n : nodes) {
    if (n.port == 0 || !in_cluster(c, n)) continue;
    std::string roles;
    for (int r = 0; r < kRoleCount; ++r) {
      const RoleQos& q = c.roles[r];
      if (!q.configured || q.ports.empty() || std::find(q.ports.begin(), q.ports.end(), n.port) != q.ports.end()) continue;
      roles += (roles.empty() ? "" : ", ") + std::string(role_name(static_cast<Role>(r)));
    }
    if (roles.empty()) continue;
    if (++closed <= 3)
      text << (closed > 1 ? "; " : "") << "node " << n.node_id.substr(0, 8) << " (" << role_name(n.role) << ", "
           << n.address << ") takes its peers' connections on port " << n.port << ", which the ports of " << roles
           << " do not allow";
  }
  if (closed == 0) return {};
  std::string out = source + ": " + text.str();
  if (closed > 3) out += "; and " + std::to_string(closed - 3) + " more such nodes";
  return out + ": staked peers of those roles opening a connection to it are dropped as port_denied (add the port to "
               "the roles' ports)";
}

namespace {
// Up to three names, then ", ...": for warnings that name a few nodes of many.
struct FirstNames {
  size_t count = 0;
  std::string text;
  void add(const std::string& name) {
    if (++count <= 3) text += (count > 1 ? ", " : "") + name;
  }
  std::string str() const { return text + (count > 3 ? ", ..." : ""); }
};
}  // namespace

std::string cluster_api_closed(const Config& c, const std::vector<NodeIdentity>& nodes, const std::string& source) {
  if (!c.unregistered.ports.empty()) return {};
  FirstNames serving;
  for (const NodeIdentity& n : nodes)
    if (n.role == Role::kAccess && !n.ejected && in_cluster(c, n))
      serving.add(n.node_id.substr(0, 8) + " (" + n.address + ")");
  if (serving.count == 0) return {};
  const bool many = serving.count > 1;
  return source + ": the cluster's own access node" + (many ? "s " : " ") + serving.str() + " serve" + (many ? "" : "s") +
         " the public Access API, but unregistered.ports is empty: no client without stake reaches " +
         (many ? "them" : "it") + " (list the public ports there: gRPC 9000, secure gRPC 9001, HTTP 8000)";
}

void cluster_warnings(const Config& c, const std::vector<NodeIdentity>& nodes, const std::string& source,
                      std::vector<std::string>& warnings) {
  for (std::string w : {table_in_cluster(c, nodes, source), cluster_ports_closed(c, nodes, source),
                        cluster_api_closed(c, nodes, source)})
    if (!w.empty()) warnings.push_back(std::move(w));
}

std::string silenced_nodes(const std::vector<NodeIdentity>& nodes, const StakePlan& plan, const std::string& source) {
  FirstNames silenced;
  for (size_t i = 0; i < nodes.size() && i < plan.nodes.size(); ++i)
    if (!nodes[i].ejected && plan.nodes[i].rate_pps <= 0)
      silenced.add(nodes[i].node_id.substr(0, 8) + " (" + std::string(role_name(nodes[i].role)) + ")");
  if (silenced.count == 0) return {};
  std::ostringstream text;
  text << source << ": " << silenced.count << " staked node" << (silenced.count > 1 ? "s get" : " gets")
       << " a rate of 0 pps (" << silenced.str()
       << "): their role's share is 0, or their weight is, and the role's min_pps is 0, so every packet of theirs "
          "but a few connection requests is dropped as over_rate; give the role a share or a min_pps";
  return text.str();
}

LoadedPolicy load_policy(const std::string& config_path) {
  LoadedPolicy p;
  p.cfg = load_config(config_path);
  config_warnings(p.cfg, p.warnings);
  p.nodes = load_identities(p.cfg, &p.warnings);
  cluster_warnings(p.cfg, p.nodes, p.cfg.file, p.warnings);
  p.plan = make_stake_plan(p.cfg, p.nodes);
  if (std::string w = silenced_nodes(p.nodes, p.plan, p.cfg.file); !w.empty()) p.warnings.push_back(w);
  return p;
}

std::string describe_plan(const LoadedPolicy& p) {
  const Config& c = p.cfg;
  std::ostringstream o;
  char line[512];
  if (c.monitor) o << "mode: monitor (verdicts counted, nothing dropped)\n";
  o << "capacity: " << c.capacity_pps << " pps";
  if (c.capacity_bps > 0) o << ", " << c.capacity_bps << " bps";
  o << "\n\n";
  std::snprintf(line, sizeof line, "%-13s %6s %12s %6s %8s %12s %8s  %s\n", "role", "share", "pps", "nodes",
                "ejected", "weight", "min_pps", "ports");
  o << line;
  for (int r = 0; r < kRoleCount; ++r) {
    const RolePlan& rp = p.plan.roles[r];
    if (!c.roles[r].configured) continue;
    std::snprintf(line, sizeof line, "%-13s %6.3f %12.0f %6zu %8zu %12.0f %8.0f  %s\n",
                  std::string(role_name(static_cast<Role>(r))).c_str(), rp.share, rp.pps, rp.nodes, rp.ejected,
                  rp.total_weight, c.roles[r].min_pps, join_ports(c.roles[r].ports).c_str());
    o << line;
  }
  const UnregisteredPlan& u = p.plan.unregistered;
  std::snprintf(line, sizeof line,
                "%-13s %6.3f %12.0f  per source %.0f pps (burst %.0f; a new source 1 until its TCP handshake), "
                "table %u sources/worker, ports %s%s\n",
                "unregistered", c.unregistered.share, u.pool_pps, u.per_source_pps,
                std::max(1.0, std::round(u.per_source_burst)), c.unregistered.table_size,
                c.unregistered.ports.empty() ? "none" : join_ports(c.unregistered.ports).c_str(),
                c.unregistered.icmp_echo ? " and ICMP echo requests" : "");
  o << line;
  if (u.pool_pps > 0 && u.per_source_pps > 0) {
    const double burst = std::max(1.0, std::round(u.pool_burst));
    const double source_burst = std::max(1.0, std::round(u.per_source_burst));
    std::snprintf(line, sizeof line,
                  "%-13s %6s %12s  pool burst %.0f; reserves only clients' verified TCP connections take: %.0f in the "
                  "pool, %g per source\n",
                  "", "", "", burst, std::max(1.0, std::round(burst / 2)), std::max(1.0, source_burst / 2));
    o << line;
  }
  std::snprintf(line, sizeof line, "%-13s %6.3f %12.0f  replies of unregistered senders on sessions the cluster opened\n",
                "sessions", c.sessions.share, p.plan.sessions.pps);
  o << line;
  std::snprintf(line, sizeof line, "%-13s %6s %12.0f  ARP, neighbour discovery%s; answers to the cluster's own requests pass beyond it\n",
                "infra", "-", p.plan.infra.pps, c.infra.ethertypes.empty() ? "" : ", listed EtherTypes");
  o << line;
  if (!c.infra.neighbours.empty()) {
    auto mac_text = [](const std::array<uint8_t, 6>& mac) {
      char text[18];
      std::snprintf(text, sizeof text, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
      return std::string(text);
    };
    std::string macs, guarded;
    for (const auto& mac : c.infra.neighbours) macs += (macs.empty() ? "" : ", ") + mac_text(mac);
    for (const auto& a : c.infra.neighbour_addresses)
      guarded += (guarded.empty() ? "" : ", ") + a.address.to_string() + " at " + mac_text(a.mac);
    o << "  neighbours with a budget of their own (as large): " << macs
      << (c.infra.ra_guard ? "; RA guard on: router advertisements and redirects only from them" : "") << "\n";
    if (!guarded.empty())
      o << "  ARP and neighbour discovery about these addresses pass only from their MACs (else spoofed): " << guarded << "\n";
  }
  if (c.infra.routing) {
    std::string names;
    for (const auto& rp : kRoutingProtocols)
      if (c.infra.routing & rp.bit) names += (names.empty() ? "" : ", ") + std::string(rp.name);
    std::snprintf(line, sizeof line, "%-13s %6s %12.0f  per neighbour: %s from its MAC and listed addresses, sent on the link "
                  "(TTL/hop limit 255, or to a link-local group)\n", "routing", "-", p.plan.routing.pps, names.c_str());
    o << line;
  }
  std::snprintf(line, sizeof line, "%-13s %6s %12.0f  ICMP errors quoting a live session (path MTU discovery)\n", "icmp_errors",
                "-", p.plan.icmp_errors.pps);
  o << line;
  o << "request channel: " << c.request_channel.fraction << " x each node's rate (at least " << c.request_channel.min_pps
    << " pps): its traffic off verified connections; as much again for such packets that arrive with the hop"
       " limit of its verified ones\n";
  std::string prefixes;
  for (const Cidr& cidr : c.cluster.prefixes) prefixes += (prefixes.empty() ? "" : ", ") + cidr.to_string();
  const size_t inside = nodes_in_cluster(c, p.nodes);
  o << "cluster: " << (prefixes.empty() ? "(cluster.prefixes not set: every inside source opens sessions, no source is judged spoofed)" : prefixes);
  if (inside > 0) o << " (" << inside << " nodes of the table inside: the cluster's own, spoofed if they come from the outside)";
  o << "; sessions: " << c.limits_sessions << " per worker, timeouts tcp " << c.sessions.tcp_established_s << " s (syn "
    << c.sessions.tcp_syn_s << ", closing " << c.sessions.tcp_closing_s << ", closed " << c.sessions.tcp_closed_s << "), udp "
    << c.sessions.udp_s << " s, icmp " << c.sessions.icmp_s << " s\n";
  o << "blocklist: " << c.blocklist.size() << " entries\n";
  const ScoringConfig& sc = c.scoring;
  if (sc.enabled)
    o << "scoring: graylisted below " << sc.graylist << " (rates x " << sc.penalty_factor << ") until above " << sc.recover
      << ", half-life " << sc.half_life_s << " s, floor " << sc.floor << "; penalties over_rate " << sc.penalty_over_rate
      << "/s of rate, port_denied " << sc.penalty_port_denied << ", blocklisted " << sc.penalty_blocklisted << ", ejected "
      << sc.penalty_ejected << "\n";
  else
    o << "scoring: off\n";
  o << "evidence: " << c.evidence.dir << (c.evidence.on_graylist ? " (on graylisting" : " (on request only")
    << ", " << c.evidence.window_s << " s windows, " << c.evidence.max_samples << " samples, keep " << c.evidence.retention_cases
    << " cases / " << (c.evidence.retention_bytes >> 20) << " MB)\n\n";

  std::snprintf(line, sizeof line, "%-64s %-12s %-40s %-16s %10s %10s %8s  %s\n", "node_id", "role", "address", "ip",
                "weight", "rate_pps", "burst", "status");
  o << line;
  for (size_t i = 0; i < p.nodes.size(); ++i) {
    const NodeIdentity& n = p.nodes[i];
    const NodePlan& np = p.plan.nodes[i];
    const SourcePlan& sp = p.plan.sources[np.source];
    std::string ips;
    for (const auto& ip : n.ips) ips.append(ips.empty() ? "" : ",").append(ip.to_string());
    std::string status = n.status;
    if (sp.blocked) status += ",blocklisted";
    if (sp.nodes.size() > 1) status += ",shares-address(" + std::to_string(sp.nodes.size()) + " nodes)";
    if (in_cluster(c, n)) status += ",in-cluster";
    std::snprintf(line, sizeof line, "%-64s %-12s %-40s %-16s %10.0f %10.1f %8.1f  %s\n", n.node_id.c_str(),
                  std::string(role_name(n.role)).c_str(), n.address.c_str(), ips.c_str(), n.weight, np.rate_pps,
                  np.burst_pkts, status.c_str());
    o << line;
  }
  for (const auto& w : p.warnings) o << "warning: " << w << "\n";
  return o.str();
}

}  // namespace stakegate
