#pragma once
// Which sources are graylisted, as operators see it (the API, metrics, logs).
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "stakegate/report/source_directory.h"

namespace stakegate {

struct GraylistEntry {
  uint32_t slot = 0, epoch = 0;
  uint64_t since_ns = 0;
  uint64_t until_ns = 0;  // in history(): when it recovered (0: still graylisted)
  double score = 0;       // at entry
  std::vector<std::string> node_ids;
};

// Entered when a worker reports an entry; left when every worker's score has decayed
// past `recover` (even if the source sent nothing since, so its worker has not noticed
// yet). Each transition is logged once.
class GraylistTracker {
 public:
  using Log = std::function<void(bool warning, const std::string&)>;
  explicit GraylistTracker(Log log) : log_(std::move(log)) {}
  // An entry event: true when the source was not already graylisted.
  bool enter(const SourceView& s, uint64_t now_ns);
  // Drops sources whose view says they recovered (or that left the table).
  void refresh(const SourceDirectory& dir);
  // Adopts sources that a worker holds graylisted but that are not tracked (one that left
  // the table and came back graylisted, or an entry event lost with a full ring); returns
  // how many. O(sources): called when the table changes and every few seconds.
  size_t rescan(const SourceDirectory& dir);
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

}  // namespace stakegate
