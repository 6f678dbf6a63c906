// `stakegate run`: the appliance. The EAL main lcore runs the control plane (one
// Boost.Asio io_context: API, metrics, signals, timers); each worker lcore owns one
// RX/TX queue pair per port and runs
//   RX outside -> parse/classify/police -> TX inside;  RX inside -> count -> TX outside,
// reading the policy through an atomically swapped snapshot pointer, reclaimed with
// rte_rcu_qsbr once every worker has passed a quiescent point (once per loop).
#include <utility>  // before Boost.Asio (Boost 1.74 + C++20)

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_rcu_qsbr.h>
#include <rte_telemetry.h>
#include <sched.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <set>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <deque>
#include <filesystem>
#include <fstream>
#include <thread>

#include "args.h"
#include "commands.h"
#include "stakegate/config/policy.h"
#include "stakegate/control/api.h"
#include "stakegate/control/http_server.h"
#include "stakegate/control/metrics.h"
#include "stakegate/control/policy_state.h"
#include "stakegate/pipeline/worker.h"
#include "stakegate/report/counters.h"

namespace stakegate {
namespace {

__extension__ typedef unsigned __int128 u128;
constexpr unsigned kMaxBurst = 256;
std::atomic<bool> g_stop{false};

struct PortIo {
  uint16_t port = 0;
  uint16_t rx_queues = 0;  // 0: the device cannot receive (e.g. a tx-only net_pcap)
  uint16_t tx_queues = 0;
  uint16_t rx_desc = 0, tx_desc = 0;  // per queue, as the device adjusted them
  bool rss = false;       // the outside port spreads sources over workers by source address
  std::string rss_note;   // why not, when several workers run without it
};

struct WorkerCtx {
  Worker* worker;
  uint16_t queue;
  PortIo outside, inside;
  unsigned burst;
  uint64_t tsc_start;
  uint64_t ns_per_tsc_q32;  // ns = (tsc delta * ns_per_tsc_q32) >> 32: no division per burst
  const std::atomic<const PolicySnapshot*>* policy;
  rte_rcu_qsbr* rcu;
  alignas(64) uint64_t tx_dropped[kDirectionCount];
  uint64_t busy_tsc;   // TSC spent in loop iterations that carried packets
  uint64_t total_tsc;
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

