// `stakegate run`: the appliance. The EAL main lcore supervises (stats, signals); each
// worker lcore owns one RX/TX queue pair per port and runs
//   RX outside -> parse/classify/police -> TX inside;  RX inside -> count -> TX outside.
#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <sched.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <fstream>
#include <thread>

#include "args.h"
#include "commands.h"
#include "stakegate/config/policy.h"
#include "stakegate/pipeline/worker.h"
#include "stakegate/report/counters.h"

namespace stakegate {
namespace {

__extension__ typedef unsigned __int128 u128;
constexpr unsigned kMaxBurst = 256;
std::atomic<bool> g_stop{false};

extern "C" void on_signal(int) { g_stop.store(true, std::memory_order_relaxed); }

struct PortIo {
  uint16_t port = 0;
  uint16_t rx_queues = 0;  // 0: the device cannot receive (e.g. a tx-only net_pcap)
  uint16_t tx_queues = 0;
};

struct WorkerCtx {
  Worker* worker;
  uint16_t queue;
  PortIo outside, inside;
  unsigned burst;
  uint64_t tsc_start;
  uint64_t ns_per_tsc_q32;  // ns = (tsc delta * ns_per_tsc_q32) >> 32: no division per burst
  uint64_t tx_dropped[kDirectionCount];
};

// Transmits what it can and frees the rest, counting it.
inline void send_or_free(uint16_t port, uint16_t queue, rte_mbuf** pkts, uint16_t n, uint64_t& dropped) {
  if (n == 0) return;
  uint16_t sent = rte_eth_tx_burst(port, queue, pkts, n);
  if (sent < n) {
    rte_pktmbuf_free_bulk(pkts + sent, n - sent);
    dropped += n - sent;
  }
}

int worker_main(void* arg) {
  auto* ctx = static_cast<WorkerCtx*>(arg);
  Worker& w = *ctx->worker;
  rte_mbuf* rx[kMaxBurst];
  rte_mbuf* pass[kMaxBurst];
  rte_mbuf* drop[kMaxBurst];
  PacketView views[kMaxBurst];
  Verdict verdicts[kMaxBurst];
  const uint16_t q = ctx->queue;
  const bool out_rx = q < ctx->outside.rx_queues, in_rx = q < ctx->inside.rx_queues;
  const bool out_tx = q < ctx->outside.tx_queues, in_tx = q < ctx->inside.tx_queues;

  while (!g_stop.load(std::memory_order_relaxed)) {
    if (out_rx) {
      uint16_t n = rte_eth_rx_burst(ctx->outside.port, q, rx, static_cast<uint16_t>(ctx->burst));
      if (n) {
        for (uint16_t i = 0; i < n; ++i) views[i] = {rte_pktmbuf_mtod(rx[i], const uint8_t*), rte_pktmbuf_data_len(rx[i])};
        uint64_t now_ns = static_cast<uint64_t>(
            (static_cast<u128>(rte_rdtsc() - ctx->tsc_start) * ctx->ns_per_tsc_q32) >> 32);
        w.process_outside(views, n, now_ns, verdicts);
        uint16_t np = 0, nd = 0;
        for (uint16_t i = 0; i < n; ++i) (verdicts[i] == Verdict::kPass ? pass[np++] : drop[nd++]) = rx[i];
        if (nd) rte_pktmbuf_free_bulk(drop, nd);
        if (in_tx) send_or_free(ctx->inside.port, q, pass, np, ctx->tx_dropped[0]);
        else if (np) { rte_pktmbuf_free_bulk(pass, np); ctx->tx_dropped[0] += np; }
      }
    }
    if (in_rx) {
      uint16_t n = rte_eth_rx_burst(ctx->inside.port, q, rx, static_cast<uint16_t>(ctx->burst));
      if (n) {
        for (uint16_t i = 0; i < n; ++i) views[i] = {rte_pktmbuf_mtod(rx[i], const uint8_t*), rte_pktmbuf_data_len(rx[i])};
        w.count_inside(views, n);
        if (out_tx) send_or_free(ctx->outside.port, q, rx, n, ctx->tx_dropped[1]);
        else { rte_pktmbuf_free_bulk(rx, n); ctx->tx_dropped[1] += n; }
      }
    }
  }
  return 0;
}

std::vector<std::string> eal_args(const Config& cfg) {
  std::vector<std::string> a{"stakegate"};
  bool prefix = false, cores = false;
  for (const auto& x : cfg.dataplane.eal) {
    prefix = prefix || x == "--file-prefix";
    cores = cores || x == "-l" || x == "-c" || x == "--lcores";
    a.push_back(x);
  }
  // A unique prefix lets several gateways (and tests) run side by side without hugepage files clashing.
  if (!prefix) { a.push_back("--file-prefix"); a.push_back("stakegate-" + std::to_string(getpid())); }
  if (!cores) {
    // lcore 0 (control) on the first allowed CPU, workers on the others; with fewer
    // CPUs than lcores, workers share (and say so) rather than refuse to start.
    cpu_set_t set;
    CPU_ZERO(&set);
    std::vector<int> cpus;
    if (sched_getaffinity(0, sizeof set, &set) == 0)
      for (int c = 0; c < CPU_SETSIZE; ++c)
        if (CPU_ISSET(c, &set)) cpus.push_back(c);
    if (cpus.empty()) cpus.push_back(0);
    std::string map = "0@" + std::to_string(cpus[0]);
    for (unsigned w = 1; w <= cfg.dataplane.workers; ++w) {
      int cpu = cpus.size() > 1 ? cpus[1 + (w - 1) % (cpus.size() - 1)] : cpus[0];
      map += "," + std::to_string(w) + "@" + std::to_string(cpu);
    }
    if (cfg.dataplane.workers + 1 > cpus.size())
      spdlog::warn("{} worker(s) + 1 control lcore on {} CPU(s): lcores share CPUs ({})", cfg.dataplane.workers,
                   cpus.size(), map);
    a.push_back("--lcores");
    a.push_back(map);
  }
  for (const PortSpec* p : {&cfg.dataplane.outside, &cfg.dataplane.inside}) {
    if (!p->vdev.empty()) { a.push_back("--vdev"); a.push_back(p->vdev); }
    else { a.push_back("-a"); a.push_back(p->pci); }
  }
  return a;
}

PortIo setup_port(const Config& cfg, const char* which, const PortSpec& spec, rte_mempool* pool) {
  PortIo io;
  const std::string name = spec.name();
  if (rte_eth_dev_get_port_by_name(name.c_str(), &io.port) != 0)
    throw std::runtime_error(cfg.file + ": dataplane." + which + ": no DPDK port named '" + name + "'");
  rte_eth_dev_info info{};
  if (int rc = rte_eth_dev_info_get(io.port, &info); rc != 0)
    throw std::runtime_error(name + ": cannot read device info: " + rte_strerror(-rc));
  const unsigned workers = cfg.dataplane.workers;
  io.rx_queues = static_cast<uint16_t>(std::min<unsigned>(workers, info.max_rx_queues));
  io.tx_queues = static_cast<uint16_t>(std::min<unsigned>(workers, info.max_tx_queues));
  if (std::string(which) == "outside" && io.rx_queues < workers && info.max_rx_queues > 0)
    throw std::runtime_error(cfg.file + ": dataplane.workers: " + std::to_string(workers) + " workers need " +
                             std::to_string(workers) + " RX queues, but " + name + " has " +
                             std::to_string(info.max_rx_queues));
  rte_eth_conf conf{};
  if (int rc = rte_eth_dev_configure(io.port, io.rx_queues, io.tx_queues, &conf); rc != 0)
    throw std::runtime_error(name + ": configure failed: " + rte_strerror(-rc));
  uint16_t nrx = static_cast<uint16_t>(cfg.dataplane.rx_desc), ntx = static_cast<uint16_t>(cfg.dataplane.tx_desc);
  rte_eth_dev_adjust_nb_rx_tx_desc(io.port, &nrx, &ntx);
  int socket = rte_eth_dev_socket_id(io.port);
  for (uint16_t q = 0; q < io.rx_queues; ++q)
    if (int rc = rte_eth_rx_queue_setup(io.port, q, nrx, socket, nullptr, pool); rc != 0)
      throw std::runtime_error(name + ": RX queue setup failed: " + rte_strerror(-rc));
  for (uint16_t q = 0; q < io.tx_queues; ++q)
    if (int rc = rte_eth_tx_queue_setup(io.port, q, ntx, socket, nullptr); rc != 0)
      throw std::runtime_error(name + ": TX queue setup failed: " + rte_strerror(-rc));
  if (int rc = rte_eth_dev_start(io.port); rc != 0)
    throw std::runtime_error(name + ": start failed: " + rte_strerror(-rc));
  rte_eth_promiscuous_enable(io.port);  // a bump in the wire accepts every destination MAC; vdevs may refuse, harmlessly
  spdlog::info("port {} ({}): {} RX / {} TX queues", which, name, io.rx_queues, io.tx_queues);
  return io;
}

uint64_t relaxed(const uint64_t& x) { return __atomic_load_n(&x, __ATOMIC_RELAXED); }

// Reads the workers' counters while they run: each value is written by one worker only,
// and a relaxed load of an aligned 64-bit word is never torn.
Totals live_totals(const std::vector<std::unique_ptr<Worker>>& workers) {
  Totals t;
  for (const auto& w : workers) {
    const WorkerCounters& c = w->counters();
    for (int d = 0; d < kDirectionCount; ++d)
      for (int k = 0; k < kTrafficClassCount; ++k)
        for (int v = 0; v < kVerdictCount; ++v) t.c.packets[d][k][v] += relaxed(c.packets[d][k][v]);
  }
  return t;
}

std::string summary(const Totals& t, uint64_t tx_dropped) {
  uint64_t passed = 0;
  for (int k = 0; k < kTrafficClassCount; ++k) passed += t.count(Direction::kOutside, static_cast<TrafficClass>(k), Verdict::kPass);
  std::string s = fmt::format("outside rx {} pass {} drop {}", t.packets(Direction::kOutside), passed,
                              t.packets(Direction::kOutside) - passed);
  std::string reasons;
  for (int v = 1; v < kVerdictCount; ++v)
    if (uint64_t d = t.drops(static_cast<Verdict>(v))) reasons += fmt::format("{}{} {}", reasons.empty() ? "" : ", ", verdict_name(static_cast<Verdict>(v)), d);
  if (!reasons.empty()) s += " (" + reasons + ")";
  s += fmt::format(" | inside rx {} | tx dropped {}", t.packets(Direction::kInside), tx_dropped);
  return s;
}

}  // namespace

int cmd_run(const std::vector<std::string>& args) {
  spdlog::set_default_logger(spdlog::stderr_color_mt("stakegate"));  // stdout carries results only
  std::map<std::string, std::string> flags;
  LoadedPolicy p;
  try {
    flags = parse_flags(args, {"--config", "--report", "--exit-on-idle"});
    if (!flags.count("--config")) throw UsageError("run needs --config FILE");
    p = load_policy(flags["--config"]);
  } catch (const UsageError& e) {
    std::fprintf(stderr, "stakegate run: %s\nusage: stakegate run --config FILE [--report R.json] [--exit-on-idle SECONDS]\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "stakegate: %s\n", e.what());
    return 1;
  }
  for (const auto& w : p.warnings) spdlog::warn("{}", w);
  double idle_exit_s = flags.count("--exit-on-idle") ? std::stod(flags["--exit-on-idle"]) : 0;

  auto args_v = eal_args(p.cfg);
  std::vector<char*> argv;
  for (auto& a : args_v) argv.push_back(a.data());
  if (rte_eal_init(static_cast<int>(argv.size()), argv.data()) < 0) {
    spdlog::error("EAL init failed: {} (EAL arguments come from dataplane.eal in {})", rte_strerror(rte_errno), p.cfg.file);
    return 1;
  }
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);

  const unsigned nworkers = p.cfg.dataplane.workers;
  int rc = 0;
  std::vector<std::unique_ptr<Worker>> workers;
  std::vector<WorkerCtx> ctxs(nworkers);
  PortIo outside, inside;
  bool ports_started = false;
  try {
    if (rte_lcore_count() < nworkers + 1)
      throw std::runtime_error(fmt::format("{}: dataplane.workers: {} workers need {} lcores, EAL has {}", p.cfg.file,
                                           nworkers, nworkers + 1, rte_lcore_count()));
    rte_mempool* pool = rte_pktmbuf_pool_create(
        "stakegate_mbufs", p.cfg.dataplane.mbufs, 256, 0,
        static_cast<uint16_t>(p.cfg.dataplane.mbuf_data_room + RTE_PKTMBUF_HEADROOM), static_cast<int>(rte_socket_id()));
    if (!pool) throw std::runtime_error(std::string("mbuf pool: ") + rte_strerror(rte_errno));
    outside = setup_port(p.cfg, "outside", p.cfg.dataplane.outside, pool);
    inside = setup_port(p.cfg, "inside", p.cfg.dataplane.inside, pool);
    ports_started = true;

    auto snap = PolicySnapshot::build(p.cfg, p.plan, nworkers);
    if (nworkers > 1)
      spdlog::warn("{} workers without RSS on source IP: each enforces rate / {} per source", nworkers, nworkers);
    uint64_t hz = rte_get_tsc_hz();
    uint64_t q32 = static_cast<uint64_t>((static_cast<u128>(1'000'000'000ull) << 32) / hz);
    uint64_t tsc0 = rte_rdtsc();
    unsigned lcore = rte_get_next_lcore(-1, 1, 0);
    for (unsigned i = 0; i < nworkers; ++i, lcore = rte_get_next_lcore(lcore, 1, 0)) {
      workers.push_back(std::make_unique<Worker>(p.cfg.unregistered.table_size, tsc0 + i));
      workers.back()->bind(snap);
      ctxs[i] = WorkerCtx{workers.back().get(), static_cast<uint16_t>(i), outside, inside,
                          std::min(p.cfg.dataplane.burst, kMaxBurst), tsc0, q32, {0, 0}};
      if (int lrc = rte_eal_remote_launch(worker_main, &ctxs[i], lcore); lrc != 0)
        throw std::runtime_error(fmt::format("cannot launch worker on lcore {}: {}", lcore, rte_strerror(-lrc)));
    }
    spdlog::info("stakegate {} forwarding: {} nodes in {} sources, {} worker(s)", STAKEGATE_VERSION, p.nodes.size(),
                 p.plan.sources.size(), nworkers);

    auto last_report = std::chrono::steady_clock::now();
    auto last_change = last_report;
    uint64_t last_rx = 0, reported_rx = 0;
    const auto interval = std::chrono::duration<double>(p.cfg.dataplane.stats_interval_s);
    while (!g_stop.load()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      auto now = std::chrono::steady_clock::now();
      Totals t = live_totals(workers);
      uint64_t rx = t.packets(Direction::kOutside) + t.packets(Direction::kInside);
      if (rx != last_rx) { last_rx = rx; last_change = now; }
      if (now - last_report >= interval) {
        uint64_t txd = 0;
        for (const auto& c : ctxs) txd += relaxed(c.tx_dropped[0]) + relaxed(c.tx_dropped[1]);
        uint64_t out_rx = t.packets(Direction::kOutside);
        double secs = std::chrono::duration<double>(now - last_report).count();
        spdlog::info("{} | outside rate {:.3f} Mpps", summary(t, txd), (out_rx - reported_rx) / secs / 1e6);
        reported_rx = out_rx;
        last_report = now;
      }
      if (idle_exit_s > 0 && rx > 0 && now - last_change >= std::chrono::duration<double>(idle_exit_s)) {
        spdlog::info("no packet for {} s: stopping (--exit-on-idle)", idle_exit_s);
        g_stop.store(true);
      }
    }
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    rc = 1;
    g_stop.store(true);
  }
  rte_eal_mp_wait_lcore();

  Totals t;
  uint64_t txd = 0;
  for (const auto& w : workers) t.add(*w);
  for (const auto& c : ctxs) txd += c.tx_dropped[0] + c.tx_dropped[1];
  if (!workers.empty()) {
    spdlog::info("final: {}", summary(t, txd));
    for (const auto& [name, io] : {std::pair{"outside", outside}, std::pair{"inside", inside}}) {
      rte_eth_stats st{};
      if (rte_eth_stats_get(io.port, &st) == 0)
        spdlog::info("port {}: ipackets {} opackets {} imissed {} rx_nombuf {} oerrors {}", name, st.ipackets,
                     st.opackets, st.imissed, st.rx_nombuf, st.oerrors);
    }
    std::printf("%s", role_table(t).c_str());
    std::fflush(stdout);
    if (flags.count("--report")) {
      std::ofstream r(flags["--report"]);
      auto j = make_report(t, p.nodes, p.plan);
      j["tx_dropped"] = txd;
      if (r) r << j.dump(2) << "\n";
      else { spdlog::error("{}: cannot write report", flags["--report"]); rc = 1; }
    }
  }
  if (ports_started) {
    for (uint16_t port : {outside.port, inside.port}) {
      rte_eth_dev_stop(port);  // net_pcap flushes its tx_pcap here
      rte_eth_dev_close(port);
    }
  }
  rte_eal_cleanup();
  return rc;
}

}  // namespace stakegate
