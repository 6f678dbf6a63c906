#pragma once
// The operations layer of the control plane: every change an operator can make (a new
// identity table, a block, a role's QoS, a config reload, an expiring block) goes
// through PolicyState, which validates it, builds a complete new PolicySnapshot and
// only then publishes it. A refused change throws and leaves the running state as it
// was. The API, SIGHUP and timers are thin callers of these operations.
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "stakegate/config/config.h"
#include "stakegate/config/policy.h"
#include "stakegate/identity/node.h"
#include "stakegate/policy/snapshot.h"
#include "stakegate/policy/stake_plan.h"

namespace stakegate {

// A refused operation; `code` is the API's error code (invalid_argument, not_found, ...).
class OpError : public std::runtime_error {
 public:
  OpError(std::string code, const std::string& message) : std::runtime_error(message), code_(std::move(code)) {}
  const std::string& code() const { return code_; }

 private:
  std::string code_;
};

struct ActiveBlock {
  BlockEntry entry;
  std::string origin;       // "config" or "api"
  int64_t expires_at = 0;   // unix seconds; 0: never
};

class PolicyState {
 public:
  using Publish = std::function<void(std::shared_ptr<const PolicySnapshot>)>;

  struct Change {
    uint64_t generation = 0;
    size_t added = 0, removed = 0;  // nodes, for identity changes
    std::vector<std::string> warnings;
  };

  // Builds the first snapshot from a loaded policy. `source_capacity` bounds the meter
  // slots workers preallocate (0: twice the table, at least 65,536).
  // `rate_shards` is how many workers share one source's traffic (and so its rate): the
  // number of workers, or 1 when RSS on source IP sends each source to one worker.
  PolicyState(LoadedPolicy loaded, unsigned workers, size_t source_capacity, Publish publish, unsigned rate_shards = 0);

  Change replace_identities(std::vector<NodeIdentity> nodes, const std::string& source,
                            const std::string& stake_json = "");
  Change block(BlockEntry entry, int64_t expires_at);
  Change unblock(const std::string& cidr, const std::string& node_id);
  Change set_role_qos(Role role, const RoleQos& qos);
  Change reload();                      // re-reads the config file it was started with
  // Marks a node's source for evidence sampling (an operator's case), or stops it.
  Change set_evidence(const std::string& node_id, bool on);
  bool expire(int64_t now_unix);        // drops expired blocks; true when it published

  const Config& config() const { return cfg_; }
  const std::vector<NodeIdentity>& nodes() const { return nodes_; }
  const StakePlan& plan() const { return plan_; }
  const std::shared_ptr<const PolicySnapshot>& snapshot() const { return snap_; }
  uint64_t generation() const { return snap_->generation; }
  const std::string& identity_source() const { return identity_source_; }
  const std::vector<ActiveBlock>& blocklist() const { return blocks_; }
  size_t source_capacity() const { return capacity_; }
  unsigned workers() const { return workers_; }
  unsigned rate_shards() const { return shards_; }
  // When the identity table last changed (Unix seconds): start, swaps, reloads that changed it.
  int64_t identity_changed_unix() const { return identity_changed_unix_; }
  // Index of the node in nodes(), or -1.
  long find_node(const std::string& node_id) const;

 private:
  struct Slots;  // stable slot assignment by source address
  Change commit(Config cfg, std::vector<NodeIdentity> nodes, std::vector<ActiveBlock> blocks,
                std::string identity_source);

  Config cfg_;
  std::vector<NodeIdentity> nodes_;
  StakePlan plan_;
  std::vector<ActiveBlock> blocks_;
  std::string identity_source_;
  std::shared_ptr<const PolicySnapshot> snap_;
  std::shared_ptr<Slots> slots_;
  unsigned workers_;
  unsigned shards_;
  size_t capacity_;
  int64_t identity_changed_unix_ = 0;
  Publish publish_;
};

}  // namespace stakegate