  const PolicySnapshot* bound = nullptr;
  rte_rcu_qsbr_thread_online(ctx->rcu, q);
  uint64_t last = rte_rdtsc();
  while (!g_stop.load(std::memory_order_relaxed)) {
    // A new snapshot is adopted between bursts; quiescent() below tells the control
    // plane this worker holds no reference to any older one.
    const PolicySnapshot* current = ctx->policy->load(std::memory_order_acquire);
    if (current != bound) {
      w.bind(current);
      bound = current;
    }
    bool carried = false;
    if (out_rx) {
      uint16_t n = rte_eth_rx_burst(ctx->outside.port, q, rx, static_cast<uint16_t>(ctx->burst));
      if (n) {
        carried = true;
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
        carried = true;
        for (uint16_t i = 0; i < n; ++i) views[i] = {rte_pktmbuf_mtod(rx[i], const uint8_t*), rte_pktmbuf_data_len(rx[i])};
        w.count_inside(views, n);
        if (out_tx) send_or_free(ctx->outside.port, q, rx, n, ctx->tx_dropped[1]);
        else { rte_pktmbuf_free_bulk(rx, n); ctx->tx_dropped[1] += n; }
      }
    }
    rte_rcu_qsbr_quiescent(ctx->rcu, q);
    uint64_t now = rte_rdtsc();
    // The worker's clock for readers on other threads (scores decay by it), idle or not.
    w.tick(static_cast<uint64_t>((static_cast<u128>(now - ctx->tsc_start) * ctx->ns_per_tsc_q32) >> 32));
    if (carried) ctx->busy_tsc += now - last;
    ctx->total_tsc += now - last;
    last = now;
  }
  rte_rcu_qsbr_thread_offline(ctx->rcu, q);
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
    // CPUs than lcores, workers share (and say so) rather than refuse to start. The
    // control lcore mostly sleeps, so a worker left over goes on its CPU first.
    cpu_set_t set;
    CPU_ZERO(&set);
    std::vector<int> cpus;
    if (sched_getaffinity(0, sizeof set, &set) == 0)
      for (int c = 0; c < CPU_SETSIZE; ++c)
        if (CPU_ISSET(c, &set)) cpus.push_back(c);
    if (cpus.empty()) cpus.push_back(0);
    std::string map = "0@" + std::to_string(cpus[0]);
    for (unsigned w = 1; w <= cfg.dataplane.workers; ++w) {
      int cpu = cpus[w % cpus.size()];
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
  if (std::string(which) == "outside" && io.rx_queues > 1) {
    // RSS on the source address alone sends each source to one worker, which can then
    // enforce the source's whole rate. It needs the NIC to hash on L3 source only.
    const uint64_t want = RTE_ETH_RSS_IPV4 | RTE_ETH_RSS_FRAG_IPV4 | RTE_ETH_RSS_NONFRAG_IPV4_TCP |
                          RTE_ETH_RSS_NONFRAG_IPV4_UDP | RTE_ETH_RSS_NONFRAG_IPV4_OTHER | RTE_ETH_RSS_IPV6 |
                          RTE_ETH_RSS_FRAG_IPV6 | RTE_ETH_RSS_NONFRAG_IPV6_TCP | RTE_ETH_RSS_NONFRAG_IPV6_UDP |
                          RTE_ETH_RSS_NONFRAG_IPV6_OTHER;
    const uint64_t have = info.flow_type_rss_offloads;
    if (!cfg.dataplane.rss) {
      io.rss_note = "dataplane.rss is off";
    } else if (!(have & RTE_ETH_RSS_L3_SRC_ONLY) || !(have & RTE_ETH_RSS_IPV4)) {
      io.rss_note = fmt::format("{} cannot hash on the source address alone (RSS offloads 0x{:x})", name, have);
    } else {
      conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
      conf.rx_adv_conf.rss_conf.rss_key = nullptr;  // the driver's default key
      conf.rx_adv_conf.rss_conf.rss_hf = (want & have) | RTE_ETH_RSS_L3_SRC_ONLY;
      io.rss = true;
    }
  }
  if (int rc = rte_eth_dev_configure(io.port, io.rx_queues, io.tx_queues, &conf); rc != 0)
    throw std::runtime_error(name + ": configure failed: " + rte_strerror(-rc));
  uint16_t nrx = static_cast<uint16_t>(cfg.dataplane.rx_desc), ntx = static_cast<uint16_t>(cfg.dataplane.tx_desc);
  rte_eth_dev_adjust_nb_rx_tx_desc(io.port, &nrx, &ntx);
  io.rx_desc = nrx;
  io.tx_desc = ntx;
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
  spdlog::info("port {} ({}): {} RX / {} TX queues{}", which, name, io.rx_queues, io.tx_queues,
               io.rss ? ", RSS on the source address" : "");
  return io;
}

constexpr unsigned kPoolCache = 256;  // mbufs cached per lcore (DPDK lets a cache grow to 1.5x)

unsigned ring_mbufs(const PortIo& io) { return io.rx_queues * io.rx_desc + io.tx_queues * io.tx_desc; }

uint64_t relaxed(const uint64_t& x) { return __atomic_load_n(&x, __ATOMIC_RELAXED); }

std::string summary(const Totals& t, uint64_t tx_dropped) {
  uint64_t passed = 0;
  for (int k = 0; k < kTrafficClassCount; ++k) passed += t.count(Direction::kOutside, static_cast<TrafficClass>(k), Verdict::kPass);
  std::string s = fmt::format("outside rx {} pass {} drop {}", t.packets(Direction::kOutside), passed,
                              t.packets(Direction::kOutside) - passed);
  std::string reasons;
  for (int v = 1; v < kVerdictCount; ++v)
    if (uint64_t d = t.drops(static_cast<Verdict>(v)))
      reasons += fmt::format("{}{} {}", reasons.empty() ? "" : ", ", verdict_name(static_cast<Verdict>(v)), d);
  if (!reasons.empty()) s += " (" + reasons + ")";
  s += fmt::format(" | inside rx {} | tx dropped {}", t.packets(Direction::kInside), tx_dropped);
  return s;
}

std::string read_token(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("control.token_file: cannot read '" + path + "'");
  std::string token;
  std::getline(in, token);
  while (!token.empty() && (token.back() == '\r' || token.back() == ' ')) token.pop_back();
  if (token.size() < 16) throw std::runtime_error("control.token_file: '" + path + "' holds a token shorter than 16 characters");
  return token;
}

// The running gateway as the control plane sees it: publishes snapshots to the workers,
// reclaims replaced ones after an RCU grace period, and reads the workers' counters.
class Gateway : public GatewayView {
 public:
  explicit Gateway(rte_rcu_qsbr* rcu) : rcu_(rcu) {}

