#pragma once
// identity.dns: how the identity table's host names are resolved (identity/resolve.h).
#include <string>
#include <vector>

namespace stakegate {

// DNS for identity host names (docs/configuration.md "identity.dns"). Names are looked
// up together off the control thread, each answer is used for its TTL clamped to
// [min_refresh_s, refresh_s], and a name that stops resolving keeps its last known
// addresses (persisted in state_dir/dns.json) instead of failing the table.
struct DnsConfig {
  std::vector<std::string> servers;  // "ADDR" or "ADDR:PORT" ("[v6]:PORT"); empty: /etc/resolv.conf
  double timeout_s = 5;              // deadline of one lookup round (all names together)
  double refresh_s = 300;            // longest an answer is used (flow-go re-resolves every few minutes)
  double min_refresh_s = 5;          // shortest: a TTL of 0 must not hammer the resolver
  double retry_s = 30;               // after a failed lookup
  unsigned max_addresses = 8;        // addresses kept per name
};

}  // namespace stakegate
