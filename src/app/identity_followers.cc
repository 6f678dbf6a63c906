#include <utility>  // before Boost.Asio (Boost 1.74 + C++20)

#include "identity_followers.h"

#include <spdlog/spdlog.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <filesystem>

#include "helper_thread.h"
#include "post_back.h"
#include "stakegate/base/clock.h"
#include "stakegate/flow/access_fetch.h"
#include "stakegate/identity/resolve.h"
#include "stakegate/policy/load.h"

namespace stakegate {
namespace {

// Follows the table's DNS names: each is looked up again when its answer's TTL (clamped by
// identity.dns) runs out, on a helper thread with identity.dns.timeout_s as deadline; the
// answers go to the name cache (which persists them), then the control thread publishes a
// new snapshot only when an address moved. A name that fails keeps its addresses.
class DnsRefresher {
 public:
  DnsRefresher(boost::asio::io_context& io, PolicyState& state) : state_(state), back_(io) {}

  // Called about once a second from the control thread.
  void poll() {
    if (in_flight_) return;
    const Config& cfg = state_.config();
    if (names_generation_ != state_.generation()) {  // the table's names, once per policy
      names_ = dns_names(state_.nodes(), cfg.identity.hosts);
      names_generation_ = state_.generation();
    }
    std::vector<std::string> due = NameCache::process().due(names_, steady_seconds());
    if (due.empty()) return;
    in_flight_ = true;
    auto post = back_.poster();
    DnsConfig dns = cfg.identity.dns;
    std::string no_thread = start_helper_thread([this, post, due = std::move(due), dns] {
      auto answers = dns_lookup(due, dns);
      std::string warning = NameCache::process().record(answers, dns, std::time(nullptr), steady_seconds());
      std::vector<std::string> failed;
      for (const auto& [name, a] : answers)
        if (!a.ok) failed.push_back(name + " (" + a.error + ")");
      post([this, warning, failed] { finish(warning, failed); });
    });
    if (!no_thread.empty()) {
      // Tried again at the next poll (said once, not every second); the names keep their
      // addresses meanwhile.
      in_flight_ = false;
      if (!no_thread_)
        spdlog::error("dns: {} for a lookup round; the names keep their addresses, trying again each second",
                      no_thread);
      no_thread_ = true;
    } else if (no_thread_) {
      no_thread_ = false;
      spdlog::info("dns: lookup rounds run again");
    }
  }

 private:
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
  bool in_flight_ = false;
  bool no_thread_ = false;  // the last round could not start its thread
  std::vector<std::string> names_;
  uint64_t names_generation_ = 0;
  PostBack back_;  // last: destroyed first, so no helper posts to a dead object
};

// Follows epochs by itself (identity.access_api): fetches the latest protocol state
// snapshot on a helper thread (gRPC calls with deadlines, endpoints in order), then on the
// control thread applies it when the table changed, with the checks and the removal guard
// of a replace. A failure, or a refusal, keeps the running table and is counted.
class IdentityFetcher {
 public:
  IdentityFetcher(boost::asio::io_context& io, PolicyState& state)
      : state_(state), timer_(io), back_(io) {}

  void start() { schedule(0); }

 private:
  void schedule(double seconds) {
    timer_.expires_after(std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000)));
    timer_.async_wait([this](const boost::system::error_code& ec) {
      if (ec) return;
      const IdentityConfig id = state_.config().identity;  // a reload may have changed it
      if (!id.access_api.on()) return schedule(5);
      auto post = back_.poster();
      std::string no_thread = start_helper_thread([this, post, id] {
        auto result = std::make_shared<AccessFetch>(fetch_identity(id));
        post([this, result, cfg = id.access_api] { finish(*result, cfg); });
      });
      if (!no_thread.empty()) {
        state_.fetch_failed(no_thread);
        spdlog::error("identity fetch: {}; the running table stays, trying again in 5 s", no_thread);
        schedule(5);
      }
    });
  }

  void finish(AccessFetch& f, const AccessApiConfig& cfg) {
    if (!f.ok) {
      state_.fetch_failed(f.error);
      spdlog::error("identity fetch: {}; the running table stays", f.error);
    } else {
      const uint64_t counter = f.epoch.counter;
      const std::string phase = f.epoch.phase;
      for (const auto& w : f.warnings) spdlog::warn("identity fetch: {}", w);
      // Without this round's stakes, a node keeps the stake it runs with: falling back to
      // the protocol's weights would swing every share until the script answers again.
      if (f.stakes_missing)
        for (auto& n : f.nodes)
          if (auto i = state_.find_node(n.node_id)) n.weight = state_.nodes()[*i].weight;
      try {
        if (auto ch = state_.apply_fetched(std::move(f.nodes), f.epoch, f.endpoint)) {
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
  uint64_t last_counter_ = 0;
  std::string last_phase_;
  PostBack back_;  // last: destroyed first, so no helper posts to a dead object
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
      : state_(state), sd_(io), quiet_(io), back_(io) {}

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

  // Follows a reload that turned the watch on or off or named another file (called about
  // once a second). A watch that could not start is not retried until the config changes.
  void follow_config() {
    const IdentityConfig& id = state_.config().identity;
    const std::string want = id.watch ? id.path : std::string();
    if (want == path_) return;
    if (!path_.empty()) spdlog::info("identity watch: {} is no longer watched", path_);
    boost::system::error_code ec;
    sd_.close(ec);  // the pending read ends with operation_aborted
    quiet_.cancel();
    path_.clear();
    name_.clear();
    start();
  }

 private:
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
    auto post = back_.poster();
    Config cfg = state_.config();
    std::string no_thread = start_helper_thread([this, post, cfg] {
      auto nodes = std::make_shared<std::vector<NodeIdentity>>();
      auto warnings = std::make_shared<std::vector<std::string>>();
      auto error = std::make_shared<std::string>();
      try {
        *nodes = load_identities(cfg, warnings.get());
      } catch (const std::exception& e) {
        *error = e.what();
      }
      post([this, nodes, warnings, error] { finish(*nodes, *warnings, *error); });
    });
    if (!no_thread.empty()) {
      in_flight_ = again_ = false;
      spdlog::error("identity watch: {} to read {}; the running table stays, trying again in 5 s", no_thread, path_);
      quiet_.expires_after(std::chrono::seconds(5));
      quiet_.async_wait([this](const boost::system::error_code& ec) {
        if (!ec) load();
      });
    }
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
        for (const auto& w : ch.warnings)  // the commit's own (a name the file load warned about is not said twice)
          if (std::find(warnings.begin(), warnings.end(), w) == warnings.end()) spdlog::warn("identity watch: {}", w);
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
  alignas(inotify_event) std::array<char, 4096> buf_{};
  std::string path_, name_;
  bool in_flight_ = false, again_ = false;
  PostBack back_;  // last: destroyed first, so no helper posts to a dead object
};

}  // namespace

struct IdentityFollowers::Impl {
  Impl(boost::asio::io_context& io, PolicyState& state) : dns(io, state), fetcher(io, state), watcher(io, state) {}
  DnsRefresher dns;
  IdentityFetcher fetcher;
  IdentityFileWatcher watcher;
};

IdentityFollowers::IdentityFollowers(boost::asio::io_context& io, PolicyState& state)
    : impl_(std::make_unique<Impl>(io, state)) {
  impl_->fetcher.start();
  impl_->watcher.start();
}

IdentityFollowers::~IdentityFollowers() = default;

void IdentityFollowers::poll() {
  impl_->dns.poll();
  impl_->watcher.follow_config();
}

}  // namespace stakegate