  void publish(std::shared_ptr<const PolicySnapshot> snap) {
    auto old = std::move(current_);
    current_ = std::move(snap);
    pointer_.store(current_.get(), std::memory_order_release);
    generation_.store(current_->generation, std::memory_order_relaxed);
    // The grace period starts after the store: a worker quiescent since then cannot hold `old`.
    if (old) retired_.push_back({std::move(old), rte_rcu_qsbr_start(rcu_)});
  }
  // Frees replaced snapshots every worker has moved past. Cheap: called from a timer.
  void reclaim() {
    while (!retired_.empty() && rte_rcu_qsbr_check(rcu_, retired_.front().token, false) == 1) retired_.pop_front();
  }
  const std::atomic<const PolicySnapshot*>* pointer() const { return &pointer_; }

  void attach(std::vector<std::unique_ptr<Worker>>* workers, std::vector<WorkerCtx>* ctxs) {
    workers_ = workers;
    ctxs_ = ctxs;
  }

  // Peer score and evidence, on the control thread: the workers' rings are drained on
  // every tick; cases are written here, never on a worker.
  // Call right after the workers' clock origin (tsc0) is taken: Unix time of their clock 0.
  void attach_evidence(PolicyState* state) {
    state_ = state;
    unix_ns0_ = static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch()).count());
    auto log = [](bool warning, const std::string& m) {
      if (warning) spdlog::warn("{}", m);
      else spdlog::info("{}", m);
    };
    gray_ = std::make_unique<GraylistTracker>(log);
    const Config& c = state->config();
    rec_ = std::make_unique<EvidenceRecorder>(c.evidence, c.operator_info, c.scoring, STAKEGATE_VERSION,
                                              [this](uint64_t ns) { return unix_ns0_ + ns; }, log);
    for (auto& w : *workers_) {
      wptrs_.push_back(w.get());
      cwptrs_.push_back(w.get());
    }
  }
  double unix_of(uint64_t ns) const override { return static_cast<double>(unix_ns0_ + ns) / 1e9; }

  void evidence_tick(bool close_all = false) {
    if (!rec_) return;
    refresh_directory();
    drain_evidence(wptrs_, dir_, *gray_, *rec_);
    if (close_all) rec_->tick(dir_, dir_.now(), true);
    // Operator cases that closed stop sampling their node.
    for (auto it = operator_nodes_.begin(); it != operator_nodes_.end();) {
      bool open = false;
      for (const auto& c : rec_->cases()) open |= c.open && c.reason == "operator" && c.node_id == *it;
      if (open || close_all) {
        ++it;
        continue;
      }
      try {
        state_->set_evidence(*it, false);
      } catch (const std::exception& e) {
        spdlog::warn("evidence: cannot stop sampling {}: {}", *it, e.what());
      }
      it = operator_nodes_.erase(it);
    }
  }
  uint64_t samples_lost() const {
    uint64_t n = 0;
    for (Worker* w : wptrs_) n += w->samples().lost();
    return n;
  }
  uint64_t samples_written() const { return rec_ ? rec_->samples_written() : 0; }

