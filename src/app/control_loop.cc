#include <utility>  // before Boost.Asio (Boost 1.74 + C++20)

#include "control_loop.h"

#include <rte_telemetry.h>
#include <spdlog/spdlog.h>

#include <sys/inotify.h>
#include <unistd.h>

#include <array>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <functional>
#include <mutex>
#include <thread>

#include "stakegate/control/api.h"
#include "stakegate/control/http_server.h"
#include "stakegate/control/metrics.h"
#include "stakegate/flow/access_fetch.h"
#include "stakegate/identity/resolve.h"
#include "stakegate/policy/load.h"

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

// Reloads off the control thread: reading the config and identity files (and resolving
// names) happens on a helper thread with a deadline, so the API and /metrics keep
// answering; the result is applied on the control thread. Callers that ask while one is
// in flight get its outcome. A helper that outlives its deadline is left to finish and
// ignored (it cannot block: files are regular and opened non-blocking).
class Reloader {
 public:
  using Done = std::function<void(const PolicyState::Change* change, const std::string& code, const std::string& message)>;
  struct Outcome {
    bool ok = true;
    int64_t unix_s = 0;
  };

  Reloader(boost::asio::io_context& io, PolicyState& state, double timeout_s, std::function<std::string()> after)
      : io_(io), state_(state), timeout_(timeout_s), after_(std::move(after)), bridge_(std::make_shared<Bridge>()),
        timer_(io) {
    bridge_->io = &io;
    last_.unix_s = state.now();
  }
  ~Reloader() {
    std::lock_guard<std::mutex> lock(bridge_->m);
    bridge_->io = nullptr;  // a helper still running posts nowhere
  }

  void start(Done done, bool force = false) {
    waiters_.push_back(std::move(done));
    force_ = force_ || force;
    if (waiters_.size() > 1) return;  // joins the reload in flight
    const uint64_t flight = ++flight_;
    const std::string file = state_.config().file;
    std::shared_ptr<Bridge> bridge = bridge_;
    std::thread([this, bridge, flight, file] {
      auto result = std::make_shared<std::optional<LoadedPolicy>>();
      auto tokens = std::make_shared<ControlTokens>();
      auto error = std::make_shared<std::string>();
      try {
        *result = PolicyState::load_for_reload(file);
        *tokens = load_tokens((*result)->cfg.control, file);
      } catch (const std::exception& e) {
        result->reset();
        *error = e.what();
      }
      std::lock_guard<std::mutex> lock(bridge->m);
      if (bridge->io)
        boost::asio::post(*bridge->io, [this, flight, result, tokens, error] { finish(flight, result, tokens, *error); });
    }).detach();
    timer_.expires_after(std::chrono::milliseconds(static_cast<int64_t>(timeout_ * 1000)));
    timer_.async_wait([this, flight](const boost::system::error_code& ec) {
      if (ec || flight != flight_ || waiters_.empty()) return;
      conclude(nullptr, "deadline_exceeded",
               "reading the config and identity files took over " + std::to_string(static_cast<int>(timeout_)) +
                   " s (control.reload_timeout_s); the running policy is unchanged");
      ++flight_;  // whatever the helper brings later is ignored
    });
  }

  const Outcome& last() const { return last_; }
  ControlTokens* tokens = nullptr;  // replaced on a successful reload (TCP listener)

 private:
  struct Bridge {
    std::mutex m;
    boost::asio::io_context* io = nullptr;
  };

  void finish(uint64_t flight, const std::shared_ptr<std::optional<LoadedPolicy>>& result,
              const std::shared_ptr<ControlTokens>& tokens, const std::string& error) {
    if (flight != flight_ || waiters_.empty()) return;  // timed out already
    timer_.cancel();
    if (!*result) return conclude(nullptr, "invalid_argument", error + "; the running policy is unchanged");
    try {
      const bool force = force_;
      force_ = false;
      PolicyState::Change ch = state_.apply_reload(std::move(**result), force);
      if (tokens && this->tokens) *this->tokens = *tokens;
      if (after_) {
        std::string problems = after_();
        if (!problems.empty()) ch.warnings.push_back(problems);
      }
      conclude(&ch, "", "");
    } catch (const OpError& e) {
      conclude(nullptr, e.code(), std::string(e.what()) + "; the running policy is unchanged");
    } catch (const std::exception& e) {
      conclude(nullptr, "invalid_argument", std::string(e.what()) + "; the running policy is unchanged");
    }
  }

