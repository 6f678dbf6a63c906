#include <utility>  // before Boost.Asio (Boost 1.74 + C++20)

#include "control_loop.h"

#include <rte_telemetry.h>
#include <spdlog/spdlog.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <filesystem>
#include <functional>

#include "stakegate/control/http_server.h"
#include "stakegate/control/metrics.h"

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

std::string render(PolicyState& state, DataPlane& dp, EvidenceService& ev, const std::string& version) {
  Totals t = dp.totals(false);
  MetricsInput in;
  in.totals = &t;
  in.state = &state;
  in.version = version;
  in.snapshots_pending_reclaim = dp.snapshots_pending_reclaim();
  in.worker_busy = dp.busy_ratios();
  in.graylisted = ev.graylist().entries().size();
  std::tie(in.graylist_entries, in.graylist_exits) = ev.graylist_transitions();
  std::tie(in.evidence_cases, in.evidence_errors) = ev.case_counts();
  in.evidence_samples = ev.samples_written();
  in.evidence_samples_lost = ev.samples_lost();
  in.graylist_events_lost = ev.events_lost();
  in.session_capacity = dp.workers().empty() ? 0 : dp.workers().front()->sessions().capacity();
  in.rate_split = state.rate_shards();
  // A port's tx_dropped: packets the other port passed that this one could not send.
  PortStats out = port_stats(dp.outside()), ins = port_stats(dp.inside());
  in.ports.push_back({"outside", out.imissed, out.rx_nombuf, dp.tx_dropped(Direction::kInside)});
  in.ports.push_back({"inside", ins.imissed, ins.rx_nombuf, dp.tx_dropped(Direction::kOutside)});
  return render_metrics(in);
}

}  // namespace

void run_control_loop(PolicyState& state, DataPlane& dp, RcuPublisher& publisher, EvidenceService& evidence,
                      const ControlLoopOptions& o) {
  namespace asio = boost::asio;
  const Config& cfg = state.config();
  asio::io_context io;

  g_telemetry_dp = &dp;
  g_telemetry_generation = state.generation();
  rte_telemetry_register_cmd("/stakegate/stats", telemetry_stats, "stakegate counters. No parameters");

  ControlApi api(state, dp, &evidence, o.version);
  auto api_handler = [&](const HttpRequest& r) {
    uint64_t before = state.generation();
    auto out = api.handle(r.method, r.target, r.content_type, r.body);
    if (state.generation() != before) spdlog::info("control: {} -> generation {}", r.target, state.generation());
    g_telemetry_generation = state.generation();
    return HttpResponse{out.status, out.content_type, std::move(out.body)};
  };
  HttpLimits limits;
  limits.body_bytes = cfg.control.max_body_bytes;
  HttpServer control_server(io, limits);
  if (!cfg.control.socket.empty()) {
    std::filesystem::create_directories(std::filesystem::path(cfg.control.socket).parent_path());
    control_server.listen_unix(cfg.control.socket, 0660, api_handler);
    spdlog::info("control API on unix:{} (mode 0660)", cfg.control.socket);
  }
  if (!cfg.control.tcp.empty()) {
    control_server.listen_tcp(cfg.control.tcp, api_handler, o.token);
    spdlog::info("control API on tcp:{} (bearer token required)", cfg.control.tcp);
  }
  HttpLimits ml;
  ml.body_bytes = 0;
  HttpServer metrics_server(io, ml);
  if (!cfg.control.metrics.empty()) {
    metrics_server.listen_tcp(
        cfg.control.metrics,
        [&](const HttpRequest& r) { return metrics_handler(r, [&] { return render(state, dp, evidence, o.version); }); },
        std::nullopt);
    spdlog::info("metrics on http://{}/metrics", cfg.control.metrics);
  }

  // Signals: SIGTERM/SIGINT drain and stop; SIGHUP reloads (a refused config changes nothing).
  asio::signal_set stop_signals(io, SIGINT, SIGTERM), hup(io, SIGHUP);
  stop_signals.async_wait([&](const boost::system::error_code& ec, int sig) {
    if (!ec) spdlog::info("signal {}: stopping", sig);
    io.stop();
  });
  std::function<void()> wait_hup = [&] {
    hup.async_wait([&](const boost::system::error_code& ec, int) {
      if (ec) return;
      try {
        auto ch = state.reload();
        g_telemetry_generation = state.generation();
        spdlog::info("SIGHUP: reloaded {}: generation {}", state.config().file, ch.generation);
        for (const auto& w : ch.warnings) spdlog::warn("SIGHUP: {}", w);
      } catch (const std::exception& e) {
        spdlog::error("SIGHUP: reload refused, the running policy is unchanged: {}", e.what());
      }
      wait_hup();
    });
  };
  wait_hup();

  // Timer: reclaim snapshots, evidence, expire blocks, periodic summary, idle exit.
  asio::steady_timer tick(io);
  auto last_report = std::chrono::steady_clock::now();
  auto last_change = last_report;
  uint64_t last_rx = 0, reported_rx = 0, reported_in = 0;
  const auto interval = std::chrono::duration<double>(cfg.dataplane.stats_interval_s);
  std::function<void()> on_tick = [&] {
    tick.expires_after(std::chrono::milliseconds(50));
    tick.async_wait([&](const boost::system::error_code& ec) {
      if (ec) return;
      publisher.reclaim();
      evidence.tick();
      try {
        if (state.expire()) spdlog::info("blocklist: expired entries removed");
      } catch (const std::exception& e) {
        spdlog::error("blocklist expiry: {}", e.what());
      }
      g_telemetry_generation = state.generation();
      auto now = std::chrono::steady_clock::now();
      Totals t = dp.totals(false);
      uint64_t rx = t.packets(Direction::kOutside) + t.packets(Direction::kInside);
      if (rx != last_rx) {
        last_rx = rx;
        last_change = now;
      }
      if (now - last_report >= interval) {
        uint64_t out_rx = t.packets(Direction::kOutside), in_rx = t.packets(Direction::kInside);
        double secs = std::chrono::duration<double>(now - last_report).count();
        spdlog::info("{} | outside rate {:.3f} Mpps, inside rate {:.3f} Mpps",
                     summary_line(t, dp.tx_dropped(Direction::kOutside) + dp.tx_dropped(Direction::kInside)),
                     static_cast<double>(out_rx - reported_rx) / secs / 1e6,
                     static_cast<double>(in_rx - reported_in) / secs / 1e6);
        reported_rx = out_rx;
        reported_in = in_rx;
        last_report = now;
      }
      if (o.exit_on_idle_s > 0 && rx > 0 && now - last_change >= std::chrono::duration<double>(o.exit_on_idle_s)) {
        spdlog::info("no packet for {} s: stopping (--exit-on-idle)", o.exit_on_idle_s);
        io.stop();
        return;
      }
      on_tick();
    });
  };
  on_tick();
  io.run();
  g_telemetry_dp = nullptr;
  control_server.close();
  metrics_server.close();
}

}  // namespace stakegate
