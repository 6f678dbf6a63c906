#include "dataplane.h"

#include <rte_cycles.h>
#include <rte_errno.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_ring.h>
#include <time.h>

#include <algorithm>
#include <stdexcept>
#include <string>

#include <spdlog/spdlog.h>

#include "port_plan.h"
#include "stakegate/report/text.h"

namespace stakegate {
namespace {

__extension__ typedef unsigned __int128 u128;
uint64_t relaxed(const uint64_t& x) { return __atomic_load_n(&x, __ATOMIC_RELAXED); }

uint64_t clock_ns(clockid_t id) {
  timespec ts{};
  clock_gettime(id, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<uint64_t>(ts.tv_nsec);
}

}  // namespace

DataPlane::DataPlane(const Config& cfg) : cfg_(cfg) {
  if (rte_lcore_count() < cfg.dataplane.workers + 1)
    throw std::runtime_error(cfg.file + ": dataplane.workers: " + std::to_string(cfg.dataplane.workers) + " workers need " +
                             std::to_string(cfg.dataplane.workers + 1) + " lcores, EAL has " +
                             std::to_string(rte_lcore_count()));
  rte_mempool* pool = create_mbuf_pool(cfg);
  const bool prefix64 = port_offers_prefix64(cfg, "outside", cfg.dataplane.outside) &&
                        port_offers_prefix64(cfg, "inside", cfg.dataplane.inside);
  outside_ = setup_port(cfg, "outside", cfg.dataplane.outside, pool, prefix64);
  ports_started_ = true;  // from here on, the destructor stops what was started
  try {
    inside_ = setup_port(cfg, "inside", cfg.dataplane.inside, pool, prefix64);
  } catch (...) {
    stop_port(outside_);
    throw;
  }
  if (outside_.rss != inside_.rss ||
      (outside_.rss && (outside_.reta_size != inside_.reta_size || outside_.prefix64 != inside_.prefix64))) {
    stop_port(outside_);
    stop_port(inside_);
    ports_started_ = false;
    throw std::runtime_error(cfg.file + ": dataplane.workers: the two ports must spread remote addresses alike (RSS " +
                             std::string(outside_.rss ? "on" : "off") + "/" + (inside_.rss ? "on" : "off") +
                             ", redirection tables of " + std::to_string(outside_.reta_size) + " and " +
                             std::to_string(inside_.reta_size) + " entries, IPv6 hashed on " +
                             (outside_.prefix64 ? "its /64" : "the whole address") + " and on " +
                             (inside_.prefix64 ? "its /64" : "the whole address") + ")");
  }
  check_pool_size(cfg, outside_, inside_);
  watch_links();
}

void DataPlane::watch_links() {
  const std::pair<const char*, const PortIo*> ports[2] = {{"outside", &outside_}, {"inside", &inside_}};
  const bool first = links_.empty();
  if (first) links_.resize(2);
  auto text = [](const PortLink& l) { return link_text(l.up, l.speed_mbps, l.full_duplex); };
  for (size_t i = 0; i < 2; ++i) {
    const auto& [name, io] = ports[i];
    PortLink now = port_link(*io);
    PortLink& was = links_[i];
    now.name = name;
    now.changes = was.changes;
    // A NIC may take seconds to bring its link up after the start: its first coming up is
    // no change (nor counted as one).
    const bool ever_up = first_up_seen_[i];
    if (first) {
      if (now.up) spdlog::info("port {} ({}): link {}", name, io->name, text(now));
      else spdlog::warn("port {} ({}): link down at start (a NIC may take seconds to bring it up): nothing passes "
                        "on it until it is up", name, io->name);
    } else if (now.up != was.up && now.up && !ever_up) {
      spdlog::info("port {} ({}): link {}", name, io->name, text(now));
    } else if (now.up != was.up) {
      ++now.changes;
      if (now.up) spdlog::warn("port {} ({}): link {} again", name, io->name, text(now));
      else spdlog::warn("port {} ({}): link down: nothing passes on it until it comes up", name, io->name);
    } else if (now.up && (now.speed_mbps != was.speed_mbps || now.full_duplex != was.full_duplex)) {
      spdlog::warn("port {} ({}): link {} (was {})", name, io->name, text(now), text(was));
    }
    first_up_seen_[i] = first_up_seen_[i] || now.up;
    was = now;
  }
}

DataPlane::~DataPlane() {
  stop();
  for (rte_ring* r : handoff_) {
    void* m = nullptr;
    while (rte_ring_sc_dequeue(r, &m) == 0) rte_pktmbuf_free(static_cast<rte_mbuf*>(m));
    rte_ring_free(r);
  }
  if (ports_started_) {
    stop_port(outside_);
    stop_port(inside_);
  }
}

uint64_t DataPlane::unix_ns_of(uint64_t ns) const {
  const uint64_t mono = clock_ns(CLOCK_MONOTONIC), real = clock_ns(CLOCK_REALTIME);
  const uint64_t now = mono > mono0_ns_ ? mono - mono0_ns_ : 0;  // the data path's clock now
  const uint64_t ago = now > ns ? now - ns : 0;                  // a worker's clock may be a hair ahead
  return real > ago ? real - ago : 0;
}

void DataPlane::create_workers(const PolicyState& state, RcuPublisher& publisher) {
  state_ = &state;
  publisher_ = &publisher;
  const unsigned n = cfg_.dataplane.workers;
  const uint64_t q32 = static_cast<uint64_t>((static_cast<u128>(1'000'000'000ull) << 32) / rte_get_tsc_hz());
  mono0_ns_ = clock_ns(CLOCK_MONOTONIC);
  ctxs_.resize(n);
  // A request the cluster sends and its answer may reach different workers (a neighbour
  // solicitation's multicast group and the answering router's address hash apart): one
  // table of the cluster's requests for all of them.
  solicitations_ = std::make_unique<SolicitationTable>(rte_rdtsc());
  dhcp_ = std::make_unique<SolicitationTable>(rte_rdtsc(), Worker::kDhcpAnswers, Worker::kDhcpWithinNs);
  // With RSS, a remote's sessions are on the worker its address hashes to; an ICMP error
  // about them, which hashes by the reporting router's address, is handed there through
  // that worker's ring (multi-producer, single consumer).
  Steering steering;
  if (inside_.rss && n > 1) {
    steering.workers = static_cast<uint16_t>(n);
    steering.reta_size = inside_.reta_size;
    steering.prefix64 = inside_.prefix64;
    static_assert(Steering::kKeySize == kRssKeySize, "the workers hash with the ports' key");
    std::copy(rss_key(), rss_key() + kRssKeySize, steering.key.begin());
    for (unsigned i = 0; i < n; ++i) {
      const std::string name = "sg_handoff" + std::to_string(i);
      rte_ring* r = rte_ring_create(name.c_str(), kHandoffRing, rte_socket_id(), RING_F_SC_DEQ);
      if (!r) throw std::runtime_error("cannot create the handoff ring of worker " + std::to_string(i) + ": " + rte_strerror(rte_errno));
      handoff_.push_back(r);
    }
  }
  for (unsigned i = 0; i < n; ++i) {
    Worker::Sizes sizes;
    sizes.unregistered = state.config().unregistered.table_size;
    sizes.sources = state.source_capacity();
    sizes.sessions = state.config().limits_sessions;
    workers_.push_back(std::make_unique<Worker>(sizes, rte_rdtsc() + i));
    workers_.back()->share_solicitations(*solicitations_);
    workers_.back()->share_dhcp(*dhcp_);
    steering.self = static_cast<uint16_t>(i);
    workers_.back()->set_steering(steering);
    WorkerCtx& c = ctxs_[i];
    c.worker = workers_.back().get();
    c.queue = static_cast<uint16_t>(i);
    c.outside = outside_.q;
    c.inside = inside_.q;
    c.burst = std::min(cfg_.dataplane.burst, kMaxBurst);
    c.ns_per_tsc_q32 = q32;
    c.mono0_ns = mono0_ns_;
    c.policy = publisher.pointer();
    c.rcu = publisher.rcu();
    c.stop = &stop_;
    c.handoff = handoff_.empty() ? nullptr : handoff_.data();
  }
}

void DataPlane::launch() {
  unsigned lcore = rte_get_next_lcore(-1, 1, 0);
  for (unsigned i = 0; i < ctxs_.size(); ++i, lcore = rte_get_next_lcore(lcore, 1, 0)) {
    if (int rc = rte_eal_remote_launch(worker_main, &ctxs_[i], lcore); rc != 0)
      throw std::runtime_error("cannot launch worker on lcore " + std::to_string(lcore) + ": " + rte_strerror(-rc));
    launched_ = true;
  }
}

void DataPlane::stop() {
  stop_.store(true);
  if (launched_) rte_eal_mp_wait_lcore();
  launched_ = false;
}

std::vector<Worker*> DataPlane::workers() const {
  std::vector<Worker*> out;
  for (const auto& w : workers_) out.push_back(w.get());
  return out;
}

Totals DataPlane::totals(bool with_sources) const {
  Totals t;
  const size_t slots = with_sources && state_ ? state_->snapshot()->source_count() : 0;
  for (const auto& w : workers_) t.add(*w, slots);
  return t;
}

std::vector<uint64_t> DataPlane::outside_packets() const {
  std::vector<uint64_t> out;
  for (const auto& w : workers_) {
    Totals t;
    t.add(*w, 0);
    out.push_back(t.packets(Direction::kOutside));
  }
  return out;
}

double DataPlane::uptime_s() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
}

uint64_t DataPlane::tx_dropped(Direction from) const {
  uint64_t n = 0;
  for (const auto& c : ctxs_) n += relaxed(c.tx_dropped[static_cast<int>(from)]);
  return n;
}

uint64_t DataPlane::monitor_forwarded() const {
  uint64_t n = 0;
  for (const auto& c : ctxs_) n += relaxed(c.monitor_forwarded);
  return n;
}

std::vector<uint64_t> DataPlane::loop_progress() const {
  std::vector<uint64_t> out;
  for (const auto& c : ctxs_) out.push_back(relaxed(c.total_tsc));
  return out;
}

void DataPlane::sample_busy() {
  last_busy_.resize(ctxs_.size(), {0, 0});
  busy_.resize(ctxs_.size(), 0.0);
  last_packets_.resize(ctxs_.size(), 0);
  cycles_.resize(ctxs_.size(), 0.0);
  for (size_t i = 0; i < ctxs_.size(); ++i) {
    uint64_t b = relaxed(ctxs_[i].busy_tsc), t = relaxed(ctxs_[i].total_tsc), p = relaxed(ctxs_[i].busy_packets);
    uint64_t db = b - last_busy_[i].first, dt = t - last_busy_[i].second, dp = p - last_packets_[i];
    busy_[i] = dt ? static_cast<double>(db) / static_cast<double>(dt) : 0.0;
    cycles_[i] = dp ? static_cast<double>(db) / static_cast<double>(dp) : 0.0;
    last_busy_[i] = {b, t};
    last_packets_[i] = p;
  }
}

}  // namespace stakegate
