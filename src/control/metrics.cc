#include "stakegate/control/metrics.h"

#include <prometheus/metric_family.h>
#include <prometheus/text_serializer.h>

namespace stakegate {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

MetricFamily family(const char* name, const char* help, MetricType type) {
  MetricFamily f;
  f.name = name;
  f.help = help;
  f.type = type;
  return f;
}

void add(MetricFamily& f, std::vector<ClientMetric::Label> labels, double v) {
  ClientMetric m;
  m.label = std::move(labels);
  if (f.type == MetricType::Counter) m.counter.value = v;
  else m.gauge.value = v;
  f.metric.push_back(std::move(m));
}

// A family of one unlabelled series.
void single(std::vector<MetricFamily>& out, const char* name, const char* help, MetricType type, double v) {
  MetricFamily f = family(name, help, type);
  add(f, {}, v);
  out.push_back(std::move(f));
}

// A family of one series per worker (label `worker`).
void per_worker(std::vector<MetricFamily>& out, const char* name, const char* help, const std::vector<double>& values,
                MetricType type = MetricType::Gauge) {
  MetricFamily f = family(name, help, type);
  for (size_t w = 0; w < values.size(); ++w) add(f, {{"worker", std::to_string(w)}}, values[w]);
  out.push_back(std::move(f));
}

}  // namespace