  std::optional<SourceView> source_view(const std::string& node_id) override {
    if (!rec_) return std::nullopt;
    refresh_directory();
    auto v = dir_.by_node(node_id);
    if (v) v->graylisted = gray_->contains(v->slot);
    return v;
  }
  std::vector<GraylistEntry> graylisted() override {
    std::vector<GraylistEntry> out;
    if (gray_)
      for (const auto& [slot, e] : gray_->entries()) out.push_back(e);
    return out;
  }
  std::pair<uint64_t, uint64_t> graylist_transitions() const override {
    return gray_ ? std::pair{gray_->entered(), gray_->exited()} : std::pair<uint64_t, uint64_t>{0, 0};
  }
  CaseSummary open_evidence(const std::string& node_id) override {
    refresh_directory();
    auto v = dir_.by_node(node_id);
    if (!v) throw OpError("not_found", "node " + node_id + " is not in the identity table");
    state_->set_evidence(node_id, true);  // its source's dropped packets are sampled from now on
    wait_applied();
    operator_nodes_.insert(node_id);
    refresh_directory();
    return rec_->open(*v, "operator", dir_.now());
  }
  std::vector<CaseSummary> evidence_cases() const override { return rec_ ? rec_->cases() : std::vector<CaseSummary>{}; }
  std::pair<uint64_t, uint64_t> evidence_counts() const override {
    return rec_ ? std::pair{rec_->opened(), rec_->errors()} : std::pair<uint64_t, uint64_t>{0, 0};
  }

  Totals totals(bool with_sources) const override {
    Totals t;
    if (!workers_) return t;
    for (const auto& w : *workers_) {
      const WorkerCounters& c = w->counters();
      for (int d = 0; d < kDirectionCount; ++d)
        for (int k = 0; k < kTrafficClassCount; ++k)
          for (int v = 0; v < kVerdictCount; ++v) {
            t.c.packets[d][k][v] += relaxed(c.packets[d][k][v]);
            t.c.bytes[d][k][v] += relaxed(c.bytes[d][k][v]);
          }
      t.c.unregistered_evictions += relaxed(c.unregistered_evictions);
      if (!with_sources) continue;
      size_t n = std::min(w->source_capacity(), current_ ? current_->source_count() : 0);
      if (t.sources.size() < n) t.sources.resize(n);
      for (uint32_t s = 0; s < n; ++s) {
        const NodeMeter& m = w->meter(s);
        const NodeMeterCold& cm = w->meter_cold(s);
        t.sources[s].passed += relaxed(m.passed);
        t.sources[s].over_rate += relaxed(m.dropped_over_rate);
        t.sources[s].blocklisted += relaxed(cm.dropped_blocklisted);
        t.sources[s].ejected += relaxed(cm.dropped_ejected);
        t.sources[s].port_denied += relaxed(cm.dropped_port_denied);
      }
    }
    return t;
  }
  uint32_t snapshots_pending_reclaim() const override { return static_cast<uint32_t>(retired_.size()); }
  bool wait_applied() override {
    uint64_t token = rte_rcu_qsbr_start(rcu_);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(1);
    while (rte_rcu_qsbr_check(rcu_, token, false) != 1) {
      if (std::chrono::steady_clock::now() > deadline) {
        spdlog::warn("a worker did not adopt the new policy within 1 s");
        return false;
      }
      std::this_thread::sleep_for(std::chrono::microseconds(20));
    }
    reclaim();
    return true;
  }
  double uptime_s() const override {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
  }
  uint64_t tx_dropped(int dir) const {
    uint64_t n = 0;
    if (ctxs_)
      for (const auto& c : *ctxs_) n += relaxed(c.tx_dropped[dir]);
    return n;
  }
  // Busy share per worker since the previous call.
  std::vector<double> busy_ratios() {
    std::vector<double> out;
    if (!ctxs_) return out;
    last_busy_.resize(ctxs_->size(), {0, 0});
    for (size_t i = 0; i < ctxs_->size(); ++i) {
      uint64_t b = relaxed((*ctxs_)[i].busy_tsc), t = relaxed((*ctxs_)[i].total_tsc);
      uint64_t db = b - last_busy_[i].first, dt = t - last_busy_[i].second;
      out.push_back(dt ? static_cast<double>(db) / static_cast<double>(dt) : 0.0);
      last_busy_[i] = {b, t};
    }
    return out;
  }
  uint64_t generation() const { return generation_.load(std::memory_order_relaxed); }

