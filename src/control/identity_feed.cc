// PolicyState's side of keeping the identity table current (docs/operations.md,
// "Following epochs", "DNS"): fetched tables, DNS address moves, the table's change and
// confirmation times kept in <state_dir>/identity.json, and the last fetched table in
// <state_dir>/identity-fetched.json.
#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <utility>

#include "stakegate/base/files.h"
#include "stakegate/base/json_text.h"
#include "stakegate/base/time_text.h"
#include "stakegate/control/policy_state.h"
#include "stakegate/identity/resolve.h"

namespace stakegate {

std::optional<PolicyState::Change> PolicyState::refresh_addresses(std::vector<std::string>* moves) {
  std::vector<NodeIdentity> nodes = nodes_;
  resolve_identities(nodes, cfg_.identity.hosts, cfg_.identity.dns, identity_source_, nullptr, false);
  auto list = [](const std::vector<IpAddr>& ips) {
    std::string s;
    for (const auto& ip : ips) s.append(s.empty() ? "" : ",").append(ip.to_string());
    return s.empty() ? std::string("(none)") : s;
  };
  std::set<std::string> named;
  bool changed = false;
  for (size_t i = 0; i < nodes.size(); ++i) {
    if (nodes[i].ips == nodes_[i].ips) continue;
    changed = true;
    if (moves && named.insert(nodes[i].host).second)
      moves->push_back(nodes[i].host + ": " + list(nodes_[i].ips) + " -> " + list(nodes[i].ips));
  }
  if (!changed) return std::nullopt;
  return commit(cfg_, std::move(nodes), blocks_, identity_source_);
}

bool PolicyState::same_table(const std::vector<NodeIdentity>& next) const {
  if (next.size() != nodes_.size()) return false;
  for (const auto& n : next) {
    auto it = node_index_.find(n.node_id);
    if (it == node_index_.end()) return false;
    const NodeIdentity& m = nodes_[it->second];
    if (m.role != n.role || m.address != n.address || m.weight != n.weight || m.status != n.status) return false;
  }
  return true;
}

std::optional<PolicyState::Change> PolicyState::apply_fetched(std::vector<NodeIdentity> nodes, const FlowEpoch& epoch,
                                                              const std::string& endpoint) {
  std::optional<Change> ch;
  if (!same_table(nodes)) {
    IdentityUpload up;
    up.kind = IdentityUpload::Kind::kNodes;
    up.nodes = std::move(nodes);
    up.origin = "access API " + endpoint;
    ch = replace_identities(std::move(up));  // throws when refused: nothing below runs
  }
  feed_.last_success = clock_();
  feed_.epoch = epoch;
  feed_.endpoint = endpoint;
  feed_.last_error.clear();
  confirm_identity(feed_.last_success);
  save_fetched_table(ch.has_value());
  return ch;
}

void PolicyState::fetch_failed(const std::string& error) {
  ++feed_.failures;
  feed_.last_error = error;
}

namespace {
// A table's fingerprint for identity.json: FNV-1a over its nodes in NodeID order.
std::string table_fingerprint(const std::vector<NodeIdentity>& nodes) {
  std::vector<std::string> rows;
  for (const auto& n : nodes) {
    std::ostringstream r;
    r << n.node_id << '|' << static_cast<int>(n.role) << '|' << n.address << '|' << n.weight << '|'
      << n.status;
    rows.push_back(r.str());
  }
  std::sort(rows.begin(), rows.end());
  uint64_t h = 1469598103934665603ull;
  for (const auto& r : rows)
    for (char c : r + "\n") h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}
}  // namespace

// Times here are dates (the metrics and alerts compare them with Prometheus' clock): a
// confirmation is dated by the wall clock as it reads now, even when that is before an
// earlier one (the clock was ahead and NTP stepped it back), or the table would look
// current, and its staleness alert stay silent, for as long as the clock stepped.
void PolicyState::confirm_identity(int64_t when) {
  identity_confirmed_unix_ = when;
  // A fetch confirms every minute or so: the file need not follow each one (but does
  // after a step back).
  if (when - identity_saved_unix_ >= 600 || when < identity_saved_unix_) save_identity_times();
}

void PolicyState::save_identity_times() {
  if (state_dir_.empty()) return;
  nlohmann::json j = {{"version", 1},
                      {"fingerprint", table_fingerprint(nodes_)},
                      {"changed_at", identity_changed_unix_},
                      {"confirmed_at", identity_confirmed_unix_},
                      {"fetched_at", feed_.last_success}};
  try {
    std::error_code ec;
    std::filesystem::create_directories(state_dir_, ec);
    write_file_atomically((std::filesystem::path(state_dir_) / "identity.json").string(), json_text(j, 1) + "\n", 0640);
    identity_saved_unix_ = clock_();
  } catch (const std::exception&) {
    // Only the age metrics lose their history across a restart; blocks.json reports disk trouble.
  }
}

namespace {
constexpr const char* kFetchedFile = "identity-fetched.json";

// When `path` last changed (Unix seconds), or 0 when it cannot be read.
int64_t mtime_unix(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? static_cast<int64_t>(st.st_mtime) : 0;
}
}  // namespace

void PolicyState::save_fetched_table(bool changed) {
  if (state_dir_.empty()) return;
  // A table confirmed unchanged is written again only now and then: its time is what the
  // next start compares with the configured files.
  const int64_t since = feed_.last_success - fetched_saved_unix_;
  if (!changed && fetched_saved_unix_ && since >= 0 && since < 600) return;
  nlohmann::json nodes = nlohmann::json::array();
  for (const auto& n : nodes_)
    nodes.push_back({{"node_id", n.node_id}, {"role", std::string(role_name(n.role))}, {"address", n.address},
                     {"weight", n.weight}, {"status", n.status}, {"network_key", n.network_key},
                     {"staking_key", n.staking_key}});
  nlohmann::json j = {{"version", 1},
                      {"fetched_at", feed_.last_success},
                      {"epoch", {{"counter", feed_.epoch.counter}, {"phase", feed_.epoch.phase}}},
                      {"endpoint", feed_.endpoint},
                      {"nodes", std::move(nodes)}};
  try {
    std::error_code ec;
    std::filesystem::create_directories(state_dir_, ec);
    write_file_atomically((std::filesystem::path(state_dir_) / kFetchedFile).string(), json_text(j, 1) + "\n", 0640);
    fetched_saved_unix_ = feed_.last_success;
  } catch (const std::exception&) {
    // A restart then starts on the configured table, as without a state_dir.
  }
}

void PolicyState::restore_fetched_table(std::vector<std::string>& info, std::vector<std::string>& warnings) {
  if (state_dir_.empty() || !cfg_.identity.access_api.on()) return;
  const std::string path = (std::filesystem::path(state_dir_) / kFetchedFile).string();
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return;
  // What the configured table comes from, and when it last changed.
  const std::string configured = cfg_.identity.kind == IdentityConfig::Kind::kInline ? cfg_.file : cfg_.identity.path;
  int64_t configured_at = mtime_unix(configured);
  if (!cfg_.identity.stake_file.empty()) configured_at = std::max(configured_at, mtime_unix(cfg_.identity.stake_file));
  try {
    auto j = nlohmann::json::parse(read_text_file(path, path, "identity", 64u << 20));
    const int64_t fetched_at = j.at("fetched_at").get<int64_t>();
    FlowEpoch epoch;
    epoch.counter = j.at("epoch").at("counter").get<uint64_t>();
    epoch.phase = j.at("epoch").at("phase").get<std::string>();
    const std::string endpoint = j.at("endpoint").get<std::string>();
    const std::string when = iso8601_utc(static_cast<double>(fetched_at));
    if (fetched_at <= configured_at) {
      info.push_back("identity: " + configured + " changed after the table fetched at " + when + " (epoch " +
                     std::to_string(epoch.counter) + "): starting on it");
      return;
    }
    std::vector<NodeIdentity> nodes;
    const auto& list = j.at("nodes");
    for (size_t k = 0; k < list.size(); ++k) {
      const auto& o = list[k];
      NodeIdentity n;
      const std::string at = "nodes[" + std::to_string(k) + "]";
      set_node_fields(n, o.at("node_id").get<std::string>(), o.at("role").get<std::string>(),
                      o.at("address").get<std::string>(), path, at);
      n.weight = o.at("weight").get<double>();
      if (!set_node_status(n, o.at("status").get<std::string>()))
        throw std::runtime_error(at + ".status: unknown status '" + o.at("status").get<std::string>() + "'");
      n.network_key = o.value("network_key", "");
      n.staking_key = o.value("staking_key", "");
      nodes.push_back(std::move(n));
    }
    IdentityUpload up;
    up.kind = IdentityUpload::Kind::kNodes;
    up.nodes = std::move(nodes);
    up.origin = path;
    up.force = true;  // each fetched table passed the removal guard against the one before it
    // This commit rewrites identity.json as a change made now; restore_identity() read the
    // file before and brings back the times it kept for this table.
    Change ch = replace_identities(std::move(up));
    fetched_saved_unix_ = fetched_at;
    feed_.epoch = epoch;
    feed_.endpoint = endpoint;
    info.push_back("identity: starting on the table fetched from " + endpoint + " at " + when + " (epoch " +
                   std::to_string(epoch.counter) + (epoch.phase.empty() ? "" : ", " + epoch.phase) + ", " +
                   std::to_string(nodes_.size()) + " nodes), kept in " + path + ": newer than " + configured +
                   "; generation " + std::to_string(ch.generation));
    for (auto& w : ch.warnings) warnings.push_back(std::move(w));
  } catch (const std::exception& e) {
    warnings.push_back(path + ": ignored, starting on " + configured + " (" + e.what() + ")");
  }
}

void PolicyState::restore_identity(std::vector<std::string>& info, std::vector<std::string>& warnings) {
  if (state_dir_.empty()) return;
  // identity.json first: applying a kept fetched table rewrites it.
  struct Times {
    std::string fingerprint;
    int64_t changed_at = 0, confirmed_at = 0, fetched_at = 0;
  };
  std::optional<Times> saved;
  const std::string path = (std::filesystem::path(state_dir_) / "identity.json").string();
  std::error_code ec;
  if (std::filesystem::exists(path, ec)) {
    try {
      auto j = nlohmann::json::parse(read_text_file(path, path, "identity", 1u << 20));
      saved = Times{j.at("fingerprint").get<std::string>(), j.at("changed_at").get<int64_t>(),
                    j.at("confirmed_at").get<int64_t>(), j.value("fetched_at", int64_t{0})};
    } catch (const std::exception& e) {
      warnings.push_back(path + ": ignored, it is damaged (" + e.what() + ")");
    }
  }
  restore_fetched_table(info, warnings);
  if (saved) {
    // The last good fetch is about the endpoints, whatever table the start runs.
    feed_.last_success = std::max(feed_.last_success, saved->fetched_at);
    if (saved->fingerprint == table_fingerprint(nodes_)) {
      // The same table as before the restart: its age goes on.
      identity_changed_unix_ = saved->changed_at;
      identity_confirmed_unix_ = saved->confirmed_at;
    }
  }
  save_identity_times();
}

}  // namespace stakegate
