#include "stakegate/control/policy_state.h"

#include <algorithm>
#include <bit>
#include <ctime>
#include <set>
#include <sstream>

#include "stakegate/identity/flow_import.h"

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
    std::set<uint32_t> used;
    std::vector<SourcePlan*> fresh;
    for (SourcePlan& s : plan.sources) {
      if (s.addrs.empty()) { fresh.push_back(&s); continue; }  // cannot be matched: any free slot
      auto it = by_key.find(s.addrs.front());
      if (it == by_key.end()) { fresh.push_back(&s); continue; }
      s.slot = it->second;
      s.slot_epoch = owners[s.slot].epoch;
      owners[s.slot].last_used = generation;
      used.insert(s.slot);
    }
    // Free slots: never used first, then those unused longest.
    std::vector<uint32_t> reusable;
    for (uint32_t i = 0; i < owners.size(); ++i)
      if (!used.count(i)) reusable.push_back(i);
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

std::vector<BlockEntry> entries_of(const std::vector<ActiveBlock>& blocks) {
  std::vector<BlockEntry> out;
  for (const auto& b : blocks) out.push_back(b.entry);
  return out;
}

std::vector<ActiveBlock> config_blocks(const Config& cfg) {
  std::vector<ActiveBlock> out;
  for (const auto& b : cfg.blocklist) out.push_back({b, "config", 0});
  return out;
}

void check_shares(const Config& cfg) {
  double sum = cfg.unregistered.share;
  for (const auto& r : cfg.roles) sum += r.share;
  if (sum > 1.0 + 1e-9) {
    std::ostringstream total;
    total << sum;
    throw OpError("invalid_argument", "role shares plus unregistered.share would sum to " + total.str() + ", must be at most 1");
  }
}

}  // namespace

PolicyState::PolicyState(LoadedPolicy loaded, unsigned workers, size_t source_capacity, Publish publish,
                         unsigned rate_shards)
    : workers_(workers), shards_(rate_shards ? rate_shards : workers), publish_(std::move(publish)) {
  capacity_ = source_capacity ? source_capacity : std::max<size_t>(65536, 2 * loaded.plan.sources.size());
  slots_ = std::make_shared<Slots>();
  slots_->capacity = capacity_;
  std::string source = loaded.cfg.identity.path.empty() ? loaded.cfg.file + " (identity.nodes)" : loaded.cfg.identity.path;
  Config cfg = loaded.cfg;
  commit(std::move(cfg), std::move(loaded.nodes), config_blocks(loaded.cfg), source);
}

long PolicyState::find_node(const std::string& node_id) const {
  for (size_t i = 0; i < nodes_.size(); ++i)
    if (nodes_[i].node_id == node_id) return static_cast<long>(i);
  return -1;
}

PolicyState::Change PolicyState::commit(Config cfg, std::vector<NodeIdentity> nodes, std::vector<ActiveBlock> blocks,
                                        std::string identity_source) {
  cfg.blocklist = entries_of(blocks);
  StakePlan plan = make_stake_plan(cfg, nodes);
  auto slots = std::make_shared<Slots>(*slots_);
  uint64_t generation = snap_ ? snap_->generation + 1 : 1;
  try {
    slots->assign(plan, generation);
  } catch (const OpError& e) {  // name the table that does not fit
    throw OpError(e.code(), identity_source + ": " + e.what());
  }
  auto snap = PolicySnapshot::build(cfg, plan, shards_, snap_.get(), slots->slot_count());

  Change ch;
  ch.generation = snap->generation;
  std::set<std::string> before, after;
  for (const auto& n : nodes_) before.insert(n.node_id);
  for (const auto& n : nodes) after.insert(n.node_id);
  for (const auto& id : after) ch.added += !before.count(id);
  for (const auto& id : before) ch.removed += !after.count(id);

  // Accepted: nothing below throws.
  cfg_ = std::move(cfg);
  auto same_node = [](const NodeIdentity& a, const NodeIdentity& b) {
    return a.node_id == b.node_id && a.address == b.address && a.weight == b.weight && a.status == b.status;
  };
  if (identity_changed_unix_ == 0 || !std::equal(nodes.begin(), nodes.end(), nodes_.begin(), nodes_.end(), same_node))
    identity_changed_unix_ = static_cast<int64_t>(::time(nullptr));
  nodes_ = std::move(nodes);
  plan_ = std::move(plan);
  blocks_ = std::move(blocks);
  identity_source_ = std::move(identity_source);
  slots_ = std::move(slots);
  snap_ = snap;
  if (publish_) publish_(snap);
  return ch;
}

PolicyState::Change PolicyState::replace_identities(std::vector<NodeIdentity> nodes, const std::string& source,
                                                    const std::string& stake_json) {
  std::map<std::string, size_t> by_id, by_addr;
  for (size_t i = 0; i < nodes.size(); ++i) {
    if (!by_id.emplace(nodes[i].node_id, i).second)
      throw OpError("invalid_argument", source + ": NodeID " + nodes[i].node_id + " appears twice");
    std::string key = nodes[i].host + ":" + std::to_string(nodes[i].port);
    if (auto [it, fresh] = by_addr.emplace(key, i); !fresh)
      throw OpError("invalid_argument", source + ": nodes " + nodes[it->second].node_id + " and " + nodes[i].node_id +
                                            " share the address " + nodes[i].address);
  }
  std::vector<std::string> warnings;
  if (!stake_json.empty()) {
    for (const auto& [id, stake] : parse_stake_file(stake_json, source + " (stakes)")) {
      auto it = by_id.find(id);
      if (it == by_id.end()) warnings.push_back("stake for unknown node " + id + " ignored");
      else nodes[it->second].weight = stake;
    }
  }
  resolve_identities(nodes, cfg_.identity.hosts, source);
  Change ch = commit(cfg_, std::move(nodes), blocks_, source);
  ch.warnings = std::move(warnings);
  return ch;
}

