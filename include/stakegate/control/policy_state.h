#pragma once
// The operations layer of the control plane: every change an operator can make (a new
// identity table, a block, a role's QoS, a config reload, an expiring block, evidence
// sampling) goes through PolicyState. It owns the rules: it validates the request,
// builds a complete new PolicySnapshot, publishes it and waits until the workers apply
// it. A refused change throws OpError (or ConfigError) and leaves the running state as
// it was. The API, stakegatectl (through the API), SIGHUP and timers are thin callers.
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#include "stakegate/base/clock.h"
#include "stakegate/config/config.h"
#include "stakegate/control/publisher.h"
#include "stakegate/identity/flow_import.h"
#include "stakegate/identity/node.h"
#include "stakegate/policy/load.h"
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
  int64_t expires_at = 0;   // unix seconds; 0: never (as the wall clock reads now: see deadline)
  // A block made in this run ends on the steady clock (seconds; 0: restored or never), so
  // that a step of the wall clock (NTP) neither ends it early nor keeps it for years. One
  // restored at start ends at its saved expires_at on the wall clock: how long ago that was
  // saved is not known (a reboot), and the wall clock may still be wrong at start (NTP
  // corrects it later, and then its end is right again).
  int64_t deadline = 0;
  std::string created_by;   // API blocks: the caller, as the audit log names it
  int64_t created_at = 0;   // unix seconds
};

// A new identity table as it arrives: Flow JSON (either format) or nodes already parsed.
struct IdentityUpload {
  enum class Kind { kFlowNodeInfos, kFlowSnapshot, kNodes } kind = Kind::kNodes;
  std::string flow_json;           // kFlowNodeInfos, kFlowSnapshot
  std::vector<NodeIdentity> nodes;  // kNodes (fields already set; addresses not yet resolved)
  std::string stake_json;          // optional: NodeID -> stake
  std::string origin = "api";      // for messages: "api", a file name, ...
  bool force = false;              // past the guard on removing many nodes at once
};

// A change of one role's QoS: fields left empty keep their value.
struct RoleQosPatch {
  std::optional<double> share, min_pps;
  std::optional<uint32_t> burst_ms;
  std::optional<std::vector<uint32_t>> ports;  // replaces the list
  bool all_ports = false;                      // clears the list: every port allowed
};

class PolicyState {
 public:
  using Clock = std::function<int64_t()>;  // Unix seconds
  static int64_t system_clock();

  struct Change {
    uint64_t generation = 0;
    size_t added = 0, removed = 0;  // nodes, for identity changes; entries, for unblock
    std::vector<std::string> warnings;
    bool applied = true;            // every worker decides with it (false: a worker did not answer in time)
  };

  // Builds and publishes the first snapshot from a loaded policy (without waiting: the
  // workers start after). `source_capacity` bounds the meter slots workers preallocate
  // (0: twice the table, at least 65,536). `rate_shards` is how many workers share one
  // source's traffic (and so its rate): the number of workers, or 1 when RSS on the
  // source address sends each source to one worker. `publisher` may be null.
  PolicyState(LoadedPolicy loaded, unsigned workers, size_t source_capacity, Publisher* publisher,
              unsigned rate_shards = 0, Clock clock = system_clock, Clock steady = steady_seconds);  // steady: durations

  Change replace_identities(IdentityUpload upload);
  // replace_identities() in two halves, so that parsing a large table and waiting on DNS
  // stay off the control thread: prepare_identities() (any thread; reads no state) parses
  // and checks the upload and looks up its names that are due (identity.dns.timeout_s at
  // most); commit_identities() (the control thread) checks the removal guard against the
  // running table, takes the addresses from the name cache and publishes.
  struct PreparedIdentities {
    std::vector<NodeIdentity> nodes;
    std::string source;
    bool force = false;
    std::vector<std::string> warnings;
  };
  static PreparedIdentities prepare_identities(IdentityUpload upload, const IdentityConfig& identity);
  Change commit_identities(PreparedIdentities prepared);
  // Blocks a CIDR or a node (exactly one); expires_in_s 0 means until unblocked.
  Change block(const std::string& cidr, const std::string& node_id, const std::string& reason, uint64_t expires_in_s,
               const std::string& created_by = "");
  Change unblock(const std::string& cidr, const std::string& node_id);
  Change set_role_qos(const std::string& role, const RoleQosPatch& patch);
  Change reload(bool force = false);    // re-reads the config file it was started with
  // The two halves of reload(): reading and checking the files (pure: any thread, no
  // state touched), then applying the result (the control thread).
  static LoadedPolicy load_for_reload(const std::string& config_file);
  Change apply_reload(LoadedPolicy loaded, bool force = false);
  // API blocks are saved to `<dir>/blocks.json` after each change from now on; restore()
  // brings back those saved before (at start). Returns warnings (a damaged file, ...).
  void persist_blocks_in(std::string dir) { state_dir_ = std::move(dir); }
  std::vector<std::string> restore_blocks();
  // Marks a node's source for evidence sampling (an operator's case), or stops it.
  Change set_evidence(const std::string& node_id, bool on);
  bool expire();                        // drops expired blocks; true when it published
  // Re-reads the nodes' addresses from the name cache (after a DNS round) and publishes
  // when one moved; `moves` gets "NAME: OLD -> NEW" per moved name. nullopt: nothing moved.
  std::optional<Change> refresh_addresses(std::vector<std::string>* moves = nullptr);

