#pragma once
// Does an address fall in any of a set of prefixes? One exact-match table per prefix
// length in use, longest first: a lookup costs one probe per length, whatever the
// number of prefixes. Used for the blocklist on the data path, and by the control
// plane to mark blocked nodes when a plan is made.
#include <utility>
#include <vector>

#include "stakegate/base/address.h"
#include "stakegate/policy/addr_map.h"

namespace stakegate {

class CidrMatcher {
 public:
  void add(const Cidr& c);
  bool match_v4(uint32_t a) const {
    for (const auto& [len, map] : v4_)
      if (map.find(a & v4_mask(len)) != V4Map::kEmpty) return true;
    return false;
  }
  bool match_v6(const Ip6& a) const {
    for (const auto& [len, map] : v6_)
      if (map.find(v6_mask_apply(a, len)) != V6Map::kEmpty) return true;
    return false;
  }
  bool match(const IpAddr& a) const { return a.is_v4 ? match_v4(a.v4) : match_v6(a.v6); }
  size_t size() const { return count_; }

 private:
  std::vector<std::pair<uint8_t, V4Map>> v4_;
  std::vector<std::pair<uint8_t, V6Map>> v6_;
  size_t count_ = 0;
};

}  // namespace stakegate