std::string render_metrics(const MetricsInput& in) {
  const Totals& t = *in.totals;
  std::vector<MetricFamily> out;

  auto packets = family("stakegate_packets_total", "Packets by direction, traffic class (role) and verdict.", MetricType::Counter);
  auto bytes = family("stakegate_bytes_total", "Bytes by direction, traffic class (role) and verdict.", MetricType::Counter);
  for (int d = 0; d < kDirectionCount; ++d)
    for (int k = 0; k < kTrafficClassCount; ++k) {
      uint64_t pass_p = t.c.packets[d][k][0], pass_b = t.c.bytes[d][k][0], drop_p = 0, drop_b = 0;
      for (int v = 1; v < kVerdictCount; ++v) { drop_p += t.c.packets[d][k][v]; drop_b += t.c.bytes[d][k][v]; }
      std::string dir(direction_name(static_cast<Direction>(d))), role(class_name(static_cast<TrafficClass>(k)));
      add(packets, {{"direction", dir}, {"role", role}, {"verdict", "pass"}}, static_cast<double>(pass_p));
      add(packets, {{"direction", dir}, {"role", role}, {"verdict", "drop"}}, static_cast<double>(drop_p));
      add(bytes, {{"direction", dir}, {"role", role}, {"verdict", "pass"}}, static_cast<double>(pass_b));
      add(bytes, {{"direction", dir}, {"role", role}, {"verdict", "drop"}}, static_cast<double>(drop_b));
    }
  out.push_back(std::move(packets));
  out.push_back(std::move(bytes));

  auto drops = family("stakegate_drops_total", "Packets from the outside dropped, by traffic class (role) and reason.",
                      MetricType::Counter);
  for (int k = 0; k < kTrafficClassCount; ++k)
    for (int v = 1; v < kVerdictCount; ++v)
      add(drops, {{"role", std::string(class_name(static_cast<TrafficClass>(k)))},
                  {"reason", std::string(verdict_name(static_cast<Verdict>(v)))}},
          static_cast<double>(t.count(Direction::kOutside, static_cast<TrafficClass>(k), static_cast<Verdict>(v))));
  out.push_back(std::move(drops));

  // Per staked node: only reasons that happened (a series appears with its first drop), so
  // at most 6 series per node of the table. Counts are per source address, kept since it
  // entered the table; nodes sharing an address share them (the first node is named).
  auto node_drops = family("stakegate_node_drops_total",
                           "Packets from a staked node's address dropped, by node, role and reason (series only "
                           "for reasons that happened; nodes sharing an address share the count).",
                           MetricType::Counter);
  if (in.state) {
    const StakePlan& plan = in.state->plan();
    const auto& ids = in.state->nodes();
    for (const SourcePlan& sp : plan.sources) {
      if (sp.nodes.empty() || sp.slot >= t.sources.size()) continue;
      const SourceTotals& st = t.sources[sp.slot];
      const NodeIdentity& n = ids[sp.nodes.front()];
      for (const auto& [reason, v] : {std::pair{Verdict::kBlocklisted, st.blocklisted}, std::pair{Verdict::kEjected, st.ejected},
                                      std::pair{Verdict::kPortDenied, st.port_denied}, std::pair{Verdict::kOverRate, st.over_rate},
                                      std::pair{Verdict::kRequestOverRate, st.request_over_rate},
                                      std::pair{Verdict::kSessionOverRate, st.session_over_rate}})
        if (v)
          add(node_drops, {{"node_id", n.node_id}, {"role", std::string(role_name(n.role))},
                           {"reason", std::string(verdict_name(reason))}}, static_cast<double>(v));
    }
  }
  out.push_back(std::move(node_drops));

  auto nodes = family("stakegate_identity_nodes", "Nodes in the current identity table, by role.", MetricType::Gauge);
  for (int r = 0; r < kRoleCount; ++r)
    add(nodes, {{"role", std::string(role_name(static_cast<Role>(r)))}},
        static_cast<double>(in.state->plan().roles[r].nodes));
  out.push_back(std::move(nodes));

  single(out, "stakegate_identity_last_change_timestamp_seconds",
         "When the identity table last changed (Unix time): an epoch change should move it.", MetricType::Gauge,
         static_cast<double>(in.state->identity_changed_unix()));
  single(out, "stakegate_identity_confirmed_timestamp_seconds",
         "When the identity table was last known current (Unix time): it changed, an operator replaced "
         "it, or a fetch from the Access API found it unchanged. Kept across restarts (state_dir).",
         MetricType::Gauge, static_cast<double>(in.state->identity_confirmed_unix()));
  const PolicyState::Feed& feed = in.state->feed();
  single(out, "stakegate_identity_epoch", "The Flow epoch counter of the last snapshot fetched (0: none yet).",
         MetricType::Gauge, static_cast<double>(feed.epoch.counter));
  auto phase = family("stakegate_identity_epoch_phase",
                      "1 for the phase of the current epoch in the last snapshot fetched (staking, setup, committed, "
                      "fallback), 0 for the others.",
                      MetricType::Gauge);
  for (const char* ph : {"staking", "setup", "committed", "fallback"})
    add(phase, {{"phase", ph}}, feed.epoch.phase == ph ? 1.0 : 0.0);
  out.push_back(std::move(phase));
  single(out, "stakegate_identity_fetch_endpoints",
         "Access API endpoints configured (identity.access_api; 0: not fetching).", MetricType::Gauge,
         static_cast<double>(in.state->config().identity.access_api.endpoints.size()));
  single(out, "stakegate_identity_fetch_last_success_timestamp_seconds",
         "When a fetch from the Access API last applied or confirmed the table (Unix time; kept across restarts).",
         MetricType::Gauge, static_cast<double>(feed.last_success));
  single(out, "stakegate_identity_fetch_failures_total",
         "Fetches from the Access API that failed (every endpoint) or whose table was refused.", MetricType::Counter,
         static_cast<double>(feed.failures));

  single(out, "stakegate_identity_generation", "Generation of the running policy snapshot (identity, blocklist, QoS).",
         MetricType::Gauge, static_cast<double>(in.state->generation()));

  auto missed = family("stakegate_port_rx_missed_total", "Packets the NIC dropped because its RX queue was full.",
                       MetricType::Counter);
  auto nombuf = family("stakegate_port_rx_nombuf_total", "RX failures for lack of an mbuf.", MetricType::Counter);
  auto errors = family("stakegate_port_rx_errors_total",
                       "Frames the NIC received but did not deliver as the driver counts them: bad frames, and frames "
                       "longer than the port's MTU (dataplane.mtu).",
                       MetricType::Counter);
  auto txd = family("stakegate_port_tx_dropped_total", "Passed packets the port could not transmit (TX queue full).",
                    MetricType::Counter);
  auto link = family("stakegate_port_link_up",
                     "1 while the port's link is up; 0 while it is down (nothing passes on it: every node behind "
                     "the gateway is cut off).",
                     MetricType::Gauge);
  auto speed = family("stakegate_port_link_speed_mbps",
                      "The speed the port's link negotiated, in Mbit/s (0: down, or not reported).",
                      MetricType::Gauge);
  auto flaps = family("stakegate_port_link_changes_total",
                      "Times the port's link went down or came up since start (catches flaps between scrapes).",
                      MetricType::Counter);
  for (const auto& p : in.ports) {
    add(link, {{"port", p.name}}, p.link_up ? 1.0 : 0.0);
    add(speed, {{"port", p.name}}, static_cast<double>(p.link_speed_mbps));
    add(flaps, {{"port", p.name}}, static_cast<double>(p.link_changes));
    add(missed, {{"port", p.name}}, static_cast<double>(p.rx_missed));
    add(nombuf, {{"port", p.name}}, static_cast<double>(p.rx_nombuf));
    add(txd, {{"port", p.name}}, static_cast<double>(p.tx_dropped));
    add(errors, {{"port", p.name}}, static_cast<double>(p.rx_errors));
  }
  out.push_back(std::move(link));
  out.push_back(std::move(speed));
  out.push_back(std::move(flaps));
  out.push_back(std::move(missed));
  out.push_back(std::move(nombuf));
  out.push_back(std::move(txd));
  out.push_back(std::move(errors));

  per_worker(out, "stakegate_worker_busy_ratio",
             "Share of a worker's polling time spent on bursts that carried packets, over the last second.",
             in.worker_busy);
  per_worker(
      out, "stakegate_worker_cycles_per_packet",
      "TSC cycles per packet of a worker's loop iterations that carried packets (RX, decision, TX), over the last "
      "second; 0 when idle. Cycles at the TSC's rate: divide by its GHz for nanoseconds.",
      in.worker_cycles_per_packet);
  per_worker(out, "stakegate_worker_outside_packets_total",
             "Packets a worker received from the outside port. With dataplane.rss: false (each worker enforcing rate / "
             "workers), one worker receiving nearly all of them means the NIC does not spread the traffic over its "
             "queues, and every node gets 1 / workers of its rate.",
             std::vector<double>(in.worker_outside_packets.begin(), in.worker_outside_packets.end()), MetricType::Counter);

  single(out, "stakegate_graylisted_nodes",
         "Staked sources graylisted by peer scoring (their rates multiplied by scoring.penalty_factor).",
         MetricType::Gauge, static_cast<double>(in.graylisted));
  for (const auto& [name, help, value] :
       {std::tuple{"stakegate_graylist_entries_total", "Times a source entered the graylist.", in.graylist_entries},
        std::tuple{"stakegate_graylist_exits_total", "Times a source recovered from the graylist.", in.graylist_exits},
        std::tuple{"stakegate_evidence_cases_total", "Evidence cases opened (on graylisting or by an operator).",
                   in.evidence_cases},
        std::tuple{"stakegate_evidence_errors_total",
                   "Evidence cases or files that could not be written (see the log).", in.evidence_errors},
        std::tuple{"stakegate_evidence_samples_total", "Dropped packets written to evidence samples.",
                   in.evidence_samples},
        std::tuple{"stakegate_evidence_samples_lost_total",
                   "Evidence records lost because a worker's sample ring was full.", in.evidence_samples_lost},
        std::tuple{"stakegate_control_loop_errors_total",
                   "Exceptions caught in the control loop (see the log); the data path kept forwarding.",
                   in.control_loop_errors}}) {
    single(out, name, help, MetricType::Counter, static_cast<double>(value));
  }

  for (const auto& [name, help, value] :
       {std::tuple{"stakegate_sessions_created_total",
                   "Sessions opened or accepted by the cluster (TCP, UDP, ICMP echo).", t.c.sessions_created},
        std::tuple{"stakegate_sessions_evicted_total",
                   "Live sessions recycled because their set of the table was full (limits.sessions).",
                   t.c.sessions_evicted},
        std::tuple{"stakegate_sessions_verified_total",
                   "TCP connections whose remote end proved it received the cluster's packets (acknowledged its "
                   "sequence numbers).",
                   t.c.sessions_verified},
        std::tuple{"stakegate_neighbour_answers_total",
                   "ARP replies and neighbour advertisements passed as answers to the cluster's own requests, "
                   "whatever the infra budget held.",
                   t.c.neighbour_answers},
        std::tuple{"stakegate_dhcp_answers_total",
                   "DHCP answers passed to the cluster's own DHCP transactions (a node asking for an address), "
                   "whatever the infra budget held.",
                   t.c.dhcp_answers},
        std::tuple{"stakegate_spoofed_internal_total",
                   "Packets from the outside with a cluster source and a cluster destination, dropped as spoofed: "
                   "forged, or routed between the nodes by the upstream router (docs/deployment.md).",
                   t.c.spoofed_internal},
        std::tuple{"stakegate_neighbour_impostors_total",
                   "ARP frames and neighbour discovery messages from the outside claiming an address of "
                   "infra.neighbours (the router's) for another MAC, dropped as spoofed: a host of the link "
                   "impersonating the router, or an address listed under the wrong MAC.",
                   t.c.neighbour_impostors},
        std::tuple{"stakegate_inside_foreign_total",
                   "Packets from the inside whose source lies outside cluster.prefixes (and is neither link-local nor "
                   "unspecified): they open no session, so replies to them are judged as new traffic. A node whose "
                   "address cluster.prefixes misses.",
                   t.c.inside_foreign},
        std::tuple{"stakegate_handoffs_total",
                   "ICMP errors a worker handed to the worker holding the session they quote (several workers: a "
                   "router's error hashes by the router's address, the session by the remote's).",
                   t.c.handoffs},
        std::tuple{"stakegate_fragments_held_total",
                   "Non-first fragments of senders that are not nodes held for their datagram's first fragment, "
                   "which had not arrived (reordered on the way); each then follows it, or is dropped as "
                   "unregistered 50 ms after it arrived.",
                   t.c.fragments_held},
        std::tuple{"stakegate_listed_neighbour_passes_total",
                   "ARP, neighbour discovery and listed EtherTypes from the MACs of infra.neighbours (the upstream "
                   "routers) passed on their own budgets.",
                   t.c.listed_neighbour_passes},
        std::tuple{"stakegate_routing_passed_total",
                   "Packets of the routing protocols of infra.routing passed from the MACs and addresses of "
                   "infra.neighbours, sent on the link (TTL 255 or to a link-local group), on their neighbour's "
                   "routing budget.",
                   t.c.routing_passes},
        std::tuple{"stakegate_routing_over_rate_total",
                   "Such packets dropped over their neighbour's routing budget (infra.routing_pps), as "
                   "infra_over_rate: BGP or BFD sessions with the router may fail.",
                   t.c.routing_over_rate},
        std::tuple{"stakegate_graylist_events_lost_total",
                   "Graylist events lost because a worker's event ring was full.", in.graylist_events_lost}}) {
    single(out, name, help, MetricType::Counter, static_cast<double>(value));
  }
  auto fast = family("stakegate_fast_path_packets_total",
                     "Packets decided on a fast path (outside: a staked node's segment on its verified connection; "
                     "inside: the cluster's segment or datagram on a live session), by direction.",
                     MetricType::Counter);
  add(fast, {{"direction", std::string(direction_name(Direction::kOutside))}}, static_cast<double>(t.c.fast_path));
  add(fast, {{"direction", std::string(direction_name(Direction::kInside))}}, static_cast<double>(t.c.fast_path_inside));
  out.push_back(std::move(fast));
  single(out, "stakegate_session_table_entries", "Session table entries per worker (limits.sessions).",
         MetricType::Gauge, static_cast<double>(in.session_capacity));
  single(out, "stakegate_rate_split_workers",
         "Workers sharing each source's rate: 1 with RSS on the remote address (or one worker); N when "
         "dataplane.rss is off and every worker enforces rate / N.",
         MetricType::Gauge, static_cast<double>(in.rate_split));
  single(out, "stakegate_enforcing",
         "1 when the gateway drops what its verdicts say (mode: enforce); 0 in monitor mode, where every "
         "packet is decided and counted by verdict but forwarded.",
         MetricType::Gauge, in.state && in.state->config().monitor ? 0.0 : 1.0);
  single(out, "stakegate_monitor_forwarded_total",
         "Outside packets forwarded in monitor mode whose verdict was a drop: what enforcing would have dropped.",
         MetricType::Counter, static_cast<double>(in.monitor_forwarded));

  single(out, "stakegate_last_reload_success",
         "1 when the last config reload (SIGHUP, stakegatectl reload) was applied, 0 when it was refused.",
         MetricType::Gauge, in.last_reload_success ? 1.0 : 0.0);
  single(out, "stakegate_last_reload_timestamp_seconds",
         "When the last reload ended (Unix time; the start before any).", MetricType::Gauge,
         static_cast<double>(in.last_reload_unix));

  auto dns = family("stakegate_dns_names",
                    "DNS names of the identity table: resolved (answering), stale (failing, on their last known "
                    "addresses), unresolved (failing and never resolved: their nodes have no address).",
                    MetricType::Gauge);
  add(dns, {{"state", "resolved"}}, static_cast<double>(in.dns_resolved));
  add(dns, {{"state", "stale"}}, static_cast<double>(in.dns_stale));
  add(dns, {{"state", "unresolved"}}, static_cast<double>(in.dns_unresolved));
  out.push_back(std::move(dns));
  single(out, "stakegate_dns_lookup_failures_total",
         "Lookups of identity host names that failed (each name, each round).", MetricType::Counter,
         static_cast<double>(in.dns_failures));

  single(out, "stakegate_unregistered_evictions_total",
         "Active unregistered per-source buckets recycled because the table was full.", MetricType::Counter,
         static_cast<double>(t.c.unregistered_evictions));
  single(out, "stakegate_unregistered_proven_total",
         "New unregistered sources given their full burst for completing a TCP handshake with the cluster.",
         MetricType::Counter, static_cast<double>(t.c.unregistered_proven));
  single(out, "stakegate_unregistered_reserve_total",
         "Packets of unregistered clients' verified TCP connections passed on a reserve (the pool's, or their own bucket's).",
         MetricType::Counter, static_cast<double>(t.c.unregistered_reserve));
  single(out, "stakegate_request_hop_passed_total",
         "Packets of staked addresses off verified connections passed on the request channel's bucket for the "
         "hop limit the node's own verified packets arrive with.",
         MetricType::Counter, static_cast<double>(t.c.request_hop_passed));
  single(out, "stakegate_refusals_passed_total",
         "RSTs of staked addresses refusing the cluster's SYN-ACK to a SYN they never sent (a forged one), passed "
         "without taking their request channel: one per such connection.",
         MetricType::Counter, static_cast<double>(t.c.refusals_passed));

  single(out, "stakegate_snapshots_pending_reclaim",
         "Replaced policy snapshots still waiting for every worker to pass a quiescent point.", MetricType::Gauge,
         in.snapshots_pending_reclaim);

  single(out, "stakegate_blocklist_entries", "Entries in the running blocklist.", MetricType::Gauge,
         static_cast<double>(in.state->blocklist_size()));

  auto info = family("stakegate_build_info", "Build information; the value is always 1.", MetricType::Gauge);
  add(info, {{"version", in.version}}, 1);
  out.push_back(std::move(info));

  return prometheus::TextSerializer().Serialize(out);
}

}  // namespace stakegate