  // Following epochs (identity.access_api): what the fetcher last saw.
  struct Feed {
    int64_t last_success = 0;  // Unix seconds of the last fetch that applied or confirmed the table
    uint64_t failures = 0;     // fetches that failed or were refused
    FlowEpoch epoch;           // of the last good snapshot
    std::string endpoint, last_error;
  };
  const Feed& feed() const { return feed_; }
  // A fetched table: applied when it differs from the running one (the checks and guard of
  // a replace, never forced), confirmed current either way. nullopt: it was unchanged.
  // Throws like replace_identities(); the caller counts that with fetch_failed().
  std::optional<Change> apply_fetched(std::vector<NodeIdentity> nodes, const FlowEpoch& epoch, const std::string& endpoint);
  void fetch_failed(const std::string& error);
  // Same nodes (NodeID, role, address, weight, status), in any order.
  bool same_table(const std::vector<NodeIdentity>& next) const;
  // When the table was last known current: it changed, an operator replaced or reloaded it,
  // or a fetch found it unchanged. With identity_changed_unix(), kept in
  // <state_dir>/identity.json across restarts of the same table.
  int64_t identity_confirmed_unix() const { return identity_confirmed_unix_; }
  // Once at start, after persist_blocks_in(): what the state_dir kept about the identity
  // table. With identity.access_api, every fetched table that is applied (and, every ten
  // minutes, one confirmed) is kept in <state_dir>/identity-fetched.json; when that table
  // was fetched after the configured identity (and stake) files last changed, the gateway
  // starts on it rather than on an older configured table (an Access API unreachable at
  // start no longer leaves it epochs behind). Then, when the running table is the one
  // identity.json describes, its change and confirmation times go on. Reports what to log:
  // `info` lines, and `warnings` (a damaged file is ignored: the configured table runs).
  void restore_identity(std::vector<std::string>& info, std::vector<std::string>& warnings);

  const Config& config() const { return cfg_; }
  const std::vector<NodeIdentity>& nodes() const { return nodes_; }
  const StakePlan& plan() const { return plan_; }
  const std::shared_ptr<const PolicySnapshot>& snapshot() const { return snap_; }
  uint64_t generation() const { return snap_->generation; }
  const std::string& identity_source() const { return identity_source_; }
  // The blocks, each expires_at as the wall clock reads now (a copy: blocklist_size() to count).
  std::vector<ActiveBlock> blocklist() const;
  size_t blocklist_size() const { return blocks_.size(); }
  size_t source_capacity() const { return capacity_; }
  unsigned workers() const { return workers_; }
  unsigned rate_shards() const { return shards_; }
  int64_t now() const { return clock_(); }
  // When the identity table last changed (Unix seconds): start, swaps, reloads that changed it.
  int64_t identity_changed_unix() const { return identity_changed_unix_; }
  // The node's index in nodes(): NodeIDs in either case; nullopt when absent or malformed.
  std::optional<size_t> find_node(const std::string& node_id) const;
  // The node's index, or OpError: invalid_argument for a malformed NodeID, not_found.
  size_t need_node(const std::string& node_id) const;

 private:
  struct Slots;  // stable slot assignment by source address
  // The running nodes that `next` keeps (NodeIDs are unique within a table).
  size_t kept_nodes(const std::vector<NodeIdentity>& next) const;
  // Refuses (failed_precondition) a table that removes more than identity.max_removed_fraction
  // of the running one's nodes, unless forced.
  void guard_removal(const std::vector<NodeIdentity>& next, double max_fraction, bool force,
                     const std::string& source) const;
  Change commit(Config cfg, std::vector<NodeIdentity> nodes, std::vector<ActiveBlock> blocks,
                std::string identity_source, bool wait = true);

  Config cfg_;
  std::vector<NodeIdentity> nodes_;
  std::unordered_map<std::string, size_t> node_index_;
  StakePlan plan_;
  std::vector<ActiveBlock> blocks_;
  std::string identity_source_;
  std::shared_ptr<const PolicySnapshot> snap_;
  std::shared_ptr<Slots> slots_;
  unsigned workers_;
  unsigned shards_;
  size_t capacity_;
  int64_t identity_changed_unix_ = 0;
  int64_t identity_confirmed_unix_ = 0;
  Feed feed_;
  int64_t identity_saved_unix_ = 0;
  int64_t fetched_saved_unix_ = 0;
  void confirm_identity(int64_t when);
  void save_identity_times();
  void restore_fetched_table(std::vector<std::string>& info, std::vector<std::string>& warnings);
  void save_fetched_table(bool changed);
  std::string state_dir_;
  Publisher* publisher_;
  Clock clock_;
  Clock steady_;
};

}  // namespace stakegate