 private:
  struct Retired {
    std::shared_ptr<const PolicySnapshot> snap;
    uint64_t token;
  };
  rte_rcu_qsbr* rcu_;
  std::atomic<const PolicySnapshot*> pointer_{nullptr};
  std::atomic<uint64_t> generation_{0};
  std::shared_ptr<const PolicySnapshot> current_;
  std::deque<Retired> retired_;
  std::vector<std::unique_ptr<Worker>>* workers_ = nullptr;
  std::vector<WorkerCtx>* ctxs_ = nullptr;
  std::vector<std::pair<uint64_t, uint64_t>> last_busy_;
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();

  void refresh_directory() {
    if (state_->generation() == dir_generation_) return;
    dir_.reset(cwptrs_, &state_->nodes(), &state_->plan(), state_->config().scoring, state_->rate_shards());
    const Config& c = state_->config();
    rec_->reconfigure(c.evidence, c.operator_info, c.scoring);
    dir_generation_ = state_->generation();
  }
  PolicyState* state_ = nullptr;
  uint64_t unix_ns0_ = 0;
  std::vector<Worker*> wptrs_;
  std::vector<const Worker*> cwptrs_;
  SourceDirectory dir_;
  uint64_t dir_generation_ = 0;
  std::unique_ptr<GraylistTracker> gray_;
  std::unique_ptr<EvidenceRecorder> rec_;
  std::set<std::string> operator_nodes_;
};

// DPDK telemetry (`/stakegate/stats` in dpdk-telemetry.py): totals and generation.
Gateway* g_gateway = nullptr;
int telemetry_stats(const char*, const char*, rte_tel_data* d) {
  if (!g_gateway) return -1;
  Totals t = g_gateway->totals(false);
  rte_tel_data_start_dict(d);
  uint64_t passed = 0;
  for (int k = 0; k < kTrafficClassCount; ++k) passed += t.count(Direction::kOutside, static_cast<TrafficClass>(k), Verdict::kPass);
  rte_tel_data_add_dict_u64(d, "outside_packets", t.packets(Direction::kOutside));
  rte_tel_data_add_dict_u64(d, "outside_passed", passed);
  rte_tel_data_add_dict_u64(d, "inside_packets", t.packets(Direction::kInside));
  for (int v = 1; v < kVerdictCount; ++v)
    rte_tel_data_add_dict_u64(d, std::string("drops_").append(verdict_name(static_cast<Verdict>(v))).c_str(),
                              t.drops(static_cast<Verdict>(v)));
  rte_tel_data_add_dict_u64(d, "identity_generation", g_gateway->generation());
  return 0;
}

HttpResponse metrics_handler(const HttpRequest& r, const std::function<std::string()>& render) {
  std::string path = r.target.substr(0, r.target.find('?'));
  if (r.method != "GET" && r.method != "HEAD") return {405, "text/plain", "read-only: GET /metrics\n"};
  if (path != "/metrics") return {404, "text/plain", "see /metrics\n"};
  return {200, "text/plain; version=0.0.4; charset=utf-8", render()};
}

}  // namespace

