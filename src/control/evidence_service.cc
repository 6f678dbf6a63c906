#include "stakegate/control/evidence_service.h"

namespace stakegate {

EvidenceService::EvidenceService(PolicyState& state, std::vector<Worker*> workers, EvidenceRecorder::UnixTime unix_ns_of,
                                 std::string version, Log log)
    : state_(state),
      workers_(std::move(workers)),
      unix_ns_of_(unix_ns_of),
      log_(log),
      gray_(log),
      rec_(state.config().evidence, state.config().operator_info, state.config().scoring, std::move(version), unix_ns_of,
           log) {
  refresh_directory();
}

void EvidenceService::refresh_directory() {
  if (state_.generation() == dir_generation_) return;
  std::vector<const Worker*> readers(workers_.begin(), workers_.end());
  const Config& c = state_.config();
  dir_.reset(readers, &state_.nodes(), &state_.plan(), c.scoring, state_.rate_shards());
  rec_.reconfigure(c.evidence, c.operator_info, c.scoring);
  rec_.set_monitor(c.monitor);
  dir_generation_ = state_.generation();
  gray_.rescan(dir_);  // a source that came back with the new table may still be graylisted
}

void EvidenceService::tick(bool close_all) {
  refresh_directory();
  drain_evidence(workers_, dir_, gray_, rec_);
  if (++ticks_ % kRescanTicks == 0) gray_.rescan(dir_);
  if (close_all) rec_.tick(dir_, dir_.now(), true);
  // An operator case that closed stops sampling its node.
  for (auto it = operator_nodes_.begin(); it != operator_nodes_.end();) {
    if (close_all || rec_.has_open_case(*it, "operator")) {
      ++it;
      continue;
    }
    try {
      state_.set_evidence(*it, false);
    } catch (const std::exception& e) {
      log_(true, "evidence: cannot stop sampling " + *it + ": " + e.what());
    }
    it = operator_nodes_.erase(it);
  }
}

std::optional<SourceView> EvidenceService::source_view(const std::string& node_id) {
  refresh_directory();
  auto v = dir_.by_node(node_id);
  if (v) v->graylisted = gray_.contains(v->slot);
  return v;
}

std::vector<GraylistEntry> EvidenceService::graylisted() const {
  std::vector<GraylistEntry> out;
  for (const auto& [slot, e] : gray_.entries()) out.push_back(e);
  return out;
}

CaseSummary EvidenceService::open_case(const std::string& node_id) {
  const std::string id = state_.nodes()[state_.need_node(node_id)].node_id;
  state_.set_evidence(id, true);  // its source's dropped packets are sampled from now on
  operator_nodes_.insert(id);
  refresh_directory();
  auto v = dir_.by_node(id);
  if (!v) throw OpError("not_found", "node " + id + " is not in the identity table");
  return rec_.open(*v, "operator", dir_.now());
}

uint64_t EvidenceService::events_lost() const {
  uint64_t n = 0;
  for (const Worker* w : workers_) n += w->events().lost();
  return n;
}

uint64_t EvidenceService::samples_lost() const {
  uint64_t n = 0;
  for (const Worker* w : workers_) n += w->samples().lost();
  return n;
}

}  // namespace stakegate