  void conclude(const PolicyState::Change* ch, const std::string& code, const std::string& message) {
    last_ = {ch != nullptr, state_.now()};
    force_ = false;
    auto waiters = std::move(waiters_);
    waiters_.clear();
    for (auto& w : waiters) w(ch, code, message);
  }

  boost::asio::io_context& io_;
  PolicyState& state_;
  double timeout_;
  std::function<std::string()> after_;
  std::shared_ptr<Bridge> bridge_;
  boost::asio::steady_timer timer_;
  std::vector<Done> waiters_;
  uint64_t flight_ = 0;
  bool force_ = false;
  Outcome last_;
};

// Follows the table's DNS names: each is looked up again when its answer's TTL (clamped by
// identity.dns) runs out, on a helper thread with identity.dns.timeout_s as deadline; the
// answers go to the name cache (which persists them), then the control thread publishes a
// new snapshot only when an address moved. A name that fails keeps its addresses.
class DnsRefresher {
 public:
  DnsRefresher(boost::asio::io_context& io, PolicyState& state) : state_(state), bridge_(std::make_shared<Bridge>()) {
    bridge_->io = &io;
  }
  ~DnsRefresher() {
    std::lock_guard<std::mutex> lock(bridge_->m);
    bridge_->io = nullptr;
  }

  // Called about once a second from the control thread.
  void poll() {
    if (in_flight_) return;
    const Config& cfg = state_.config();
    std::vector<std::string> due =
        NameCache::process().due(dns_names(state_.nodes(), cfg.identity.hosts), std::time(nullptr));
    if (due.empty()) return;
    in_flight_ = true;
    std::shared_ptr<Bridge> bridge = bridge_;
    DnsConfig dns = cfg.identity.dns;
    std::thread([this, bridge, due = std::move(due), dns] {
      auto answers = dns_lookup(due, dns);
      std::string warning = NameCache::process().record(answers, dns, std::time(nullptr));
      std::vector<std::string> failed;
      for (const auto& [name, a] : answers)
        if (!a.ok) failed.push_back(name + " (" + a.error + ")");
      std::lock_guard<std::mutex> lock(bridge->m);
      if (bridge->io)
        boost::asio::post(*bridge->io, [this, warning, failed] { finish(warning, failed); });
    }).detach();
  }

 private:
  struct Bridge {
    std::mutex m;
    boost::asio::io_context* io = nullptr;
  };

  void finish(const std::string& warning, const std::vector<std::string>& failed) {
    in_flight_ = false;
    if (!warning.empty()) spdlog::warn("{}", warning);
    for (const auto& f : failed)
      spdlog::warn("dns: {} does not resolve; its nodes keep their last known addresses", f);
    std::vector<std::string> moves;
    try {
      if (auto ch = state_.refresh_addresses(&moves)) {
        for (const auto& m : moves) spdlog::info("dns: {}", m);
        spdlog::info("dns: addresses changed: generation {}", ch->generation);
      }
    } catch (const std::exception& e) {
      spdlog::error("dns: the new addresses are not applied: {}", e.what());
    }
  }

  PolicyState& state_;
  std::shared_ptr<Bridge> bridge_;
  bool in_flight_ = false;
};

// Follows epochs by itself (identity.access_api): fetches the latest protocol state
// snapshot on a helper thread (gRPC calls with deadlines, endpoints in order), then on the
// control thread applies it when the table changed, with the checks and the removal guard
// of a replace. A failure, or a refusal, keeps the running table and is counted.
class IdentityFetcher {
 public:
  IdentityFetcher(boost::asio::io_context& io, PolicyState& state)
      : state_(state), timer_(io), bridge_(std::make_shared<Bridge>()) {
    bridge_->io = &io;
  }
  ~IdentityFetcher() {
    std::lock_guard<std::mutex> lock(bridge_->m);
    bridge_->io = nullptr;
  }

