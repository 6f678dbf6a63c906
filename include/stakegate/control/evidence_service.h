#pragma once
// The peer-score and evidence side of the operations layer, off the worker cores: it
// drains the workers' sample rings into the graylist tracker and the evidence recorder,
// opens operator cases (which turn on sampling of a node through PolicyState) and stops
// that sampling when a case closes. `run` ticks it from its control loop, `replay`
// between packets on the capture's clock; it needs no DPDK, so tests drive it directly.
#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "stakegate/control/policy_state.h"
#include "stakegate/pipeline/worker.h"
#include "stakegate/report/evidence_recorder.h"
#include "stakegate/report/graylist.h"
#include "stakegate/report/source_directory.h"

namespace stakegate {

class EvidenceService {
 public:
  using Log = EvidenceRecorder::Log;
  // `unix_ns_of`: the data path's clock (ns) to Unix nanoseconds.
  EvidenceService(PolicyState& state, std::vector<Worker*> workers, EvidenceRecorder::UnixTime unix_ns_of,
                  std::string version, Log log);

  // Drains the rings, updates the graylist, writes cases whose window ended (every case
  // with `close_all`), and stops sampling nodes whose operator case closed.
  void tick(bool close_all = false);

  std::optional<SourceView> source_view(const std::string& node_id);
  std::vector<GraylistEntry> graylisted() const;
  std::pair<uint64_t, uint64_t> graylist_transitions() const { return {gray_.entered(), gray_.exited()}; }
  const GraylistTracker& graylist() const { return gray_; }
  // Opens an operator case for the node (OpError: invalid_argument, not_found).
  CaseSummary open_case(const std::string& node_id);
  std::vector<CaseSummary> cases() const { return rec_.cases(); }
  std::pair<uint64_t, uint64_t> case_counts() const { return {rec_.opened(), rec_.errors()}; }  // opened, errors
  uint64_t samples_written() const { return rec_.samples_written(); }
  uint64_t samples_lost() const;
  uint64_t events_lost() const;
  double unix_of(uint64_t data_ns) const { return static_cast<double>(unix_ns_of_(data_ns)) / 1e9; }

 private:
  void refresh_directory();

  PolicyState& state_;
  std::vector<Worker*> workers_;
  EvidenceRecorder::UnixTime unix_ns_of_;
  Log log_;
  SourceDirectory dir_;
  uint64_t dir_generation_ = 0;
  GraylistTracker gray_;
  EvidenceRecorder rec_;
  std::set<std::string> operator_nodes_;
  uint64_t ticks_ = 0;
  static constexpr uint64_t kRescanTicks = 100;  // about every 5 s in `run`
};

}  // namespace stakegate
