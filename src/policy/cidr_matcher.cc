#include "stakegate/policy/cidr_matcher.h"

#include <algorithm>

namespace stakegate {
namespace {

// Inserts `key` into the table for `len`, creating it (longest prefixes first) if needed.
template <typename Map, typename Key>
void add_prefix(std::vector<std::pair<uint8_t, Map>>& tables, uint8_t len, const Key& key) {
  auto by_len = [&](auto& e) { return e.first == len; };
  auto it = std::find_if(tables.begin(), tables.end(), by_len);
  if (it == tables.end()) {
    tables.emplace_back(len, Map{});
    std::sort(tables.begin(), tables.end(), [](auto& a, auto& b) { return a.first > b.first; });
    it = std::find_if(tables.begin(), tables.end(), by_len);
  }
  it->second.insert(key, 0);
}

}  // namespace

void CidrMatcher::add(const Cidr& c) {
  ++count_;
  if (c.base.is_v4) add_prefix(v4_, c.prefix_len, c.base.v4);
  else add_prefix(v6_, c.prefix_len, c.base.v6);
}

}  // namespace stakegate
