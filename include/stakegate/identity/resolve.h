#pragma once
// Host names of a table to source addresses. Control plane only: it may wait on DNS, never
// longer than identity.dns.timeout_s, and never on the data path.
//
// DNS cannot take the gateway down: a name that does not resolve keeps the addresses it
// had (in memory, and in <state_dir>/dns.json across restarts) and is reported as a
// warning; a name never resolved leaves its node in the table without an address (its
// packets count as unregistered until it resolves). The table is never refused over DNS.
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "stakegate/identity/dns_config.h"
#include "stakegate/identity/node.h"

namespace stakegate {

// "ADDR", "ADDR:PORT" or "[V6]:PORT" -> c-ares' server form, or nullopt when malformed.
std::optional<std::string> parse_dns_server(const std::string& text);

// One lookup round: every name at once (c-ares, A and AAAA), bounded by `timeout_s`.
struct DnsAnswer {
  bool ok = false;
  std::vector<IpAddr> ips;
  uint32_t ttl_s = 0;
  std::string error;  // when !ok: "NXDOMAIN", "timeout", ...
};
std::map<std::string, DnsAnswer> dns_lookup(const std::vector<std::string>& names, const DnsConfig& dns);

// What the process knows about each name: thread-safe (lookups run on helper threads).
class NameCache {
 public:
  struct Entry {
    std::vector<IpAddr> ips;    // the last addresses seen (empty: never resolved)
    int64_t resolved_at = 0;    // Unix seconds of the last success
    int64_t due_at = 0;         // when to look up again: steady-clock seconds (a wall clock step
                                // must not stop the lookups for as long as it stepped back)
    bool failing = false;       // the last lookup failed (ips are stale, or empty)
    std::string error;
  };
  struct Census {
    size_t resolved = 0, stale = 0, unresolved = 0;
  };

  static NameCache& process();  // the one the gateway uses

  // Persists to <dir>/dns.json; loads it the first time a directory is set.
  // Returns a warning when the file is damaged (it is then ignored).
  std::string use_state_dir(const std::string& dir);
  // Whether record() writes the file: the running gateway does; check-config and replay only read it.
  void persist(bool on) {
    std::lock_guard<std::mutex> lock(m_);
    persist_ = on;
  }
  // Records a round's answers (`now`: Unix seconds, `steady`: stakegate::steady_seconds())
  // and saves the file if anything changed. Returns a warning when saving failed.
  std::string record(const std::map<std::string, DnsAnswer>& answers, const DnsConfig& dns, int64_t now, int64_t steady);
  std::optional<Entry> get(const std::string& name) const;
  std::vector<std::string> due(const std::vector<std::string>& names, int64_t steady) const;
  Census census(const std::vector<std::string>& names) const;
  uint64_t failures() const;

 private:
  mutable std::mutex m_;
  std::map<std::string, Entry> entries_;
  std::string dir_;
  uint64_t failures_ = 0;
  bool persist_ = false;
};

// The DNS names among the nodes' hosts (not literals, not pinned under identity.hosts).
std::vector<std::string> dns_names(const std::vector<NodeIdentity>& nodes, const std::map<std::string, IpAddr>& hosts);

// The lookup round of resolve_identities(): the nodes' DNS names that are due, looked up
// and recorded in `cache` (default: the process's). Returns a warning when the cache's file
// could not be saved.
std::string lookup_due_names(const std::vector<NodeIdentity>& nodes, const std::map<std::string, IpAddr>& hosts,
                             const DnsConfig& dns, NameCache* cache = nullptr);

// Fills each node's `ips`: a literal address, then `hosts` (pinned names), then DNS. With
// `lookup`, the DNS names that are due (unknown, or their TTL ran out) are looked up first
// (one round, identity.dns.timeout_s at most); without, the cache answers.
// Problems (a name failing, one never resolved) are appended to `warnings`; never throws
// over DNS.
void resolve_identities(std::vector<NodeIdentity>& nodes, const std::map<std::string, IpAddr>& hosts,
                        const DnsConfig& dns, const std::string& source, std::vector<std::string>* warnings,
                        bool lookup = true, NameCache* cache = nullptr);

}  // namespace stakegate