  void start() { schedule(0); }

 private:
  struct Bridge {
    std::mutex m;
    boost::asio::io_context* io = nullptr;
  };

  void schedule(double seconds) {
    timer_.expires_after(std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000)));
    timer_.async_wait([this](const boost::system::error_code& ec) {
      if (ec) return;
      const AccessApiConfig cfg = state_.config().identity.access_api;  // a reload may have changed it
      if (!cfg.on()) return schedule(5);
      std::shared_ptr<Bridge> bridge = bridge_;
      std::thread([this, bridge, cfg] {
        auto result = std::make_shared<AccessFetch>(fetch_identity(cfg));
        std::lock_guard<std::mutex> lock(bridge->m);
        if (bridge->io) boost::asio::post(*bridge->io, [this, result, cfg] { finish(*result, cfg); });
      }).detach();
    });
  }

  void finish(AccessFetch& f, const AccessApiConfig& cfg) {
    if (!f.ok) {
      state_.fetch_failed(f.error);
      spdlog::error("identity fetch: {}; the running table stays", f.error);
    } else {
      const uint64_t counter = f.epoch.counter;
      const std::string phase = f.epoch.phase;
      try {
        if (auto ch = state_.apply_fetched(std::move(f.nodes), f.epoch, f.endpoint, std::move(f.warnings))) {
          spdlog::info("identity fetch: epoch {} ({}) from {}: applied, generation {} (+{} -{} nodes)", counter, phase,
                       f.endpoint, ch->generation, ch->added, ch->removed);
          for (const auto& w : ch->warnings) spdlog::warn("identity fetch: {}", w);
        } else if (counter != last_counter_ || phase != last_phase_) {
          spdlog::info("identity fetch: epoch {} ({}) from {}: the table is unchanged", counter, phase, f.endpoint);
        }
        last_counter_ = counter;
        last_phase_ = phase;
      } catch (const std::exception& e) {
        state_.fetch_failed(e.what());
        spdlog::error("identity fetch: epoch {} from {} refused: {}; the running table stays", counter, f.endpoint, e.what());
      }
    }
    schedule(cfg.interval_s);
  }

  PolicyState& state_;
  boost::asio::steady_timer timer_;
  std::shared_ptr<Bridge> bridge_;
  uint64_t last_counter_ = 0;
  std::string last_phase_;
};

// Applies the identity file when it is replaced or rewritten (identity.watch), for
// operators who fetch snapshots themselves: inotify on its folder (a rename over it, as
// `flow snapshot save` to a temporary name and `mv` do, or a write closed), a quiet second
// for the writer to finish, then the file is read and checked on a helper thread and, when
// it differs from the running table, applied like a replace (the removal guard included).
// A file that does not load is logged and the running table stays.
class IdentityFileWatcher {
 public:
  IdentityFileWatcher(boost::asio::io_context& io, PolicyState& state)
      : state_(state), sd_(io), quiet_(io), bridge_(std::make_shared<Bridge>()) {
    bridge_->io = &io;
  }
  ~IdentityFileWatcher() {
    std::lock_guard<std::mutex> lock(bridge_->m);
    bridge_->io = nullptr;
  }

  void start() {
    const IdentityConfig& id = state_.config().identity;
    if (!id.watch || id.path.empty()) return;
    path_ = id.path;
    const std::filesystem::path p(path_);
    name_ = p.filename().string();
    const std::string dir = p.parent_path().empty() ? "." : p.parent_path().string();
    int fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (fd < 0 || ::inotify_add_watch(fd, dir.c_str(), IN_CLOSE_WRITE | IN_MOVED_TO) < 0) {
      spdlog::error("identity watch: cannot watch {}: {}; apply changes with SIGHUP", dir, std::strerror(errno));
      if (fd >= 0) ::close(fd);
      return;
    }
    sd_.assign(fd);
    read();
    spdlog::info("identity watch: {} is applied when it changes", path_);
  }

