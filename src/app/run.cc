// `stakegate run`: the appliance. The EAL main lcore runs the control plane
// (control_loop.h); each worker lcore runs the packet loop (lcore_loop.h) on one RX/TX
// queue pair per port, reading the policy through an RCU-published snapshot pointer
// (rcu_publisher.h).
#include <rte_eal.h>
#include <rte_errno.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <csignal>
#include <cstdio>
#include <fstream>
#include <optional>

#include "commands.h"
#include "control_loop.h"
#include "stakegate/identity/resolve.h"
#include "dataplane.h"
#include "eal.h"
#include "rcu_publisher.h"
#include "run_signals.h"
#include "vdev_ports.h"
#include "stakegate/base/files.h"
#include "stakegate/base/json_text.h"
#include "stakegate/control/access.h"
#include "stakegate/control/evidence_service.h"
#include "stakegate/control/http_server.h"
#include "stakegate/policy/load.h"

namespace stakegate {
namespace {

// Everything that can be refused is refused before DPDK touches a device.
struct Prepared {
  LoadedPolicy policy;
  ControlTokens tokens;
};

// A folder the gateway writes into while it runs, tried at start: a problem with it is
// said now, not at the first block or case. It is a warning: the gateway runs without it
// (forwarding comes first), and says so again when it tries to write there.
void check_writable(const std::string& file, const std::string& key, const std::string& dir, const char* loss) {
  if (dir.empty()) return;
  if (std::string problem = folder_problem(dir); !problem.empty())
    spdlog::warn("{}: {}: {}: {}", file, key, problem, loss);
}

Prepared prepare(const RunOptions& o) {
  NameCache::process().persist(true);  // the last known addresses of DNS names, in state_dir/dns.json
  Prepared p{load_policy(o.config), {}};
  check_pcap_inputs(p.policy.cfg);
  const Config& cfg = p.policy.cfg;
  check_writable(cfg.file, "state_dir", cfg.state_dir,
                 "blocks made through the API, fetched identity tables and DNS answers will not survive a restart");
  check_writable(cfg.file, "evidence.dir", cfg.evidence.dir, "evidence cases will record the error instead of a bundle");
  p.tokens = check_control_files(cfg.control, cfg.file);  // tokens, groups, socket folders, TLS files, or refused
  // A second gateway on this config (a manual run while the service runs): refused before
  // it touches a device, rather than forwarding beside the first and taking its socket.
  for (const auto& [key, path] : {std::pair{"control.socket", cfg.control.socket},
                                  std::pair{"control.readonly_socket", cfg.control.readonly_socket}})
    if (!path.empty() && unix_socket_answers(path))
      throw std::runtime_error(cfg.file + ": " + key + ": " + path + ": another process serves it (a gateway already "
                               "running on this config?): stop it first, or give this one its own " + key);
  for (const auto& w : p.policy.warnings) spdlog::warn("{}", w);
  return p;
}

bool init_eal(const Config& cfg) {
  auto args = eal_args(cfg);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  if (rte_eal_init(static_cast<int>(argv.size()), argv.data()) >= 0) return true;
  spdlog::error("EAL init failed: {} (EAL arguments come from dataplane.eal in {})", rte_strerror(rte_errno), cfg.file);
  return false;
}

void log_steering(const DataPlane& dp, unsigned workers) {
  if (workers > 1 && dp.outside().rss) {
    spdlog::info("{} workers with RSS on the remote address (outside: source, inside: destination; one key and "
                 "redirection table): each remote address reaches one worker, which enforces its whole rate and holds "
                 "its sessions", workers);
    if (dp.outside().prefix64)
      spdlog::info("IPv6 addresses are hashed on their /64: an unregistered IPv6 source's /64 reaches one worker");
    else
      spdlog::warn("the ports cannot hash IPv6 addresses on their /64 alone (RTE_ETH_RSS_L3_PRE64): one unregistered "
                   "IPv6 source's addresses reach every worker, each with a bucket for its /64, so it may pass up to "
                   "{} x unregistered.per_source_pps (docs/deployment.md, \"Several workers\")", workers);
  } else if (workers > 1)
    spdlog::warn("{} workers without RSS ({}): a source's packets may reach every worker, so each enforces rate / {}; "
                 "a reply finds its session only on the worker that saw the cluster's packet (docs/deployment.md, "
                 "\"Several workers\")", workers, dp.outside().rss_note, workers);
}

// The final counters: the log line, the port figures, the per-class table on stdout and --report.
bool final_report(const DataPlane& dp, const PolicyState& state, const std::string& report_path) {
  Totals t = dp.totals(true);
  const uint64_t txd = dp.tx_dropped(Direction::kOutside) + dp.tx_dropped(Direction::kInside);
  spdlog::info("final: {}{}", summary_line(t, txd),
               dp.monitor_forwarded() ? fmt::format(" | monitor mode forwarded {} against their verdict", dp.monitor_forwarded())
                                      : std::string());
  for (const PortIo* io : {&dp.outside(), &dp.inside()}) {
    PortStats st = port_stats(*io);
    spdlog::info("port {}: ipackets {} opackets {} imissed {} rx_nombuf {} oerrors {}",
                 io == &dp.outside() ? "outside" : "inside", st.ipackets, st.opackets, st.imissed, st.rx_nombuf, st.oerrors);
  }
  std::printf("%s", role_table(t).c_str());
  std::fflush(stdout);
  if (report_path.empty()) return true;
  auto j = make_report(t, state.nodes(), state.plan());
  j["tx_dropped"] = txd;
  j["identity_generation"] = state.generation();
  j["mode"] = mode_name(state.config().monitor);
  j["monitor_forwarded"] = dp.monitor_forwarded();
  std::ofstream r(report_path);
  if (r) r << json_text(j, 2) << "\n";
  if (r.good()) return true;
  spdlog::error("{}: cannot write report", report_path);
  return false;
}

}  // namespace

int cmd_run(const RunOptions& o) {
  spdlog::set_default_logger(spdlog::stderr_color_mt("stakegate"));  // stdout carries results only
  note_run_signals();
  // Whoever reads the log (a pipe to a collector, a terminal's `| tee`) may go away: a
  // write to it must fail, not end the gateway and cut off every node behind it. (systemd
  // ignores SIGPIPE for its services by default; containers and shells do not.)
  std::signal(SIGPIPE, SIG_IGN);
  Prepared p;
  try {
    p = prepare(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "stakegate: %s\n", e.what());
    return 1;
  }
  if (int sig = g_stop_signal.load()) {  // asked to stop before any device was touched
    spdlog::info("signal {} while starting: stopping", sig);
    return 0;
  }
  const AfPacketInterfaces offloads(p.policy.cfg);  // until after the EAL's cleanup closes the packet sockets
  if (!init_eal(p.policy.cfg)) return 1;
  int rc = 0;
  {
    const unsigned workers = p.policy.cfg.dataplane.workers;
    const size_t capacity = p.policy.cfg.limits_sources;
    std::unique_ptr<DataPlane> dp;
    std::unique_ptr<RcuPublisher> publisher;
    std::unique_ptr<PolicyState> state;
    std::unique_ptr<EvidenceService> evidence;
    auto log = [](bool warning, const std::string& m) { warning ? spdlog::warn("{}", m) : spdlog::info("{}", m); };
    try {
      dp = std::make_unique<DataPlane>(p.policy.cfg);
      publisher = std::make_unique<RcuPublisher>(workers);
      const size_t nodes = p.policy.nodes.size();
      const std::string state_dir = p.policy.cfg.state_dir;
      state = std::make_unique<PolicyState>(std::move(p.policy), workers, capacity, publisher.get(),
                                            dp->outside().rss ? 1 : workers);
      if (!state_dir.empty()) {
        state->persist_blocks_in(state_dir);
        for (const auto& w : state->restore_blocks()) {
          if (w.rfind("restored", 0) == 0) spdlog::info("{}", w);
          else spdlog::warn("{}", w);
        }
        std::vector<std::string> info, warnings;
        state->restore_identity(info, warnings);
        for (const auto& m : info) spdlog::info("{}", m);
        for (const auto& w : warnings) spdlog::warn("{}", w);
      }
      log_steering(*dp, workers);
      dp->create_workers(*state, *publisher);
      evidence = std::make_unique<EvidenceService>(*state, dp->workers(),
                                                   [plane = dp.get()](uint64_t ns) { return plane->unix_ns_of(ns); },
                                                   STAKEGATE_VERSION, log);
      dp->launch();
      spdlog::info("stakegate {} forwarding: {} nodes in {} sources (capacity {}), {} worker(s), config {}",
                   STAKEGATE_VERSION, nodes, state->plan().sources.size(), state->source_capacity(), workers,
                   state->config().file);
      run_control_loop(*state, *dp, *publisher, *evidence, {o.exit_on_idle_s, STAKEGATE_VERSION, p.tokens});
    } catch (const std::exception& e) {
      spdlog::error("{}", e.what());
      rc = 1;
    }
    if (dp) dp->stop();
    if (evidence) evidence->tick(true);  // what the rings still hold; open cases are written now
    if (dp && state && !dp->workers().empty() && !final_report(*dp, *state, o.report)) rc = 1;
    evidence.reset();
    state.reset();
    dp.reset();  // stops the ports (net_pcap flushes its tx_pcap)
    publisher.reset();
  }
  rte_eal_cleanup();
  return rc;
}

}  // namespace stakegate
