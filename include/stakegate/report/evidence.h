#pragma once
// Peer-score visibility and evidence bundles, off the worker cores. Both `run` (on the
// control thread) and `replay` feed the same classes with what the workers' sample rings
// carry, so a capture recorded elsewhere produces the same bundles as live traffic.
//
// A case is a directory <evidence.dir>/<UTC time>-<NodeID prefix>-<reason>/ holding
// report.json, sample.pcapng and flip.md (docs/operations.md "Reporting an errant node").
#include <cstdint>
#include <cstdio>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "stakegate/config/config.h"
#include "stakegate/identity/node.h"
#include "stakegate/pipeline/sample_ring.h"
#include "stakegate/pipeline/worker.h"
#include "stakegate/policy/stake_plan.h"
#include "stakegate/report/counters.h"

namespace stakegate {

// A pcapng file (SHB, one Ethernet IDB with nanosecond timestamps, EPBs with a comment).
class PcapngWriter {
 public:
  // Returns false (with errno set) when the file cannot be created.
  bool open(const std::string& path, uint32_t snaplen);
  bool write(uint64_t unix_ns, const uint8_t* data, uint32_t caplen, uint32_t orig_len, const std::string& comment);
  bool close();  // false when a buffered write failed
  ~PcapngWriter() { close(); }
  uint64_t bytes() const { return bytes_; }

 private:
  std::FILE* f_ = nullptr;
  uint64_t bytes_ = 0;
  bool ok_ = true;
};

// One staked source as the evidence code needs it, looked up when an event arrives.
struct SourceView {
  uint32_t slot = 0, epoch = 0;
  std::vector<NodeIdentity> nodes;  // every node behind the source address
  std::vector<std::string> addrs;
  Role role = Role::kCollection;
  double rate_pps = 0, burst = 0;   // its SWQoS allowance (all workers)
  SourceTotals counters;            // summed over the workers, now
  double score = 0;                 // summed over the workers, decayed to now
  bool graylisted = false;          // by any worker, and not yet recovered by decay
};

// Builds SourceViews from the workers and the identity table in force. Not thread-safe:
// the control thread (or replay) calls it; the workers' fields are read as they are.
class SourceDirectory {
 public:
  // `shards`: how many workers share a source's traffic (1 with RSS on source IP).
  void reset(const std::vector<const Worker*>& workers, const std::vector<NodeIdentity>* nodes, const StakePlan* plan,
             const ScoringConfig& scoring, unsigned shards = 0);
  unsigned shards() const { return shards_; }
  // Scores are decayed to each worker's own clock (Worker::clock_ns).
  std::optional<SourceView> by_slot(uint32_t slot) const;
  std::optional<SourceView> by_node(const std::string& node_id) const;
  uint64_t now() const;  // the latest worker clock: the data path's "now"

 private:
  std::optional<SourceView> make(size_t source_index) const;
  std::vector<const Worker*> workers_;
  const std::vector<NodeIdentity>* nodes_ = nullptr;
  const StakePlan* plan_ = nullptr;
  ScoringConfig scoring_;
  unsigned shards_ = 1;
  std::map<uint32_t, size_t> by_slot_;  // slot -> index in plan->sources
};

struct GraylistEntry {
  uint32_t slot = 0, epoch = 0;
  uint64_t since_ns = 0;
  uint64_t until_ns = 0;  // in history(): when it recovered (0: still graylisted)
  double score = 0;       // at entry
  std::vector<std::string> node_ids;
};

// Which sources are graylisted, as operators see it: entered when a worker reports an
// entry; left when every worker's score has decayed past `recover` (even if the source
// sent nothing since, so its worker has not noticed yet). Each transition is logged once.
class GraylistTracker {
 public:
  using Log = std::function<void(bool warning, const std::string&)>;
  explicit GraylistTracker(Log log) : log_(std::move(log)) {}
  // An entry event: true when the source was not already graylisted.
  bool enter(const SourceView& s, uint64_t now_ns);
  // Drops sources whose view says they recovered (or that left the table).
  void refresh(const SourceDirectory& dir);
  const std::map<uint32_t, GraylistEntry>& entries() const { return graylisted_; }
  bool contains(uint32_t slot) const { return graylisted_.count(slot) != 0; }
  uint64_t entered() const { return entered_; }
  uint64_t exited() const { return exited_; }
  // Every entry and exit so far (the last 1,000).
  const std::vector<GraylistEntry>& history() const { return history_; }

 private:
  Log log_;
  std::map<uint32_t, GraylistEntry> graylisted_;
  std::vector<GraylistEntry> history_;
  uint64_t entered_ = 0, exited_ = 0;
};

struct CaseSummary {
  std::string id, dir, reason, node_id;
  double opened_unix = 0, closed_unix = 0;
  uint64_t samples = 0;
  bool open = false;
  std::string error;
};

class EvidenceRecorder {
 public:
  using Log = std::function<void(bool warning, const std::string&)>;
  using UnixTime = std::function<uint64_t(uint64_t ns)>;  // data-path clock -> Unix nanoseconds
  EvidenceRecorder(EvidenceConfig cfg, OperatorConfig op, ScoringConfig scoring, std::string version, UnixTime clock,
                   Log log);
  ~EvidenceRecorder();

  void reconfigure(const EvidenceConfig& cfg, const OperatorConfig& op, const ScoringConfig& scoring);
  // Opens a case for the source (or returns the one already open for it). Never throws:
  // a directory that cannot be made is logged, counted and reported in the summary.
  CaseSummary open(const SourceView& s, const std::string& reason, uint64_t now_ns);
  void sample(const SampleRecord& r);
  // Writes and closes the cases whose window has passed (all of them with `all`).
  void tick(const SourceDirectory& dir, uint64_t now_ns, bool all = false);

  std::vector<CaseSummary> cases() const;  // open ones and the recently closed
  uint64_t opened() const { return opened_; }
  uint64_t errors() const { return errors_; }
  uint64_t samples_written() const { return samples_written_; }

 private:
  struct Case;
  void close(Case& c, const SourceDirectory& dir, uint64_t now_ns);
  void enforce_retention();
  void fail(Case& c, const std::string& what);

  EvidenceConfig cfg_;
  OperatorConfig op_;
  ScoringConfig scoring_;
  std::string version_;
  UnixTime clock_;
  Log log_;
  std::vector<std::unique_ptr<Case>> open_;
  std::vector<CaseSummary> closed_;  // the last few, for the API
  uint64_t opened_ = 0, errors_ = 0, samples_written_ = 0;
};

// Feeds everything the workers' rings hold into the tracker and the recorder; returns
// the number of records. Shared by `run` and `replay`.
size_t drain_evidence(const std::vector<Worker*>& workers, SourceDirectory& dir, GraylistTracker& gray,
                      EvidenceRecorder& rec);

}  // namespace stakegate