 private:
  struct Bridge {
    std::mutex m;
    boost::asio::io_context* io = nullptr;
  };

  void read() {
    sd_.async_read_some(boost::asio::buffer(buf_), [this](const boost::system::error_code& ec, size_t n) {
      if (ec) return;
      for (size_t off = 0; off + sizeof(inotify_event) <= n;) {
        const auto* ev = reinterpret_cast<const inotify_event*>(buf_.data() + off);
        if (ev->len && name_ == ev->name) changed();
        off += sizeof(inotify_event) + ev->len;
      }
      read();
    });
  }

  void changed() {
    quiet_.expires_after(std::chrono::seconds(1));
    quiet_.async_wait([this](const boost::system::error_code& ec) {
      if (!ec) load();
    });
  }

  void load() {
    if (in_flight_) {
      again_ = true;
      return;
    }
    in_flight_ = true;
    std::shared_ptr<Bridge> bridge = bridge_;
    Config cfg = state_.config();
    std::thread([this, bridge, cfg] {
      auto nodes = std::make_shared<std::vector<NodeIdentity>>();
      auto warnings = std::make_shared<std::vector<std::string>>();
      auto error = std::make_shared<std::string>();
      try {
        *nodes = load_identities(cfg, warnings.get());
      } catch (const std::exception& e) {
        *error = e.what();
      }
      std::lock_guard<std::mutex> lock(bridge->m);
      if (bridge->io) boost::asio::post(*bridge->io, [this, nodes, warnings, error] { finish(*nodes, *warnings, *error); });
    }).detach();
  }

  void finish(std::vector<NodeIdentity>& nodes, const std::vector<std::string>& warnings, const std::string& error) {
    in_flight_ = false;
    if (!error.empty()) {
      spdlog::error("identity watch: {}; the running table stays", error);
    } else if (state_.same_table(nodes)) {
      spdlog::info("identity watch: {} changed, its table is the running one", path_);
    } else {
      try {
        IdentityUpload up;
        up.kind = IdentityUpload::Kind::kNodes;
        up.nodes = std::move(nodes);
        up.origin = "watch " + path_;
        PolicyState::Change ch = state_.replace_identities(std::move(up));
        spdlog::info("identity watch: {} applied: generation {} (+{} -{} nodes)", path_, ch.generation, ch.added, ch.removed);
        for (const auto& w : warnings) spdlog::warn("identity watch: {}", w);
      } catch (const std::exception& e) {
        spdlog::error("identity watch: {} refused: {}; the running table stays", path_, e.what());
      }
    }
    if (again_) {
      again_ = false;
      load();
    }
  }

  PolicyState& state_;
  boost::asio::posix::stream_descriptor sd_;
  boost::asio::steady_timer quiet_;
  std::shared_ptr<Bridge> bridge_;
  alignas(inotify_event) std::array<char, 4096> buf_{};
  std::string path_, name_;
  bool in_flight_ = false, again_ = false;
};

