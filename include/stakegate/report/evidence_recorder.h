#pragma once
// Evidence cases, off the worker cores. Both `run` (on the control thread) and `replay`
// feed the recorder with what the workers' sample rings carry, so a capture recorded
// elsewhere produces the same bundles as live traffic.
//
// A case is a directory <evidence.dir>/<UTC time>-<NodeID prefix>-<reason>/ holding
// report.json, sample.pcapng and flip.md (docs/operations.md "Reporting an errant node").
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "stakegate/config/config.h"
#include "stakegate/pipeline/sample_ring.h"
#include "stakegate/report/graylist.h"
#include "stakegate/report/source_directory.h"

namespace stakegate {

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
  // mode: monitor in force (or not) from now: a case open while it is says so in its report.
  void set_monitor(bool on);
  // Opens a case for the source (or returns the one already open for it). Never throws:
  // a directory that cannot be made is logged, counted and reported in the summary.
  CaseSummary open(const SourceView& s, const std::string& reason, uint64_t now_ns);
  void sample(const SampleRecord& r);
  // Writes and closes the cases whose window has passed (all of them with `all`).
  void tick(const SourceDirectory& dir, uint64_t now_ns, bool all = false);

  std::vector<CaseSummary> cases() const;  // open ones and the recently closed
  bool has_open_case(const std::string& node_id, const std::string& reason) const;
  bool opens_on_graylist() const { return cfg_.on_graylist; }
  uint64_t opened() const { return opened_; }
  uint64_t errors() const { return errors_; }
  uint64_t samples_written() const { return samples_written_; }

 private:
  struct Case;
  void close(Case& c, const SourceDirectory& dir, uint64_t now_ns);
  void enforce_retention();
  void fail(Case& c, const std::string& what);
  void write_file(Case& c, const std::string& name, const std::string& text);

  EvidenceConfig cfg_;
  OperatorConfig op_;
  ScoringConfig scoring_;
  bool monitor_ = false;
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
