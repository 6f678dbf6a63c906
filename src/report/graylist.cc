#include "stakegate/report/graylist.h"

#include "stakegate/report/text.h"

namespace stakegate {

bool GraylistTracker::enter(const SourceView& s, uint64_t now_ns) {
  if (graylisted_.count(s.slot)) return false;
  GraylistEntry e{s.slot, s.epoch, now_ns, 0, s.score, {}};
  for (const auto& n : s.nodes) e.node_ids.push_back(n.node_id);
  history_.push_back(e);
  if (history_.size() > 1000) history_.erase(history_.begin());
  graylisted_[s.slot] = std::move(e);
  entered_++;
  log_(true, "graylisted: " + describe_source(s) + ", score " + fixed(s.score) + "; its rates are reduced until the score recovers");
  return true;
}

void GraylistTracker::refresh(const SourceDirectory& dir) {
  const uint64_t now_ns = dir.now();
  for (auto it = graylisted_.begin(); it != graylisted_.end();) {
    auto v = dir.by_slot(it->first);
    if (v && v->epoch == it->second.epoch && v->graylisted) {
      ++it;
      continue;
    }
    exited_++;
    for (auto h = history_.rbegin(); h != history_.rend(); ++h)
      if (h->slot == it->first && h->since_ns == it->second.since_ns) {
        h->until_ns = now_ns;
        break;
      }
    double s = (now_ns > it->second.since_ns ? now_ns - it->second.since_ns : 0) / 1e9;
    log_(false, (v && v->epoch == it->second.epoch ? "recovered from the graylist: " + describe_source(*v) + ", score " + fixed(v->score)
                                                   : "left the graylist with the identity table: " + it->second.node_ids.front()) +
                    " after " + fixed(s) + " s");
    it = graylisted_.erase(it);
  }
}

size_t GraylistTracker::rescan(const SourceDirectory& dir) {
  size_t found = 0;
  const uint64_t now_ns = dir.now();
  dir.for_each_slot([&](uint32_t slot) {
    if (graylisted_.count(slot)) return;
    auto v = dir.by_slot(slot);
    if (v && v->graylisted && enter(*v, now_ns)) ++found;
  });
  return found;
}

}  // namespace stakegate