PolicyState::Change PolicyState::block(BlockEntry entry, int64_t expires_at) {
  if (entry.cidr.has_value() == !entry.node_id.empty())
    throw OpError("invalid_argument", "a block needs exactly one of cidr and node_id");
  std::vector<ActiveBlock> blocks = blocks_;
  // Blocking what is already blocked refreshes its reason and expiry.
  auto same = [&](const ActiveBlock& b) {
    return b.entry.node_id == entry.node_id && b.entry.cidr.has_value() == entry.cidr.has_value() &&
           (!entry.cidr || (b.entry.cidr->base == entry.cidr->base && b.entry.cidr->prefix_len == entry.cidr->prefix_len));
  };
  blocks.erase(std::remove_if(blocks.begin(), blocks.end(), same), blocks.end());
  if (blocks.size() >= cfg_.limits_blocklist)
    throw OpError("resource_exhausted", "the blocklist is full: " + std::to_string(blocks.size()) +
                                            " entries (limits.blocklist); unblock some or raise the limit");
  blocks.push_back({entry, "api", expires_at});
  return commit(cfg_, nodes_, std::move(blocks), identity_source_);
}

PolicyState::Change PolicyState::unblock(const std::string& cidr_text, const std::string& node_id) {
  if (cidr_text.empty() == node_id.empty()) throw OpError("invalid_argument", "unblock needs exactly one of cidr and node_id");
  std::optional<Cidr> cidr;
  if (!cidr_text.empty()) {
    std::string why;
    cidr = parse_cidr(cidr_text, &why);
    if (!cidr) throw OpError("invalid_argument", "bad CIDR '" + cidr_text + "': " + why);
  }
  std::vector<ActiveBlock> blocks = blocks_;
  auto match = [&](const ActiveBlock& b) {
    if (cidr) return b.entry.cidr && b.entry.cidr->base == cidr->base && b.entry.cidr->prefix_len == cidr->prefix_len;
    return b.entry.node_id == node_id;
  };
  size_t before = blocks.size();
  blocks.erase(std::remove_if(blocks.begin(), blocks.end(), match), blocks.end());
  if (blocks.size() == before)
    throw OpError("not_found", "no blocklist entry for " + (cidr ? cidr->to_string() : node_id));
  Change ch = commit(cfg_, nodes_, std::move(blocks), identity_source_);
  ch.removed = before - blocks_.size();
  return ch;
}

PolicyState::Change PolicyState::set_role_qos(Role role, const RoleQos& qos) {
  Config cfg = cfg_;
  if (qos.share < 0 || qos.share > 1) throw OpError("invalid_argument", "share must be between 0 and 1");
  if (qos.min_pps < 0) throw OpError("invalid_argument", "min_pps must be >= 0");
  if (qos.burst_ms < 1 || qos.burst_ms > 60000) throw OpError("invalid_argument", "burst_ms must be between 1 and 60000");
  for (uint16_t p : qos.ports)
    if (p == 0) throw OpError("invalid_argument", "ports must be between 1 and 65535");
  cfg.roles[static_cast<int>(role)] = qos;
  cfg.roles[static_cast<int>(role)].configured = true;
  check_shares(cfg);
  return commit(std::move(cfg), nodes_, blocks_, identity_source_);
}

PolicyState::Change PolicyState::reload() {
  LoadedPolicy p = load_policy(cfg_.file);  // throws ConfigError: nothing changes
  Change warn;
  warn.warnings = p.warnings;
  if (p.cfg.dataplane.workers != cfg_.dataplane.workers || p.cfg.dataplane.outside.name() != cfg_.dataplane.outside.name() ||
      p.cfg.dataplane.inside.name() != cfg_.dataplane.inside.name() || p.cfg.dataplane.eal != cfg_.dataplane.eal)
    warn.warnings.push_back("dataplane settings changed in " + p.cfg.file + ": they take effect at the next start");
  p.cfg.dataplane = cfg_.dataplane;
  p.cfg.evidence_nodes = cfg_.evidence_nodes;  // open operator cases keep sampling
  // The file's blocklist replaces the config entries; blocks made through the API stay.
  std::vector<ActiveBlock> blocks = config_blocks(p.cfg);
  for (const auto& b : blocks_)
    if (b.origin == "api") blocks.push_back(b);
  std::string source = p.cfg.identity.path.empty() ? p.cfg.file + " (identity.nodes)" : p.cfg.identity.path;
  Change ch = commit(std::move(p.cfg), std::move(p.nodes), std::move(blocks), source);
  ch.warnings = std::move(warn.warnings);
  return ch;
}

PolicyState::Change PolicyState::set_evidence(const std::string& node_id, bool on) {
  Config c = cfg_;
  auto& v = c.evidence_nodes;
  v.erase(std::remove(v.begin(), v.end(), node_id), v.end());
  if (on) v.push_back(node_id);
  if (v == cfg_.evidence_nodes) return Change{generation(), 0, 0, {}};
  return commit(std::move(c), nodes_, blocks_, identity_source_);
}

bool PolicyState::expire(int64_t now) {
  std::vector<ActiveBlock> blocks = blocks_;
  auto expired = [&](const ActiveBlock& b) { return b.expires_at != 0 && b.expires_at <= now; };
  blocks.erase(std::remove_if(blocks.begin(), blocks.end(), expired), blocks.end());
  if (blocks.size() == blocks_.size()) return false;
  commit(cfg_, nodes_, std::move(blocks), identity_source_);
  return true;
}

}  // namespace stakegate