int cmd_run(const std::vector<std::string>& args) {
  spdlog::set_default_logger(spdlog::stderr_color_mt("stakegate"));  // stdout carries results only
  std::map<std::string, std::string> flags;
  LoadedPolicy p;
  std::optional<std::string> token;
  try {
    flags = parse_flags(args, {"--config", "--report", "--exit-on-idle"});
    if (!flags.count("--config")) throw UsageError("run needs --config FILE");
    p = load_policy(flags["--config"]);
    // Refuse an exposed control listener without a token before touching anything.
    if (!p.cfg.control.tcp.empty()) {
      if (p.cfg.control.token_file.empty())
        throw ConfigError(p.cfg.file, "control.tcp", "a TCP control listener needs control.token_file");
      token = read_token(p.cfg.control.token_file);
    }
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

  const unsigned nworkers = p.cfg.dataplane.workers;
  int rc = 0;
  std::vector<std::unique_ptr<Worker>> workers;
  std::vector<WorkerCtx> ctxs(nworkers);
  PortIo outside, inside;
  bool ports_started = false;
  rte_rcu_qsbr* rcu = nullptr;
  std::unique_ptr<Gateway> gw;
  std::unique_ptr<PolicyState> state;
  boost::asio::io_context io;
  std::unique_ptr<HttpServer> control_server, metrics_server;
  try {
    if (rte_lcore_count() < nworkers + 1)
      throw std::runtime_error(fmt::format("{}: dataplane.workers: {} workers need {} lcores, EAL has {}", p.cfg.file,
                                           nworkers, nworkers + 1, rte_lcore_count()));
    rte_mempool* pool = rte_pktmbuf_pool_create(
        "stakegate_mbufs", p.cfg.dataplane.mbufs, kPoolCache, 0,
        static_cast<uint16_t>(p.cfg.dataplane.mbuf_data_room + RTE_PKTMBUF_HEADROOM), static_cast<int>(rte_socket_id()));
    if (!pool) throw std::runtime_error(std::string("mbuf pool: ") + rte_strerror(rte_errno));
    outside = setup_port(p.cfg, "outside", p.cfg.dataplane.outside, pool);
    inside = setup_port(p.cfg, "inside", p.cfg.dataplane.inside, pool);
    ports_started = true;
    // What the NICs and the per-core caches can hold at once: with a smaller pool, a link
    // that stops completing transmits starves RX (rx_nombuf; docs/reliability.md).
    const unsigned ring_hold = ring_mbufs(outside) + ring_mbufs(inside) + (nworkers + 1) * kPoolCache * 3 / 2 +
                               nworkers * std::min(p.cfg.dataplane.burst, kMaxBurst);
    if (p.cfg.dataplane.mbufs < ring_hold)
      spdlog::warn("{}: dataplane.mbufs {} is less than the {} mbufs the port rings and per-core caches can hold: a "
                   "stalled link can leave RX without mbufs (rx_nombuf); raise it (docs/configuration.md)",
                   p.cfg.file, p.cfg.dataplane.mbufs, ring_hold);

    size_t rcu_size = rte_rcu_qsbr_get_memsize(nworkers);
    rcu = static_cast<rte_rcu_qsbr*>(rte_zmalloc("stakegate_rcu", rcu_size, RTE_CACHE_LINE_SIZE));
    if (!rcu || rte_rcu_qsbr_init(rcu, nworkers) != 0) throw std::runtime_error("cannot set up RCU");
    for (unsigned i = 0; i < nworkers; ++i) rte_rcu_qsbr_thread_register(rcu, i);

    gw = std::make_unique<Gateway>(rcu);
    std::string config_file = p.cfg.file;
    size_t nodes = p.nodes.size();
    const size_t capacity = p.cfg.limits_sources;
    state = std::make_unique<PolicyState>(
        std::move(p), nworkers, capacity, [&](std::shared_ptr<const PolicySnapshot> s) { gw->publish(std::move(s)); },
        outside.rss ? 1 : nworkers);
    const Config& cfg = state->config();
    if (nworkers > 1 && outside.rss)
      spdlog::info("{} workers with RSS on the source address: each source reaches one worker, which enforces its whole rate",
                   nworkers);
    else if (nworkers > 1)
      spdlog::warn("{} workers without RSS on the source address ({}): a source's packets reach every worker, so each "
                   "enforces rate / {}", nworkers, outside.rss_note, nworkers);
    uint64_t hz = rte_get_tsc_hz();
    uint64_t q32 = static_cast<uint64_t>((static_cast<u128>(1'000'000'000ull) << 32) / hz);
    uint64_t tsc0 = rte_rdtsc();
    unsigned lcore = rte_get_next_lcore(-1, 1, 0);
    for (unsigned i = 0; i < nworkers; ++i, lcore = rte_get_next_lcore(lcore, 1, 0)) {
      workers.push_back(std::make_unique<Worker>(cfg.unregistered.table_size, state->source_capacity(), tsc0 + i));
      ctxs[i].worker = workers.back().get();
      ctxs[i].queue = static_cast<uint16_t>(i);
      ctxs[i].outside = outside;
      ctxs[i].inside = inside;
      ctxs[i].burst = std::min(cfg.dataplane.burst, kMaxBurst);
      ctxs[i].tsc_start = tsc0;
      ctxs[i].ns_per_tsc_q32 = q32;
      ctxs[i].policy = gw->pointer();
      ctxs[i].rcu = rcu;
    }
    gw->attach(&workers, &ctxs);
    gw->attach_evidence(state.get());
    for (unsigned i = 0, lc = rte_get_next_lcore(-1, 1, 0); i < nworkers; ++i, lc = rte_get_next_lcore(lc, 1, 0))
      if (int lrc = rte_eal_remote_launch(worker_main, &ctxs[i], lc); lrc != 0)
        throw std::runtime_error(fmt::format("cannot launch worker on lcore {}: {}", lc, rte_strerror(-lrc)));
    spdlog::info("stakegate {} forwarding: {} nodes in {} sources (capacity {}), {} worker(s), config {}", STAKEGATE_VERSION,
                 nodes, state->plan().sources.size(), state->source_capacity(), nworkers, config_file);

    g_gateway = gw.get();
    rte_telemetry_register_cmd("/stakegate/stats", telemetry_stats, "stakegate counters. No parameters");

    // Control API and metrics listeners.
    ControlApi api(*state, *gw, STAKEGATE_VERSION);
    auto api_handler = [&](const HttpRequest& r) {
      uint64_t before = state->generation();
      auto out = api.handle(r.method, r.target, r.content_type, r.body, static_cast<int64_t>(::time(nullptr)));
      if (state->generation() != before) spdlog::info("control: {} -> generation {}", r.target, state->generation());
      return HttpResponse{out.status, out.content_type, std::move(out.body)};
    };
    HttpLimits limits;
    limits.body_bytes = cfg.control.max_body_bytes;
    control_server = std::make_unique<HttpServer>(io, limits);
    if (!cfg.control.socket.empty()) {
      std::filesystem::create_directories(std::filesystem::path(cfg.control.socket).parent_path());
      control_server->listen_unix(cfg.control.socket, 0660, api_handler);
      spdlog::info("control API on unix:{} (mode 0660)", cfg.control.socket);
    }
    if (!cfg.control.tcp.empty()) {
      control_server->listen_tcp(cfg.control.tcp, api_handler, token);
      spdlog::info("control API on tcp:{} (bearer token required)", cfg.control.tcp);
    }
    auto render = [&] {
      Totals t = gw->totals(false);
      MetricsInput in;
      in.totals = &t;
      in.state = state.get();
      in.version = STAKEGATE_VERSION;
      in.snapshots_pending_reclaim = gw->snapshots_pending_reclaim();
      in.worker_busy = gw->busy_ratios();
      in.graylisted = gw->graylisted().size();
      std::tie(in.graylist_entries, in.graylist_exits) = gw->graylist_transitions();
      std::tie(in.evidence_cases, in.evidence_errors) = gw->evidence_counts();
      in.evidence_samples = gw->samples_written();
      in.evidence_samples_lost = gw->samples_lost();
      // tx_dropped(0): passed packets the inside port could not take; (1): the outside port.
      for (const auto& [name, io_port, dir] : {std::tuple{"outside", outside, 1}, std::tuple{"inside", inside, 0}}) {
        rte_eth_stats st{};
        rte_eth_stats_get(io_port.port, &st);
        in.ports.push_back({name, st.imissed, st.rx_nombuf, gw->tx_dropped(dir)});
      }
      return render_metrics(in);
    };
    if (!cfg.control.metrics.empty()) {
      HttpLimits ml;
      ml.body_bytes = 0;
      metrics_server = std::make_unique<HttpServer>(io, ml);
      metrics_server->listen_tcp(cfg.control.metrics, [&](const HttpRequest& r) { return metrics_handler(r, render); },
                                 std::nullopt);
      spdlog::info("metrics on http://{}/metrics", cfg.control.metrics);
    }

    // Signals: SIGTERM/SIGINT drain and stop; SIGHUP reloads (a refused config changes nothing).
    boost::asio::signal_set stop_signals(io, SIGINT, SIGTERM), hup(io, SIGHUP);
    stop_signals.async_wait([&](const boost::system::error_code& ec, int sig) {
      if (!ec) spdlog::info("signal {}: stopping", sig);
      io.stop();
    });
    std::function<void()> wait_hup = [&] {
      hup.async_wait([&](const boost::system::error_code& ec, int) {
        if (ec) return;
        try {
          auto ch = state->reload();
          gw->wait_applied();
          spdlog::info("SIGHUP: reloaded {}: generation {}", state->config().file, ch.generation);
          for (const auto& w : ch.warnings) spdlog::warn("SIGHUP: {}", w);
        } catch (const std::exception& e) {
          spdlog::error("SIGHUP: reload refused, the running policy is unchanged: {}", e.what());
        }
        wait_hup();
      });
    };
    wait_hup();

    // Timers: reclaim snapshots, expire blocks, periodic summary, idle exit.
    boost::asio::steady_timer tick(io);
    auto last_report = std::chrono::steady_clock::now();
    auto last_change = last_report;
    uint64_t last_rx = 0, reported_rx = 0;
    const auto interval = std::chrono::duration<double>(cfg.dataplane.stats_interval_s);
    std::function<void()> on_tick = [&] {
      tick.expires_after(std::chrono::milliseconds(50));
      tick.async_wait([&](const boost::system::error_code& ec) {
        if (ec) return;
        gw->reclaim();
        gw->evidence_tick();
        try {
          if (state->expire(static_cast<int64_t>(::time(nullptr)))) spdlog::info("blocklist: expired entries removed");
        } catch (const std::exception& e) {
          spdlog::error("blocklist expiry: {}", e.what());
        }
        auto now = std::chrono::steady_clock::now();
        Totals t = gw->totals(false);
        uint64_t rx = t.packets(Direction::kOutside) + t.packets(Direction::kInside);
        if (rx != last_rx) { last_rx = rx; last_change = now; }
        if (now - last_report >= interval) {
          uint64_t out_rx = t.packets(Direction::kOutside);
          double secs = std::chrono::duration<double>(now - last_report).count();
          spdlog::info("{} | outside rate {:.3f} Mpps", summary(t, gw->tx_dropped(0) + gw->tx_dropped(1)),
                       static_cast<double>(out_rx - reported_rx) / secs / 1e6);
          reported_rx = out_rx;
          last_report = now;
        }
        if (idle_exit_s > 0 && rx > 0 && now - last_change >= std::chrono::duration<double>(idle_exit_s)) {
          spdlog::info("no packet for {} s: stopping (--exit-on-idle)", idle_exit_s);
          io.stop();
          return;
        }
        on_tick();
      });
    };
    on_tick();
    io.run();
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    rc = 1;
  }
  g_stop.store(true);
  rte_eal_mp_wait_lcore();
  g_gateway = nullptr;
  if (gw && state) gw->evidence_tick(true);  // what the rings still hold; open cases are written now
  if (control_server) control_server->close();
  if (metrics_server) metrics_server->close();

  if (!workers.empty() && state) {
    Totals t;
    for (const auto& w : workers) t.add(*w);
    uint64_t txd = gw->tx_dropped(0) + gw->tx_dropped(1);
    spdlog::info("final: {}", summary(t, txd));
    for (const auto& [name, io_port] : {std::pair{"outside", outside}, std::pair{"inside", inside}}) {
      rte_eth_stats st{};
      if (rte_eth_stats_get(io_port.port, &st) == 0)
        spdlog::info("port {}: ipackets {} opackets {} imissed {} rx_nombuf {} oerrors {}", name, st.ipackets,
                     st.opackets, st.imissed, st.rx_nombuf, st.oerrors);
    }
    std::printf("%s", role_table(t).c_str());
    std::fflush(stdout);
    if (flags.count("--report")) {
      std::ofstream r(flags["--report"]);
      auto j = make_report(t, state->nodes(), state->plan());
      j["tx_dropped"] = txd;
      j["identity_generation"] = state->generation();
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
  state.reset();
  gw.reset();
  if (rcu) rte_free(rcu);
  rte_eal_cleanup();
  return rc;
}

}  // namespace stakegate
