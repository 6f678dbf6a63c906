#include "stakegate/control/policy_state.h"

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <map>
#include <tuple>
#include <sstream>
#include <utility>

#include <nlohmann/json.hpp>

#include "stakegate/base/clock.h"
#include "stakegate/base/files.h"
#include "stakegate/base/node_id.h"
#include "stakegate/control/block_store.h"
#include "stakegate/identity/flow_import.h"
#include "stakegate/identity/resolve.h"
#include "stakegate/identity/table.h"
#include "stakegate/policy/snapshot_builder.h"

namespace stakegate {

// Meter slots are keyed by a source's lowest address, so a node keeps its bucket and
// counters across tables, and one that leaves and returns finds them again. Slots are
// only given to another source when every slot is in use (the oldest unused first); the
// new owner gets a new epoch, which restarts the meter in every worker.
struct PolicyState::Slots {
  struct Owner {
    IpAddr key;
    uint32_t epoch = 0;
    uint64_t last_used = 0;  // generation
  };
  std::map<IpAddr, uint32_t> by_key;
  std::vector<Owner> owners;
  size_t capacity = 0;
  uint32_t next_epoch = 1;

  // Assigns plan.sources[*].slot/slot_epoch for `generation`. Throws when over capacity.
  // Works on a copy: the caller keeps it only if the whole change is accepted.
  void assign(StakePlan& plan, uint64_t generation) {
    if (plan.sources.size() > capacity)
      throw OpError("resource_exhausted", "the table has " + std::to_string(plan.sources.size()) +
                                              " source addresses; the source capacity is " +
                                              std::to_string(capacity) + " (limits.sources)");
    std::vector<char> used(owners.size(), 0);
    std::vector<SourcePlan*> fresh;
    for (SourcePlan& s : plan.sources) {
      if (s.addrs.empty()) { fresh.push_back(&s); continue; }  // cannot be matched: any free slot
      auto it = by_key.find(s.addrs.front());
      if (it == by_key.end()) { fresh.push_back(&s); continue; }
      s.slot = it->second;
      s.slot_epoch = owners[s.slot].epoch;
      owners[s.slot].last_used = generation;
      used[s.slot] = 1;
    }
    // Free slots: never used first, then those unused longest.
    std::vector<uint32_t> reusable;
    for (uint32_t i = 0; i < owners.size(); ++i)
      if (!used[i]) reusable.push_back(i);
    std::sort(reusable.begin(), reusable.end(),
              [&](uint32_t a, uint32_t b) { return owners[a].last_used < owners[b].last_used; });
    size_t next_reuse = 0;
    for (SourcePlan* s : fresh) {
      uint32_t slot;
      if (owners.size() < capacity) {
        slot = static_cast<uint32_t>(owners.size());
        owners.emplace_back();
      } else {
        slot = reusable.at(next_reuse++);
        by_key.erase(owners[slot].key);
      }
      owners[slot] = Owner{s->addrs.empty() ? IpAddr{} : s->addrs.front(), next_epoch++, generation};
      if (!s->addrs.empty()) by_key[s->addrs.front()] = slot;
      s->slot = slot;
      s->slot_epoch = owners[slot].epoch;
    }
  }
  size_t slot_count() const { return owners.size(); }
};

namespace {

constexpr uint64_t kMaxBlockSeconds = 10ull * 365 * 86400;  // longer is a mistake (or -1 wrapped)

std::vector<BlockEntry> entries_of(const std::vector<ActiveBlock>& blocks) {
  std::vector<BlockEntry> out;
  for (const auto& b : blocks) out.push_back(b.entry);
  return out;
}

std::vector<ActiveBlock> config_blocks(const Config& cfg) {
  std::vector<ActiveBlock> out;
  for (const auto& b : cfg.blocklist) {
    ActiveBlock a;  // never expires; no caller or creation time: the config made it
    a.entry = b;
    a.origin = "config";
    out.push_back(std::move(a));
  }
  return out;
}

void check_shares(const Config& cfg) {
  std::string problem = share_sum_problem(cfg);
  if (!problem.empty()) throw OpError("invalid_argument", "refused: " + problem);
}

std::optional<Cidr> need_cidr(const std::string& text) {
  if (text.empty()) return std::nullopt;
  std::string why;
  auto c = parse_cidr(text, &why);
  if (!c) throw OpError("invalid_argument", "bad CIDR '" + text + "': " + why);
  return c;
}

bool same_target(const BlockEntry& a, const BlockEntry& b) {
  if (a.cidr.has_value() != b.cidr.has_value() || a.node_id != b.node_id) return false;
  return !a.cidr || (a.cidr->base == b.cidr->base && a.cidr->prefix_len == b.cidr->prefix_len);
}

}  // namespace

int64_t PolicyState::system_clock() { return static_cast<int64_t>(::time(nullptr)); }

PolicyState::PolicyState(LoadedPolicy loaded, unsigned workers, size_t source_capacity, Publisher* publisher,
                         unsigned rate_shards, Clock clock, Clock steady)
    : workers_(workers),
      shards_(rate_shards ? rate_shards : workers),
      publisher_(publisher),
      clock_(std::move(clock)),
      steady_(std::move(steady)) {
  capacity_ = source_capacity ? source_capacity : std::max<size_t>(65536, 2 * loaded.plan.sources.size());
  slots_ = std::make_shared<Slots>();
  slots_->capacity = capacity_;
  Config cfg = loaded.cfg;
  commit(std::move(cfg), std::move(loaded.nodes), config_blocks(loaded.cfg), stakegate::identity_source(loaded.cfg), false);
}

std::optional<size_t> PolicyState::find_node(const std::string& node_id) const {
  auto id = NodeId::parse(node_id);
  if (!id) return std::nullopt;
  auto it = node_index_.find(id->str());
  if (it == node_index_.end()) return std::nullopt;
  return it->second;
}

size_t PolicyState::need_node(const std::string& node_id) const {
  if (!NodeId::parse(node_id)) throw OpError("invalid_argument", "node_id must be 64 hex characters, got '" + node_id + "'");
  auto i = find_node(node_id);
  if (!i) throw OpError("not_found", "node " + node_id + " is not in the identity table");
  return *i;
}

PolicyState::Change PolicyState::commit(Config cfg, std::vector<NodeIdentity> nodes, std::vector<ActiveBlock> blocks,
                                        std::string identity_source, bool wait) {
  cfg.blocklist = entries_of(blocks);
  StakePlan plan = make_stake_plan(cfg, nodes);
  auto slots = std::make_shared<Slots>(*slots_);
  uint64_t generation = snap_ ? snap_->generation + 1 : 1;
  try {
    slots->assign(plan, generation);
  } catch (const OpError& e) {  // name the table that does not fit
    throw OpError(e.code(), identity_source + ": " + e.what());
  }
  auto snap = SnapshotBuilder::build(cfg, plan, Sharding{shards_, workers_}, snap_.get(), slots->slot_count());

  Change ch;
  ch.generation = snap->generation;
  // node_index_ still indexes the running table: what is not found there was added; what
  // was not found again, removed. (Sets of a million strings took a second here.)
  const size_t kept = kept_nodes(nodes);
  ch.added = nodes.size() - kept;
  ch.removed = nodes_.size() > kept ? nodes_.size() - kept : 0;

  // Accepted: nothing below throws.
  cfg_ = std::move(cfg);
  auto same_node = [](const NodeIdentity& a, const NodeIdentity& b) {
    return a.node_id == b.node_id && a.address == b.address && a.weight == b.weight && a.status == b.status;
  };
  const bool identity_changed =
      identity_changed_unix_ == 0 || !std::equal(nodes.begin(), nodes.end(), nodes_.begin(), nodes_.end(), same_node);
  if (identity_changed) identity_changed_unix_ = identity_confirmed_unix_ = clock_();
  nodes_ = std::move(nodes);
  node_index_.clear();
  for (size_t i = 0; i < nodes_.size(); ++i) node_index_.emplace(nodes_[i].node_id, i);
  plan_ = std::move(plan);
  auto api_blocks = [](const std::vector<ActiveBlock>& v) {
    std::vector<std::tuple<std::string, std::string, std::string, int64_t>> out;
    for (const auto& b : v)
      if (b.origin == "api")
        out.emplace_back(b.entry.cidr ? b.entry.cidr->to_string() : "", b.entry.node_id, b.entry.reason,
                         b.deadline ? b.deadline : b.expires_at);
    return out;
  };
  const bool api_changed = api_blocks(blocks) != api_blocks(blocks_);
  blocks_ = std::move(blocks);
  if (api_changed && !state_dir_.empty()) {
    try {
      save_api_blocks(state_dir_, blocklist());
    } catch (const std::exception& e) {
      ch.warnings.push_back(std::string(e.what()) + ": the change is in force, but would be lost on a restart");
    }
  }
  identity_source_ = std::move(identity_source);
  slots_ = std::move(slots);
  snap_ = snap;
  if (identity_changed) save_identity_times();
  if (publisher_) {
    publisher_->publish(snap);
    if (wait) ch.applied = publisher_->wait_applied();
  }
  return ch;
}

PolicyState::Change PolicyState::replace_identities(IdentityUpload up) {
  return commit_identities(prepare_identities(std::move(up), cfg_.identity));
}

PolicyState::PreparedIdentities PolicyState::prepare_identities(IdentityUpload up, const IdentityConfig& identity) {
  PreparedIdentities p;
  p.force = up.force;
  p.source = up.origin;
  switch (up.kind) {
    case IdentityUpload::Kind::kFlowNodeInfos:
      p.source += ": node-infos.pub.json";
      p.nodes = parse_flow_node_infos(up.flow_json, p.source);
      break;
    case IdentityUpload::Kind::kFlowSnapshot:
      p.source += ": protocol state snapshot";
      p.nodes = parse_flow_snapshot(up.flow_json, p.source);
      break;
    case IdentityUpload::Kind::kNodes:
      p.source += ": identity table";
      p.nodes = std::move(up.nodes);
      break;
  }
  check_identity_table(p.nodes, p.source);
  if (!up.stake_json.empty())
    apply_stakes(p.nodes, parse_stake_file(up.stake_json, p.source + " (stakes)"), "stakes", &p.warnings);
  // The lookup round only: the addresses (and the warnings about names that do not
  // resolve) are taken from the cache at commit, under the identity.hosts running then.
  if (std::string w = lookup_due_names(p.nodes, identity.hosts, identity.dns); !w.empty()) p.warnings.push_back(w);
  return p;
}

PolicyState::Change PolicyState::commit_identities(PreparedIdentities p) {
  guard_removal(p.nodes, cfg_.identity.max_removed_fraction, p.force, p.source);
  std::vector<std::string> warnings = std::move(p.warnings);
  resolve_identities(p.nodes, cfg_.identity.hosts, cfg_.identity.dns, p.source, &warnings, false);
  cluster_warnings(cfg_, p.nodes, p.source, warnings);
  Change ch = commit(cfg_, std::move(p.nodes), blocks_, p.source);
  if (std::string w = silenced_nodes(nodes_, plan_, identity_source_); !w.empty()) warnings.push_back(w);
  ch.warnings = std::move(warnings);
  confirm_identity(clock_());
  return ch;
}


PolicyState::Change PolicyState::block(const std::string& cidr_text, const std::string& node_id, const std::string& reason,
                                       uint64_t expires_in_s, const std::string& created_by) {
  if (cidr_text.empty() == node_id.empty()) throw OpError("invalid_argument", "a block needs exactly one of cidr and node_id");
  if (expires_in_s > kMaxBlockSeconds)
    throw OpError("invalid_argument", "expires_in_s must be at most " + std::to_string(kMaxBlockSeconds) +
                                          " (ten years); 0 blocks until unblocked");
  BlockEntry entry;
  entry.cidr = need_cidr(cidr_text);
  if (std::string refusal = entry.cidr ? block_refusal(*entry.cidr) : ""; !refusal.empty())
    throw OpError("invalid_argument", "refused '" + cidr_text + "': " + refusal);
  if (!node_id.empty()) entry.node_id = nodes_[need_node(node_id)].node_id;
  entry.reason = reason;
  std::vector<ActiveBlock> blocks = blocks_;
  // Blocking what is already blocked refreshes its reason and expiry.
  blocks.erase(std::remove_if(blocks.begin(), blocks.end(), [&](const ActiveBlock& b) { return same_target(b.entry, entry); }),
               blocks.end());
  if (blocks.size() >= cfg_.limits_blocklist)
    throw OpError("resource_exhausted", "the blocklist is full: " + std::to_string(blocks.size()) +
                                            " entries (limits.blocklist); unblock some or raise the limit");
  const int64_t in = static_cast<int64_t>(expires_in_s);
  blocks.push_back({entry, "api", in ? clock_() + in : 0, in ? steady_() + in : 0, created_by, clock_()});
  Change ch = commit(cfg_, nodes_, std::move(blocks), identity_source_);
  if (std::string w = block_in_cluster(cfg_, entry); !w.empty()) ch.warnings.push_back(w);
  return ch;
}

PolicyState::Change PolicyState::unblock(const std::string& cidr_text, const std::string& node_id) {
  if (cidr_text.empty() == node_id.empty()) throw OpError("invalid_argument", "unblock needs exactly one of cidr and node_id");
  BlockEntry target;
  target.cidr = need_cidr(cidr_text);
  if (!node_id.empty()) {
    auto id = NodeId::parse(node_id);
    if (!id) throw OpError("invalid_argument", "node_id must be 64 hex characters, got '" + node_id + "'");
    target.node_id = id->str();  // a node that left the table can still be unblocked
  }
  std::vector<ActiveBlock> blocks = blocks_;
  size_t before = blocks.size();
  blocks.erase(std::remove_if(blocks.begin(), blocks.end(), [&](const ActiveBlock& b) { return same_target(b.entry, target); }),
               blocks.end());
  if (blocks.size() == before)
    throw OpError("not_found", "no blocklist entry for " + (target.cidr ? target.cidr->to_string() : target.node_id));
  Change ch = commit(cfg_, nodes_, std::move(blocks), identity_source_);
  ch.removed = before - blocks_.size();
  return ch;
}

PolicyState::Change PolicyState::set_role_qos(const std::string& role_name, const RoleQosPatch& patch) {
  auto role = parse_role(role_name);
  if (!role)
    throw OpError("invalid_argument",
                  "unknown role '" + role_name + "' (collection, consensus, execution, verification, access)");
  RoleQos qos = cfg_.roles[static_cast<int>(*role)];
  if (patch.share) qos.share = *patch.share;
  if (patch.min_pps) qos.min_pps = *patch.min_pps;
  if (patch.burst_ms) qos.burst_ms = *patch.burst_ms;
  if (patch.ports && !patch.ports->empty() && patch.all_ports)
    throw OpError("invalid_argument", "give ports or all_ports, not both");
  if (patch.ports && !patch.ports->empty()) {
    qos.ports.clear();
    for (uint32_t p : *patch.ports) {
      if (p < 1 || p > 65535) throw OpError("invalid_argument", "port " + std::to_string(p) + " is not between 1 and 65535");
      qos.ports.push_back(static_cast<uint16_t>(p));
    }
    std::sort(qos.ports.begin(), qos.ports.end());
    qos.ports.erase(std::unique(qos.ports.begin(), qos.ports.end()), qos.ports.end());
  }
  if (patch.all_ports) qos.ports.clear();
  if (qos.share < 0 || qos.share > 1) throw OpError("invalid_argument", "share must be between 0 and 1");
  if (qos.min_pps < 0) throw OpError("invalid_argument", "min_pps must be >= 0");
  if (qos.burst_ms < 1 || qos.burst_ms > 60000) throw OpError("invalid_argument", "burst_ms must be between 1 and 60000");
  Config cfg = cfg_;
  qos.configured = true;
  cfg.roles[static_cast<int>(*role)] = qos;
  check_shares(cfg);
  const std::string warning = sessions_share_warning(cfg);
  Change ch = commit(std::move(cfg), nodes_, blocks_, identity_source_);
  if (!warning.empty()) ch.warnings.push_back(warning);
  if (std::string w = silenced_nodes(nodes_, plan_, "roles." + role_name); !w.empty()) ch.warnings.push_back(w);
  return ch;
}


LoadedPolicy PolicyState::load_for_reload(const std::string& config_file) { return load_policy(config_file); }

PolicyState::Change PolicyState::reload(bool force) { return apply_reload(load_for_reload(cfg_.file), force); }

size_t PolicyState::kept_nodes(const std::vector<NodeIdentity>& next) const {
  size_t kept = 0;  // NodeIDs are unique within a table (check_identity_table)
  for (const auto& n : next) kept += node_index_.count(n.node_id);
  return kept;
}

void PolicyState::guard_removal(const std::vector<NodeIdentity>& next, double max_fraction, bool force,
                                const std::string& source) const {
  if (force || nodes_.empty()) return;
  const size_t kept = kept_nodes(next);
  const size_t removed = nodes_.size() > kept ? nodes_.size() - kept : 0;
  if (static_cast<double>(removed) <= max_fraction * static_cast<double>(nodes_.size())) return;
  std::ostringstream m;
  m << source << ": the new table removes " << removed << " of the " << nodes_.size() << " running nodes ("
    << static_cast<int>(100.0 * removed / nodes_.size()) << " %), more than identity.max_removed_fraction ("
    << static_cast<int>(100 * max_fraction) << " %); if that is right, apply it with --force "
    << "(stakegatectl identities replace --force, stakegatectl reload --force)";
  throw OpError("failed_precondition", m.str());
}

std::vector<std::string> PolicyState::restore_blocks() {
  std::vector<std::string> warnings;
  if (state_dir_.empty()) return warnings;
  std::vector<ActiveBlock> saved = load_api_blocks(state_dir_, clock_(), warnings);
  if (saved.empty()) return warnings;
  std::vector<ActiveBlock> blocks = blocks_;
  for (auto& b : saved) {
    // A block given in the config too stays the config's.
    bool known = std::any_of(blocks.begin(), blocks.end(), [&](const ActiveBlock& x) { return same_target(x.entry, b.entry); });
    if (!known) blocks.push_back(std::move(b));
  }
  if (blocks.size() > cfg_.limits_blocklist) {
    warnings.push_back("restoring " + std::to_string(saved.size()) + " API blocks would pass limits.blocklist (" +
                       std::to_string(cfg_.limits_blocklist) + "): only the first fit");
    blocks.resize(cfg_.limits_blocklist);
  }
  size_t restored = blocks.size() - blocks_.size();
  Change ch = commit(cfg_, nodes_, std::move(blocks), identity_source_, false);
  warnings.insert(warnings.end(), ch.warnings.begin(), ch.warnings.end());
  warnings.push_back("restored " + std::to_string(restored) + " blocks made through the API from " + state_dir_ +
                     "/blocks.json");
  return warnings;
}

PolicyState::Change PolicyState::apply_reload(LoadedPolicy p, bool force) {
  guard_removal(p.nodes, p.cfg.identity.max_removed_fraction, force, p.cfg.file);
  std::vector<std::string> warnings = p.warnings;
  if (!(p.cfg.dataplane == cfg_.dataplane))
    warnings.push_back("dataplane settings changed in " + p.cfg.file + ": they take effect at the next start");
  p.cfg.dataplane = cfg_.dataplane;
  // The control plane's listeners stay as they started; a reload re-reads the token files,
  // the TLS files (at their running paths) and metrics_basic_auth. The rest is said, and
  // kept as it runs, so that what the config reports is what is in force.
  ControlConfig& nc = p.cfg.control;
  const ControlConfig& rc = cfg_.control;
  std::string held;
  auto keep = [&](const char* key, auto& now, const auto& running) {
    if (now == running) return;
    held += (held.empty() ? "" : ", ") + std::string("control.") + key;
    now = running;
  };
  keep("socket", nc.socket, rc.socket);
  keep("socket_group", nc.socket_group, rc.socket_group);
  keep("socket_mode", nc.socket_mode, rc.socket_mode);
  keep("readonly_socket", nc.readonly_socket, rc.readonly_socket);
  keep("readonly_group", nc.readonly_group, rc.readonly_group);
  keep("readonly_mode", nc.readonly_mode, rc.readonly_mode);
  keep("tcp", nc.tcp, rc.tcp);
  keep("tls", nc.tls, rc.tls);
  keep("allow_plaintext", nc.allow_plaintext, rc.allow_plaintext);
  keep("metrics", nc.metrics, rc.metrics);
  keep("metrics_tls", nc.metrics_tls, rc.metrics_tls);
  keep("max_body_bytes", nc.max_body_bytes, rc.max_body_bytes);
  keep("max_connections", nc.max_connections, rc.max_connections);
  keep("max_connections_per_peer", nc.max_connections_per_peer, rc.max_connections_per_peer);
  keep("reload_timeout_s", nc.reload_timeout_s, rc.reload_timeout_s);
  if (!held.empty())
    warnings.push_back(held + " changed in " + p.cfg.file +
                       ": the listeners keep their settings until the next start (a reload re-reads the token "
                       "files, the TLS files and metrics_basic_auth)");
  p.cfg.evidence_nodes = cfg_.evidence_nodes;  // open operator cases keep sampling
  // The file's blocklist replaces the config entries; blocks made through the API stay.
  std::vector<ActiveBlock> blocks = config_blocks(p.cfg);
  for (const auto& b : blocks_)
    if (b.origin == "api") blocks.push_back(b);
  std::string source = stakegate::identity_source(p.cfg);
  Change ch = commit(std::move(p.cfg), std::move(p.nodes), std::move(blocks), source);
  ch.warnings = std::move(warnings);
  return ch;
}

PolicyState::Change PolicyState::set_evidence(const std::string& node_id, bool on) {
  // Starting needs the node in the table; stopping does not (it may have left it since).
  auto parsed = NodeId::parse(node_id);
  if (!parsed) throw OpError("invalid_argument", "node_id must be 64 hex characters, got '" + node_id + "'");
  if (on) need_node(node_id);
  const std::string& id = parsed->str();
  Config c = cfg_;
  auto& v = c.evidence_nodes;
  v.erase(std::remove(v.begin(), v.end(), id), v.end());
  if (on) v.push_back(id);
  if (v == cfg_.evidence_nodes) return Change{generation(), 0, 0, {}, true};
  return commit(std::move(c), nodes_, blocks_, identity_source_);
}

std::vector<ActiveBlock> PolicyState::blocklist() const {
  std::vector<ActiveBlock> out = blocks_;
  const int64_t wall = clock_(), steady = steady_();
  for (auto& b : out)
    if (b.deadline) b.expires_at = wall + (b.deadline - steady);
  return out;
}

bool PolicyState::expire() {
  const int64_t now = steady_();
  std::vector<ActiveBlock> blocks = blocks_;
  const int64_t wall = clock_();
  auto expired = [&](const ActiveBlock& b) {
    return b.deadline != 0 ? b.deadline <= now : b.expires_at != 0 && b.expires_at <= wall;  // made here : restored
  };
  blocks.erase(std::remove_if(blocks.begin(), blocks.end(), expired), blocks.end());
  if (blocks.size() == blocks_.size()) return false;
  commit(cfg_, nodes_, std::move(blocks), identity_source_);
  return true;
}

}  // namespace stakegate