std::string render(PolicyState& state, DataPlane& dp, EvidenceService& ev, const std::string& version,
                   const Reloader::Outcome& reload) {
  Totals t = dp.totals(true);  // with per-source counts, for stakegate_node_drops_total
  MetricsInput in;
  in.last_reload_success = reload.ok;
  in.last_reload_unix = reload.unix_s;
  in.totals = &t;
  in.state = &state;
  in.version = version;
  in.snapshots_pending_reclaim = dp.snapshots_pending_reclaim();
  in.worker_busy = dp.busy_ratios();
  in.worker_cycles_per_packet = dp.cycles_per_packet();
  in.graylisted = ev.graylist().entries().size();
  std::tie(in.graylist_entries, in.graylist_exits) = ev.graylist_transitions();
  std::tie(in.evidence_cases, in.evidence_errors) = ev.case_counts();
  in.evidence_samples = ev.samples_written();
  in.evidence_samples_lost = ev.samples_lost();
  in.graylist_events_lost = ev.events_lost();
  in.session_capacity = dp.workers().empty() ? 0 : dp.workers().front()->sessions().capacity();
  in.rate_split = state.rate_shards();
  const NameCache& names = NameCache::process();
  NameCache::Census dns = names.census(dns_names(state.nodes(), state.config().identity.hosts));
  in.dns_resolved = dns.resolved;
  in.dns_stale = dns.stale;
  in.dns_unresolved = dns.unresolved;
  in.dns_failures = names.failures();
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

  // The TCP listener's tokens, swapped whole when a reload reads new ones.
  auto tokens = std::make_shared<const ControlTokens>(o.tokens);
  ControlTokens reloaded_tokens = o.tokens;
  Reloader reloader(io, state, cfg.control.reload_timeout_s, [&]() -> std::string {
    tokens = std::make_shared<const ControlTokens>(reloaded_tokens);
    std::string problems = control_server.reload_tls();
    std::string m = metrics_server.reload_tls();
    return problems + (problems.empty() || m.empty() ? "" : "; ") + m;
  });
  reloader.tokens = &reloaded_tokens;

  // Every change is logged with who asked (the audit log): SO_PEERCRED on Unix sockets,
  // the address (and certificate subject) on TCP.
  auto audit = [&](const std::string& rpc, const std::string& caller, int status, uint64_t before) {
    if (status == 200 && state.generation() != before)
      spdlog::info("audit: {} by {}: generation {}", rpc, caller, state.generation());
    else if (status == 200)
      spdlog::info("audit: {} by {}: done (no policy change)", rpc, caller);
    else
      spdlog::warn("audit: {} by {}: refused (HTTP {})", rpc, caller, status);
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
    auto out = api.handle(r.method, r.target, r.content_type, r.body, r.access, r.caller);
    if (api.mutates(rpc)) audit(rpc, r.caller, out.status, before);
    g_telemetry_generation = state.generation();
    reply({out.status, out.content_type, std::move(out.body)});
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
  if (!cfg.control.tcp.empty()) {
    control_server.listen_tcp(cfg.control.tcp, api_handler, bearer_authenticator(&tokens), tls_of(cfg.control.tls));
    spdlog::info("control API on {}://{} (bearer token{}{})", cfg.control.tls.on() ? "https" : "http", cfg.control.tcp,
                 o.tokens.read.empty() ? "" : "; a read-only token too",
                 cfg.control.tls.client_ca.empty() ? "" : "; client certificates required");
  }
  auto basic = std::make_shared<BasicAuth>(cfg.control.metrics_users);
  if (!cfg.control.metrics.empty()) {
    HttpAuthenticator metrics_auth = [basic](const HttpAuthInput& in) -> std::optional<Access> {
      if (basic->empty() || basic->check(in.authorization)) return Access::kRead;
      return std::nullopt;
    };
    metrics_server.listen_tcp(
        cfg.control.metrics,
        sync_handler([&](const HttpRequest& r) {
          return metrics_handler(r, [&] { return render(state, dp, evidence, o.version, reloader.last()); });
        }),
        metrics_auth, tls_of(cfg.control.metrics_tls));
    spdlog::info("metrics on {}://{}/metrics{}", cfg.control.metrics_tls.on() ? "https" : "http", cfg.control.metrics,
                 basic->empty() ? "" : " (basic auth)");
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
      reloader.start(reload_done_log("SIGHUP"));
      wait_hup();
    });
  };
  wait_hup();

  DnsRefresher dns(io, state);
  IdentityFetcher fetcher(io, state);
  fetcher.start();
  IdentityFileWatcher watcher(io, state);
  watcher.start();

  // Timer: reclaim snapshots, evidence, expire blocks, periodic summary, idle exit.
  asio::steady_timer tick(io);
  auto last_report = std::chrono::steady_clock::now();
  auto last_change = last_report, last_busy = last_report;
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
      if (now - last_busy >= std::chrono::seconds(1)) {
        dp.sample_busy();
        dns.poll();
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
