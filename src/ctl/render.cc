#include "render.h"

#include <cstdio>
#include <string>
#include <vector>

#include "stakegate/base/verdict.h"
#include "stakegate/report/text.h"

namespace stakegate::ctl {
namespace {

using Rows = std::vector<std::vector<std::string>>;

void print_table(const Rows& rows) {
  std::vector<size_t> w;
  for (const auto& r : rows)
    for (size_t i = 0; i < r.size(); ++i) {
      if (w.size() <= i) w.push_back(0);
      w[i] = std::max(w[i], r[i].size());
    }
  for (const auto& r : rows) {
    std::string line;
    for (size_t i = 0; i < r.size(); ++i) {
      std::string cell = r[i];
      cell.resize(w[i], ' ');
      line += (i ? "  " : "") + cell;
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    std::printf("%s\n", line.c_str());
  }
}

std::string num(uint64_t v) { return std::to_string(v); }
std::string dec(double v, int decimals) {
  char b[64];
  std::snprintf(b, sizeof b, "%.*f", decimals, v);
  return b;
}
std::string g(double v) {
  char b[64];
  std::snprintf(b, sizeof b, "%g", v);
  return b;
}
template <typename Seq>
std::string join(const Seq& s) {
  std::string out;
  for (const auto& x : s) out.append(out.empty() ? "" : ",").append(x);
  return out;
}

// Every drop reason, in the verdict order of docs/architecture.md: a new verdict shows here
// without anyone having to remember this file.
std::vector<std::string> drop_reasons() {
  std::vector<std::string> out;
  for (int v = 1; v < kVerdictCount; ++v) out.emplace_back(verdict_name(static_cast<Verdict>(v)));
  return out;
}
const std::vector<std::string> kDropReasons = drop_reasons();

// A node's counters: its verified connections (passed, over_rate), then what its address
// sent off them (the request channel, replies on the cluster's sessions, refusals).
const std::vector<std::string> kNodeCounterNames = {"passed",         "over_rate",         "request_passed",
                                                    "request_over_rate", "session_passed", "session_over_rate",
                                                    "port_denied",    "blocklisted",       "ejected"};

std::vector<std::string> counter_cells(const pb::NodeCounters& c) {
  return {num(c.passed()),         num(c.over_rate()),         num(c.request_passed()),
          num(c.request_over_rate()), num(c.session_passed()), num(c.session_over_rate()),
          num(c.port_denied()),    num(c.blocklisted()),       num(c.ejected())};
}

}  // namespace

void print(const pb::StatusResponse& r) {
  std::printf("stakegate %s, up %.0f s, config %s\n", r.version().c_str(), r.uptime_s(), r.config_file().c_str());
  std::printf("identity: generation %llu, %u nodes in %u sources (capacity %u), from %s\n",
              static_cast<unsigned long long>(r.identity_generation()), r.nodes(), r.sources(), r.source_capacity(),
              r.identity_source().c_str());
  std::printf("outside: %llu packets, %llu passed; inside: %llu packets; blocklist: %u entries\n",
              static_cast<unsigned long long>(r.outside_packets()), static_cast<unsigned long long>(r.outside_passed()),
              static_cast<unsigned long long>(r.inside_packets()), r.blocklist_entries());
  for (int w = 0; w < r.worker_load_size(); ++w)
    std::printf("worker %d: busy %.0f %%, %.0f cycles/packet over the last second; %llu outside packets\n", w,
                100.0 * r.worker_load(w).busy_ratio(), r.worker_load(w).cycles_per_packet(),
                static_cast<unsigned long long>(r.worker_load(w).outside_packets()));
  for (const auto& p : r.ports()) {
    const std::string link = link_text(p.link_up(), p.speed_mbps(), p.full_duplex());
    std::printf("port %s: link %s%s; %llu link changes since start\n", p.name().c_str(), link.c_str(),
                p.link_up() ? "" : " (ATTENTION: nothing passes on it)", static_cast<unsigned long long>(p.link_changes()));
  }
  if (r.monitor())
    std::printf("mode: MONITOR: every packet is decided and counted, and forwarded whatever its verdict; %llu "
                "forwarded that enforcing would have dropped (mode: enforce in the config, then reload)\n",
                static_cast<unsigned long long>(r.monitor_forwarded()));
  const auto& s = r.sessions();
  std::printf("sessions: %llu opened or accepted, %llu verified, %llu evicted for room (%llu entries per worker)%s\n",
              static_cast<unsigned long long>(s.created()), static_cast<unsigned long long>(s.verified()),
              static_cast<unsigned long long>(s.evicted()), static_cast<unsigned long long>(s.table_entries()),
              s.evicted() ? ": raise limits.sessions" : "");
  // What points at a misconfiguration or an attack: said only when it happened.
  const auto& d = r.diagnostics();
  auto attention = [](uint64_t n, const char* what) {
    if (n) std::printf("attention: %llu %s\n", static_cast<unsigned long long>(n), what);
  };
  attention(d.spoofed_internal(), "packets from the outside went from one cluster address to another (forged, or the "
                                  "router routes between the nodes: docs/deployment.md)");
  attention(d.neighbour_impostors(), "ARP/ND frames claimed the router's listed address from another MAC (an "
                                     "impostor on the outside link, or a MAC missing from infra.neighbours)");
  attention(d.inside_foreign(), "packets from the inside had a source outside cluster.prefixes: they open no session "
                                "(the log names the address; add it to cluster.prefixes)");
  attention(d.routing_over_rate(), "routing protocol packets of the router (infra.routing) were dropped over "
                                   "infra.routing_pps: its BGP or BFD with the nodes may fail; raise it");
  if (d.unspread_share() > 0)
    std::printf("attention: one worker received %.0f %% of the outside packets, but each of the %u enforces rate / %u "
                "(dataplane.rss: false): if the NIC does not spread the traffic over its queues, every node gets "
                "1/%u of its rate; run one worker (docs/deployment.md)\n",
                100.0 * d.unspread_share(), r.rate_split_workers(), r.rate_split_workers(), r.rate_split_workers());
  Rows rows{{"reason", "dropped"}};
  for (const auto& reason : kDropReasons) {
    auto it = r.drops_by_reason().find(reason);
    rows.push_back({reason, num(it == r.drops_by_reason().end() ? 0 : it->second)});
  }
  print_table(rows);
}

void print(const pb::TopResponse& r) {
  if (r.monitor())
    std::printf("MONITOR MODE: nothing is dropped; the drops below are what enforcing would drop (all forwarded)\n");
  Rows rows{{"role", "passed"}};
  rows[0].insert(rows[0].end(), kDropReasons.begin(), kDropReasons.end());
  for (const auto& role : r.roles()) {
    std::vector<std::string> row{role.role(), num(role.passed())};
    for (const auto& reason : kDropReasons) {
      auto it = role.dropped().find(reason);
      row.push_back(num(it == role.dropped().end() ? 0 : it->second));
    }
    rows.push_back(row);
  }
  print_table(rows);
  if (r.nodes().empty()) return;
  std::printf("\n");
  Rows top{{"node_id", "role", "address", "dropped"}};
  top[0].insert(top[0].end(), kNodeCounterNames.begin(), kNodeCounterNames.end());
  for (const auto& n : r.nodes()) {
    std::vector<std::string> row{n.node_id(), n.role(), n.address(), num(n.dropped())};
    for (auto& c : counter_cells(n.counters())) row.push_back(c);
    top.push_back(row);
  }
  print_table(top);
}

void print(const pb::GetIdentitiesResponse& r) {
  std::printf("generation %llu, from %s\n", static_cast<unsigned long long>(r.generation()), r.source().c_str());
  Rows rows{{"node_id", "role", "address", "ips", "weight", "status"}};
  for (const auto& n : r.nodes()) rows.push_back({n.node_id(), n.role(), n.address(), join(n.ips()), g(n.weight()), n.status()});
  print_table(rows);
}

void print(const pb::ListBlocklistResponse& r) {
  Rows rows{{"what", "origin", "by", "expires_at", "reason"}};
  for (const auto& e : r.entries())
    rows.push_back({e.cidr().empty() ? e.node_id() : e.cidr(), e.origin(), e.created_by().empty() ? "-" : e.created_by(),
                    e.expires_at_unix() ? std::to_string(e.expires_at_unix()) : "never", e.reason()});
  print_table(rows);
}

void print(const pb::GetRoleQosResponse& r) {
  Rows rows{{"role", "share", "role_pps", "min_pps", "burst_ms", "nodes", "ports"}};
  for (const auto& q : r.roles()) {
    std::vector<std::string> ports;
    for (uint32_t p : q.ports()) ports.push_back(std::to_string(p));
    rows.push_back({q.role(), g(q.share()), g(q.role_pps()), g(q.min_pps()), num(q.burst_ms()), num(q.nodes()),
                    ports.empty() ? "any" : join(ports)});
  }
  print_table(rows);
}

void print(const pb::GetNodeResponse& r) {
  const pb::Node& n = r.node();
  std::printf("node %s (%s) at %s, status %s%s\n", n.node_id().c_str(), n.role().c_str(), n.address().c_str(),
              n.status().c_str(), r.blocklisted() ? ", BLOCKLISTED" : "");
  std::printf("rate %.1f pps, burst %.1f packets, weight %s\n", r.rate_pps(), r.burst(), g(n.weight()).c_str());
  print_table({kNodeCounterNames, counter_cells(r.counters())});
  std::printf("score %.2f%s\n", r.score(), r.graylisted() ? ", GRAYLISTED" : "");
}

void print(const pb::ListNodesResponse& r) {
  // Verified connections, then the request channel: a node whose connections never verify
  // (both directions not through the gateway) shows only there.
  Rows rows{{"node_id", "role", "address", "rate_pps", "score", "graylisted", "passed", "over_rate", "request_passed",
             "request_over_rate"}};
  for (const auto& n : r.nodes())
    rows.push_back({n.node_id(), n.role(), n.address(), dec(n.rate_pps(), 1), dec(n.score(), 2),
                    n.graylisted() ? "yes" : "no", num(n.counters().passed()), num(n.counters().over_rate()),
                    num(n.counters().request_passed()), num(n.counters().request_over_rate())});
  print_table(rows);
  std::printf("%u graylisted now; %llu entries and %llu exits since start\n", r.graylisted(),
              static_cast<unsigned long long>(r.graylist_entries()), static_cast<unsigned long long>(r.graylist_exits()));
}

void print(const pb::ListEvidenceResponse& r) {
  Rows rows{{"case", "reason", "state", "samples", "node_id", "error"}};
  for (const auto& c : r.cases())
    rows.push_back({c.id(), c.reason(), c.open() ? "open" : "written", num(c.samples()), c.node_id(), c.error()});
  print_table(rows);
  std::printf("%llu cases opened, %llu errors; bundles under %s\n", static_cast<unsigned long long>(r.opened()),
              static_cast<unsigned long long>(r.errors()), r.dir().c_str());
}

void print(const pb::EvidenceCase& r) {
  std::printf("evidence case %s opened for %s: %s (written when its window ends)\n", r.id().c_str(), r.node_id().c_str(),
              r.dir().c_str());
  if (!r.error().empty()) std::printf("error: %s\n", r.error().c_str());
}

void print_change(uint64_t generation, const google::protobuf::RepeatedPtrField<std::string>& warnings) {
  std::printf("ok: generation %llu\n", static_cast<unsigned long long>(generation));
  for (const auto& w : warnings) std::printf("warning: %s\n", w.c_str());
}

}  // namespace stakegate::ctl
