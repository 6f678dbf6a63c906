#include <utility>  // before Boost.Asio (Boost 1.74 + C++20)

#include "control_loop.h"

#include <rte_telemetry.h>
#include <spdlog/spdlog.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <array>
#include <chrono>
#include <filesystem>
#include <functional>
#include <mutex>
#include <thread>
#include <unistd.h>

#include "identity_followers.h"
#include "reloader.h"
#include "run_signals.h"
#include "serial_offload.h"
#include "service_notify.h"
#include "stakegate/control/api.h"
#include "stakegate/control/http_server.h"
#include "stakegate/control/metrics.h"
#include "stakegate/identity/resolve.h"

namespace stakegate {
namespace {

// DPDK telemetry (`/stakegate/stats` in dpdk-telemetry.py): totals and generation.
// The callback runs on DPDK's telemetry thread, so it reads the data plane only.
const DataPlane* g_telemetry_dp = nullptr;
std::atomic<uint64_t> g_telemetry_generation{0};
int telemetry_stats(const char*, const char*, rte_tel_data* d) {
  if (!g_telemetry_dp) return -1;
  Totals t = g_telemetry_dp->totals(false);
  rte_tel_data_start_dict(d);
  rte_tel_data_add_dict_u64(d, "outside_packets", t.packets(Direction::kOutside));
  rte_tel_data_add_dict_u64(d, "outside_passed", t.passed(Direction::kOutside));
  rte_tel_data_add_dict_u64(d, "inside_packets", t.packets(Direction::kInside));
  for (int v = 1; v < kVerdictCount; ++v)
    rte_tel_data_add_dict_u64(d, std::string("drops_").append(verdict_name(static_cast<Verdict>(v))).c_str(),
                              t.drops(static_cast<Verdict>(v)));
  rte_tel_data_add_dict_u64(d, "identity_generation", g_telemetry_generation.load(std::memory_order_relaxed));
  return 0;
}

HttpResponse metrics_handler(const HttpRequest& r, const std::function<std::string()>& render) {
  std::string path = r.target.substr(0, r.target.find('?'));
  if (r.method != "GET" && r.method != "HEAD") return {405, "text/plain", "read-only: GET /metrics\n"};
  if (path != "/metrics") return {404, "text/plain", "see /metrics\n"};
  return {200, "text/plain; version=0.0.4; charset=utf-8", render()};
}

std::string render(PolicyState& state, DataPlane& dp, EvidenceService& ev, const std::string& version,
                   const Reloader::Outcome& reload, uint64_t control_errors) {
  Totals t = dp.totals(true);  // with per-source counts, for stakegate_node_drops_total
  MetricsInput in;
  in.last_reload_success = reload.ok;
  in.last_reload_unix = reload.unix_s;
  in.control_loop_errors = control_errors;
  in.totals = &t;
  in.state = &state;
  in.version = version;
  in.snapshots_pending_reclaim = dp.snapshots_pending_reclaim();
  in.worker_busy = dp.busy_ratios();
  in.worker_cycles_per_packet = dp.cycles_per_packet();
  in.worker_outside_packets = dp.outside_packets();
  in.graylisted = ev.graylist().entries().size();
  std::tie(in.graylist_entries, in.graylist_exits) = ev.graylist_transitions();
  std::tie(in.evidence_cases, in.evidence_errors) = ev.case_counts();
  in.evidence_samples = ev.samples_written();
  in.evidence_samples_lost = ev.samples_lost();
  in.graylist_events_lost = ev.events_lost();
  in.session_capacity = dp.workers().empty() ? 0 : dp.workers().front()->sessions().capacity();
  in.rate_split = state.rate_shards();
  in.monitor_forwarded = dp.monitor_forwarded();
  const NameCache& names = NameCache::process();
  NameCache::Census dns = names.census(dns_names(state.nodes(), state.config().identity.hosts));
  in.dns_resolved = dns.resolved;
  in.dns_stale = dns.stale;
  in.dns_unresolved = dns.unresolved;
  in.dns_failures = names.failures();
  // A port's tx_dropped: packets the other port passed that this one could not send.
  PortStats out = port_stats(dp.outside()), ins = port_stats(dp.inside());
  const std::vector<PortLink> links = dp.links();
  const PortLink &lo = links.at(0), &li = links.at(1);
  in.ports.push_back({"outside", out.imissed, out.rx_nombuf, dp.tx_dropped(Direction::kInside), out.ierrors, lo.up,
                      lo.speed_mbps, lo.changes});
  in.ports.push_back({"inside", ins.imissed, ins.rx_nombuf, dp.tx_dropped(Direction::kOutside), ins.ierrors, li.up,
                      li.speed_mbps, li.changes});
  return render_metrics(in);
}

// A counter the log warns about when it grows: at most once every ten minutes, with the
// count since the last warning.
struct CountWarning {
  uint64_t reported = 0;
  std::chrono::steady_clock::time_point said{};
  bool ever = false;  // the first growth is said at once
  template <class Say>
  void update(uint64_t count, std::chrono::steady_clock::time_point now, Say say) {
    if (count <= reported || (ever && now - said < std::chrono::minutes(10))) return;
    say(count - reported);
    reported = count;
    said = now;
    ever = true;
  }
};

}  // namespace

void run_control_loop(PolicyState& state, DataPlane& dp, RcuPublisher& publisher, EvidenceService& evidence,
                      const ControlLoopOptions& o) {
  namespace asio = boost::asio;
  const Config& cfg = state.config();
  asio::io_context io;

  g_telemetry_dp = &dp;
  g_telemetry_generation = state.generation();
  dp.sample_busy();  // every worker's series from the first scrape
  rte_telemetry_register_cmd("/stakegate/stats", telemetry_stats, "stakegate counters. No parameters");

  ControlApi api(state, dp, &evidence, o.version);
  HttpLimits limits;
  limits.body_bytes = cfg.control.max_body_bytes;
  limits.max_connections = cfg.control.max_connections;
  limits.max_per_peer = cfg.control.max_connections_per_peer;
  HttpServer control_server(io, limits);
  HttpLimits ml = limits;
  ml.body_bytes = 0;
  HttpServer metrics_server(io, ml);

  // The TCP listener's tokens and /metrics' basic-auth users, swapped whole when a reload
  // reads new ones.
  auto tokens = std::make_shared<const ControlTokens>(o.tokens);
  ControlTokens reloaded_tokens = o.tokens;
  auto basic = std::make_shared<BasicAuth>(cfg.control.metrics_users);
  Reloader reloader(io, state, cfg.control.reload_timeout_s, [&]() -> std::string {
    tokens = std::make_shared<const ControlTokens>(reloaded_tokens);
    basic = std::make_shared<BasicAuth>(state.config().control.metrics_users);
    std::string problems = control_server.reload_tls();
    std::string m = metrics_server.reload_tls();
    return problems + (problems.empty() || m.empty() ? "" : "; ") + m;
  });
  reloader.tokens = &reloaded_tokens;

  // Every change is logged with who asked (the audit log): SO_PEERCRED on Unix sockets,
  // the address (and certificate subject) on TCP.
  auto audit = [&](const std::string& rpc, const std::string& caller, const ControlApi::Response& out, uint64_t before) {
    if (out.status == 200 && state.generation() != before)
      spdlog::info("audit: {} by {}: generation {}", rpc, caller, state.generation());
    else if (out.status == 200)
      spdlog::info("audit: {} by {}: done (no policy change)", rpc, caller);
    else
      spdlog::warn("audit: {} by {}: refused (HTTP {}){}{}", rpc, caller, out.status, out.error.empty() ? "" : ": ",
                   out.error);
  };
  auto reload_done_log = [&](const std::string& who) {
    return [&, who](const PolicyState::Change* ch, const std::string& code, const std::string& message) {
      g_telemetry_generation = state.generation();
      if (ch) {
        spdlog::info("{}: reloaded {}: generation {}", who, state.config().file, ch->generation);
        for (const auto& w : ch->warnings) spdlog::warn("{}: {}", who, w);
      } else {
        spdlog::error("{}: reload refused ({}): {}", who, code, message);
      }
    };
  };
  // Identity replaces parse and wait on DNS on a helper thread, one at a time.
  SerialOffload serial(io, "the identity replace");
  ControlApi::Offload offload = [&serial](std::function<void()> work, std::function<void()> finish) {
    serial.run(std::move(work), std::move(finish));
  };
  HttpHandler api_handler = [&](const HttpRequest& r, HttpReply reply) {
    const std::string rpc = ControlApi::rpc_of(r.target);
    if (rpc == "Reload" && r.method == "POST" && r.access == Access::kAdmin) {
      auto log = reload_done_log("Reload by " + r.caller);
      reloader.start([&, reply, log, ct = r.content_type, caller = r.caller](const PolicyState::Change* ch,
                                                                            const std::string& code, const std::string& msg) {
        log(ch, code, msg);
        auto out = api.reload_response(ct, ch, code, msg);
        reply({out.status, out.content_type, std::move(out.body)});
      }, api.reload_forced(r.target, r.content_type, r.body));
      return;
    }
    const uint64_t before = state.generation();
    api.handle_async(r.method, r.target, r.content_type, r.body, r.access, r.caller, offload,
                     [&, rpc, reply, before, caller = r.caller](ControlApi::Response out) {
                       if (api.mutates(rpc)) audit(rpc, caller, out, before);
                       g_telemetry_generation = state.generation();
                       reply({out.status, out.content_type, std::move(out.body)});
                     });
  };

  if (!cfg.control.socket.empty()) {
    std::filesystem::create_directories(std::filesystem::path(cfg.control.socket).parent_path());
    control_server.listen_unix(cfg.control.socket, cfg.control.socket_mode, cfg.control.socket_group, Access::kAdmin,
                               api_handler);
    spdlog::info("control API (admin) on unix:{} (mode {:04o}{})", cfg.control.socket, cfg.control.socket_mode,
                 cfg.control.socket_group.empty() ? "" : ", group " + cfg.control.socket_group);
  }
  if (!cfg.control.readonly_socket.empty()) {
    std::filesystem::create_directories(std::filesystem::path(cfg.control.readonly_socket).parent_path());
    control_server.listen_unix(cfg.control.readonly_socket, cfg.control.readonly_mode, cfg.control.readonly_group,
                               Access::kRead, api_handler);
    spdlog::info("control API (read-only) on unix:{} (mode {:04o}{})", cfg.control.readonly_socket,
                 cfg.control.readonly_mode, cfg.control.readonly_group.empty() ? "" : ", group " + cfg.control.readonly_group);
  }
  auto tls_of = [](const TlsConfig& t) -> std::optional<TlsFiles> {
    if (!t.on()) return std::nullopt;
    return TlsFiles{t.cert, t.key, t.client_ca};
  };
  // A TCP listener that cannot bind now (another process holds the port, the address is not
  // up yet) must not stop the gateway: it is inline, and every node behind it would go down
  // with it. It forwards without that listener, says so, and binds again every 5 s.
  using SteadyClock = std::chrono::steady_clock;
  struct PendingListener {
    std::string key;
    std::function<void()> open;  // listens and logs, or throws
    SteadyClock::time_point since, next, logged;
  };
  std::vector<PendingListener> pending_listeners;
  auto open_listener = [&](std::string key, std::function<void()> open) {
    try {
      open();
    } catch (const std::exception& e) {
      spdlog::error("{}: {}: not served until it binds; the gateway forwards and tries again every 5 s", key, e.what());
      const auto now = SteadyClock::now();
      pending_listeners.push_back({std::move(key), std::move(open), now, now + std::chrono::seconds(5), now});
    }
  };
  if (!cfg.control.tcp.empty()) {
    open_listener("control.tcp", [&] {
      control_server.listen_tcp(cfg.control.tcp, api_handler, bearer_authenticator(&tokens), tls_of(cfg.control.tls));
      spdlog::info("control API on {}://{} (bearer token{}{})", cfg.control.tls.on() ? "https" : "http", cfg.control.tcp,
                   o.tokens.read.empty() ? "" : "; a read-only token too",
                   cfg.control.tls.client_ca.empty() ? "" : "; client certificates required");
    });
  }
  uint64_t control_errors = 0;  // exceptions the loop below caught (the control thread's alone)
  if (!cfg.control.metrics.empty()) {
    HttpAuthenticator metrics_auth = [&basic](const HttpAuthInput& in) -> std::optional<Access> {
      const std::shared_ptr<BasicAuth> users = basic;  // a reload may swap it
      if (users->empty() || users->check(in.authorization)) return Access::kRead;
      return std::nullopt;
    };
    open_listener("control.metrics", [&, metrics_auth] {
      metrics_server.listen_tcp(
          cfg.control.metrics,
          sync_handler([&](const HttpRequest& r) {
            return metrics_handler(r, [&] { return render(state, dp, evidence, o.version, reloader.last(), control_errors); });
          }),
          metrics_auth, tls_of(cfg.control.metrics_tls));
      spdlog::info("metrics on {}://{}/metrics{}", cfg.control.metrics_tls.on() ? "https" : "http", cfg.control.metrics,
                   basic->empty() ? "" : " (basic auth)");
    });
  }

  // Signals (run_signals.h): SIGTERM/SIGINT drain and stop; SIGHUP reloads (a refused
  // config changes nothing). Acted on when their handlers wake the loop; what came while
  // the gateway started, at once.
  auto act_on_signals = [&](const char* when) {
    if (int sig = g_stop_signal.load(std::memory_order_relaxed)) {
      spdlog::info("signal {}{}: stopping", sig, when);
      io.stop();
    } else if (g_reload_signal.exchange(false, std::memory_order_relaxed)) {
      if (*when) spdlog::info("SIGHUP{}: reloading (the file may have changed since it was read)", when);
      reloader.start(reload_done_log("SIGHUP"));
    }
  };
  asio::post(io, [&] { act_on_signals(" while starting"); });
  asio::posix::stream_descriptor signal_wake(io);
  if (g_signal_wake[0] >= 0) signal_wake.assign(::dup(g_signal_wake[0]));
  std::array<char, 64> wake_bytes{};
  std::function<void()> wait_signals = [&] {
    if (!signal_wake.is_open()) return;  // no pipe: the tick below still acts on them
    signal_wake.async_read_some(asio::buffer(wake_bytes), [&](const boost::system::error_code& ec, size_t) {
      if (ec) return;
      wait_signals();  // first: a reload that throws must not deafen the next signal
      act_on_signals("");
    });
  };
  wait_signals();

  IdentityFollowers followers(io, state);

  // systemd: ready once everything listens; the watchdog fed while every loop turns.
  ServiceNotifier notifier;

  // Timer: reclaim snapshots, evidence, expire blocks, periodic summary, idle exit.
  asio::steady_timer tick(io);
  auto last_report = std::chrono::steady_clock::now();
  auto last_change = last_report, last_busy = last_report;
  uint64_t last_rx = 0, reported_rx = 0, reported_in = 0;
  CountWarning internal_warning, impostor_warning, foreign_warning, unspread_warning, routing_warning;
  std::vector<uint64_t> reported_by_worker;  // outside packets per worker at the last summary
  uint64_t unspread_intervals = 0;           // summaries in which one worker took a split rate's traffic
  const auto interval = std::chrono::duration<double>(cfg.dataplane.stats_interval_s);
  std::function<void()> on_tick = [&] {
    tick.expires_after(std::chrono::milliseconds(50));
    tick.async_wait([&](const boost::system::error_code& ec) {
      if (ec) return;
      on_tick();  // first: an exception below must not stop the ticks (and the watchdog's food)
      notifier.tick(dp.loop_progress(), std::chrono::steady_clock::now());
      dp.watch_links();
      control_server.resume_accepting();
      metrics_server.resume_accepting();
      publisher.reclaim();
      evidence.tick();
      try {
        if (state.expire()) spdlog::info("blocklist: expired entries removed");
      } catch (const std::exception& e) {
        spdlog::error("blocklist expiry: {}", e.what());
      }
      g_telemetry_generation = state.generation();
      auto now = std::chrono::steady_clock::now();
      for (auto it = pending_listeners.begin(); it != pending_listeners.end();) {
        if (now < it->next) {
          ++it;
          continue;
        }
        try {
          it->open();
          spdlog::info("{}: bound {:.0f} s after the first try", it->key,
                       std::chrono::duration<double>(now - it->since).count());
          it = pending_listeners.erase(it);
        } catch (const std::exception& e) {
          it->next = now + std::chrono::seconds(5);
          if (now - it->logged >= std::chrono::minutes(1)) {  // once a minute, not every try
            spdlog::error("{}: {}: still not served; trying again every 5 s", it->key, e.what());
            it->logged = now;
          }
          ++it;
        }
      }
      if (now - last_busy >= std::chrono::seconds(1)) {
        dp.sample_busy();
        followers.poll();
        last_busy = now;
      }
      Totals t = dp.totals(false);
      uint64_t rx = t.packets(Direction::kOutside) + t.packets(Direction::kInside);
      if (rx != last_rx) {
        last_rx = rx;
        last_change = now;
      }
      if (now - last_report >= interval) {
        uint64_t out_rx = t.packets(Direction::kOutside), in_rx = t.packets(Direction::kInside);
        double secs = std::chrono::duration<double>(now - last_report).count();
        // What the operator must see in every summary while it lasts (and in systemctl
        // status): a link down, monitor mode.
        std::string down;
        for (const PortLink& l : dp.links())
          if (!l.up) down += (down.empty() ? "" : ", ") + l.name;
        std::string attention = down.empty() ? "" : "; LINK DOWN: " + down;
        if (state.config().monitor)
          attention += fmt::format("; MONITOR MODE: nothing dropped ({} forwarded against their verdict)",
                                   dp.monitor_forwarded());
        spdlog::info("{} | outside rate {:.3f} Mpps, inside rate {:.3f} Mpps{}",
                     summary_line(t, dp.tx_dropped(Direction::kOutside) + dp.tx_dropped(Direction::kInside)),
                     static_cast<double>(out_rx - reported_rx) / secs / 1e6,
                     static_cast<double>(in_rx - reported_in) / secs / 1e6, attention);
        notifier.status(fmt::format("forwarding; generation {}; outside {:.3f} Mpps, inside {:.3f} Mpps{}", state.generation(),
                                    static_cast<double>(out_rx - reported_rx) / secs / 1e6,
                                    static_cast<double>(in_rx - reported_in) / secs / 1e6, attention));
        // Each worker enforcing rate / N (rss: false) while one receives nearly everything:
        // every node gets 1/N of its rate.
        std::vector<uint64_t> by_worker = dp.outside_packets(), received(by_worker.size());
        for (size_t w = 0; w < by_worker.size(); ++w)
          received[w] = by_worker[w] - (w < reported_by_worker.size() ? reported_by_worker[w] : 0);
        reported_by_worker = by_worker;
        const unsigned split = state.rate_shards();
        if (double share = unspread_share(received, split); share > 0) {
          const auto busiest = std::max_element(received.begin(), received.end()) - received.begin();
          unspread_warning.update(++unspread_intervals, now, [&](uint64_t) {
            spdlog::warn("worker {} received {:.0f} % of the outside packets over the last {:.0f} s, but each of the "
                         "{} workers enforces rate / {} (dataplane.rss: false): the NIC does not spread the traffic "
                         "over its queues, so every node gets 1/{} of its rate; run one worker, or steer the traffic "
                         "across the queues (docs/deployment.md)",
                         busiest, 100 * share, secs, split, split, split);
          });
        }
        reported_rx = out_rx;
        reported_in = in_rx;
        last_report = now;
      }
      // Cluster-to-cluster packets from the outside: forged, or the router routes the nodes'
      // traffic to each other through the gateway, where it can never pass.
      internal_warning.update(t.c.spoofed_internal, now, [](uint64_t n) {
        spdlog::warn("{} packets from the outside went from one cluster address to another and were dropped as "
                     "spoofed (stakegate_spoofed_internal_total): forged, or the upstream router routes traffic "
                     "between the nodes (nodes in different subnets, an IPv6 prefix advertised off-link); nodes "
                     "must reach each other on their own link, not through the gateway (docs/deployment.md)", n);
      });
      // ARP/ND claiming the router's address from another MAC: an impostor on the outside
      // link, or infra.neighbours lists the address under a MAC that is not (or no longer)
      // the one answering for it. Either way the operator must know at once.
      impostor_warning.update(t.c.neighbour_impostors, now, [](uint64_t n) {
        spdlog::warn("{} ARP or neighbour discovery frames from the outside claimed an address of infra.neighbours "
                     "for another MAC and were dropped as spoofed (stakegate_neighbour_impostors_total): a host of "
                     "the outside link impersonating the router, or infra.neighbours lists the address under a MAC "
                     "that does not answer for it (a replaced router, a VRRP or HSRP virtual MAC missing)", n);
      });
      // The router's routing protocols over their budget: a BFD session that misses its
      // packets goes down, and takes the BGP session above it along.
      routing_warning.update(t.c.routing_over_rate, now, [](uint64_t n) {
        spdlog::warn("{} routing protocol packets from infra.neighbours (infra.routing) were dropped over "
                     "infra.routing_pps (stakegate_routing_over_rate_total): the router's BGP or BFD sessions with "
                     "the nodes may fail; raise infra.routing_pps", n);
      });
      // The cluster sends from an address cluster.prefixes does not list: its connections open
      // no session, and their replies are dropped (port_denied, unregistered).
      foreign_warning.update(t.c.inside_foreign, now, [&](uint64_t n) {
        std::string seen;
        if (t.c.inside_foreign_v4) seen = IpAddr::from_v4(static_cast<uint32_t>(t.c.inside_foreign_v4)).to_string();
        if (t.c.inside_foreign_v6) {
          Ip6 a{};
          for (int b = 0; b < 8; ++b) a.bytes[b] = static_cast<uint8_t>(t.c.inside_foreign_v6 >> (56 - 8 * b));
          seen += (seen.empty() ? "" : ", ") + IpAddr::from_v6(a).to_string() + "/64";
        }
        spdlog::warn("{} packets from the inside had a source outside cluster.prefixes (the last: {}): they open no "
                     "session, so the replies to those hosts' connections are dropped as new traffic "
                     "(stakegate_inside_foreign_total); add their addresses to cluster.prefixes and reload",
                     n, seen);
      });
      // Signals the pipe could not announce (it could not be made, or a read failed); last,
      // so that a reload that throws (memory exhausted) leaves this tick's other work done.
      act_on_signals("");
      if (o.exit_on_idle_s > 0 && rx > 0 && now - last_change >= std::chrono::duration<double>(o.exit_on_idle_s)) {
        spdlog::info("no packet for {} s: stopping (--exit-on-idle)", o.exit_on_idle_s);
        io.stop();
        return;
      }
    });
  };
  on_tick();
  notifier.ready("forwarding; " + std::to_string(state.nodes().size()) + " nodes, generation " +
                 std::to_string(state.generation()));
  // An exception out of a handler (memory exhausted, say) must not end the gateway: the
  // workers keep forwarding on the published snapshot either way, and stopping would
  // take every node behind it down. The loop goes on; a handler chain that the exception
  // broke (the tick feeds the watchdog) lets systemd restart the gateway.
  std::chrono::steady_clock::time_point last_error_log{};
  for (;;) {
    try {
      io.run();
      break;
    } catch (const std::exception& e) {
      ++control_errors;
      // At most one line a second: out of memory, every tick fails.
      if (auto now = std::chrono::steady_clock::now(); now - last_error_log >= std::chrono::seconds(1)) {
        spdlog::error("control loop: {} (the data path keeps forwarding; {} caught so far)", e.what(), control_errors);
        last_error_log = now;
      }
      try {
        control_server.restart_accepting();
        metrics_server.restart_accepting();
      } catch (const std::exception&) {  // the next error tries again
      }
    }
  }
  notifier.stopping();
  g_telemetry_dp = nullptr;
  control_server.close();
  metrics_server.close();
}

}  // namespace stakegate
