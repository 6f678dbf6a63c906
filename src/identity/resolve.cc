#include "stakegate/identity/resolve.h"

#include <ares.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "stakegate/base/clock.h"
#include "stakegate/base/files.h"
#include "stakegate/base/json_text.h"
#include "stakegate/base/time_text.h"

namespace stakegate {
namespace {

using json = nlohmann::json;

std::string file_of(const std::string& dir) { return (std::filesystem::path(dir) / "dns.json").string(); }

std::string join(const std::vector<IpAddr>& ips) {
  std::string s;
  for (const auto& ip : ips) s += (s.empty() ? "" : ", ") + ip.to_string();
  return s;
}

std::string describe(int status) {
  switch (status) {
    case ARES_ENOTFOUND:
      return "the name does not exist (NXDOMAIN)";
    case ARES_ENODATA:
      return "no address records";
    case ARES_ETIMEOUT:
    case ARES_ECANCELLED:
      return "no answer within identity.dns.timeout_s";
    case ARES_ECONNREFUSED:
      return "the resolver refused the connection";
    case ARES_ESERVFAIL:
      return "the resolver failed (SERVFAIL)";
    case ARES_EREFUSED:
      return "the resolver refused the query";
    default:
      return ares_strerror(status);
  }
}

struct Pending {
  std::string name;
  DnsAnswer* answer;
  unsigned max_addresses;
};

void on_answer(void* arg, int status, int /*timeouts*/, ares_addrinfo* result) {
  auto* p = static_cast<Pending*>(arg);
  DnsAnswer& a = *p->answer;
  if (status == ARES_SUCCESS && result) {
    uint32_t ttl = UINT32_MAX;
    for (ares_addrinfo_node* n = result->nodes; n; n = n->ai_next) {
      IpAddr ip;
      if (n->ai_family == AF_INET && n->ai_addr) {
        ip = IpAddr::from_v4(ntohl(reinterpret_cast<sockaddr_in*>(n->ai_addr)->sin_addr.s_addr));
      } else if (n->ai_family == AF_INET6 && n->ai_addr) {
        Ip6 v6;
        std::memcpy(v6.bytes.data(), &reinterpret_cast<sockaddr_in6*>(n->ai_addr)->sin6_addr, 16);
        ip = IpAddr::from_v6(v6);
      } else {
        continue;
      }
      ttl = std::min<uint32_t>(ttl, static_cast<uint32_t>(std::max(0, n->ai_ttl)));
      if (std::find(a.ips.begin(), a.ips.end(), ip) == a.ips.end()) a.ips.push_back(ip);
    }
    // A name with a hundred records must not take a hundred source slots.
    std::sort(a.ips.begin(), a.ips.end());
    if (a.ips.size() > p->max_addresses) a.ips.resize(p->max_addresses);
    a.ok = !a.ips.empty();
    a.ttl_s = a.ok ? ttl : 0;
    if (!a.ok) a.error = "no address records";
  } else {
    a.ok = false;
    a.error = describe(status);
  }
  if (result) ares_freeaddrinfo(result);
}

}  // namespace

std::optional<std::string> parse_dns_server(const std::string& text) {
  if (auto ip = parse_ip(text)) return ip->is_v4 ? text : "[" + text + "]";  // port 53
  if (text.size() > 2 && text.front() == '[' && text.back() == ']') {
    auto ip = parse_ip(text.substr(1, text.size() - 2));
    return ip && !ip->is_v4 ? std::optional<std::string>(text) : std::nullopt;
  }
  std::string host;
  uint16_t port = 0;
  if (!split_host_port(text, host, port)) return std::nullopt;
  auto ip = parse_ip(host);
  if (!ip || ip->is_v4 == (text.front() == '[')) return std::nullopt;  // "[198.18.0.1]:53" is not a form
  return text;
}

std::map<std::string, DnsAnswer> dns_lookup(const std::vector<std::string>& names, const DnsConfig& dns) {
  static std::once_flag init;
  static int init_status = ARES_SUCCESS;
  std::call_once(init, [] { init_status = ares_library_init(ARES_LIB_INIT_ALL); });
  std::map<std::string, DnsAnswer> out;
  for (const auto& n : names) out[n];
  if (names.empty()) return out;
  auto fail_all = [&](const std::string& why) {
    for (auto& [n, a] : out) a.error = why;
    return out;
  };
  if (init_status != ARES_SUCCESS) return fail_all(std::string("c-ares: ") + ares_strerror(init_status));

  ares_channel channel = nullptr;
  ares_options opts{};
  const auto total = std::chrono::duration<double>(dns.timeout_s);
  // Each try gets a share of the deadline, so a lost datagram is retried within it.
  opts.timeout = std::max(100, static_cast<int>(dns.timeout_s * 1000 / 3));
  opts.tries = 3;
  int rc = ares_init_options(&channel, &opts, ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES);
  if (rc != ARES_SUCCESS) return fail_all(std::string("c-ares: ") + ares_strerror(rc));
  if (!dns.servers.empty()) {
    std::string csv;
    for (const auto& s : dns.servers) csv += (csv.empty() ? "" : ",") + parse_dns_server(s).value_or(s);
    rc = ares_set_servers_ports_csv(channel, csv.c_str());
    if (rc != ARES_SUCCESS) {
      ares_destroy(channel);
      return fail_all("identity.dns.servers: " + std::string(ares_strerror(rc)));
    }
  }
  std::vector<Pending> pending;
  pending.reserve(out.size());
  for (auto& [name, answer] : out) pending.push_back({name, &answer, dns.max_addresses});
  ares_addrinfo_hints hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  for (auto& p : pending) ares_getaddrinfo(channel, p.name.c_str(), nullptr, &hints, on_answer, &p);

  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration_cast<std::chrono::steady_clock::duration>(total);
  for (;;) {
    ares_socket_t socks[ARES_GETSOCK_MAXNUM];
    const int bits = ares_getsock(channel, socks, ARES_GETSOCK_MAXNUM);
    pollfd pfds[ARES_GETSOCK_MAXNUM];
    nfds_t n = 0;
    for (int i = 0; i < ARES_GETSOCK_MAXNUM; ++i) {
      short ev = (ARES_GETSOCK_READABLE(bits, i) ? POLLIN : 0) | (ARES_GETSOCK_WRITABLE(bits, i) ? POLLOUT : 0);
      if (ev) pfds[n++] = {socks[i], ev, 0};
    }
    if (n == 0) break;  // every query answered
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) break;
    const auto left_us = std::chrono::duration_cast<std::chrono::microseconds>(deadline - now).count();
    timeval maxtv{static_cast<time_t>(left_us / 1000000), static_cast<suseconds_t>(left_us % 1000000)}, tv{};
    timeval* t = ares_timeout(channel, &maxtv, &tv);
    const int ms = static_cast<int>(t->tv_sec * 1000 + (t->tv_usec + 999) / 1000);
    const int ready = ::poll(pfds, n, ms);
    if (ready <= 0) {
      ares_process_fd(channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);  // timeouts and retries
      continue;
    }
    for (nfds_t i = 0; i < n; ++i) {
      if (!pfds[i].revents) continue;
      const bool r = pfds[i].revents & (POLLIN | POLLERR | POLLHUP), w = pfds[i].revents & POLLOUT;
      ares_process_fd(channel, r ? pfds[i].fd : ARES_SOCKET_BAD, w ? pfds[i].fd : ARES_SOCKET_BAD);
    }
  }
  ares_cancel(channel);  // what is still open gets ARES_ECANCELLED: the deadline passed
  ares_destroy(channel);
  return out;
}

NameCache& NameCache::process() {
  static NameCache cache;
  return cache;
}

std::string NameCache::use_state_dir(const std::string& dir) {
  std::lock_guard<std::mutex> lock(m_);
  if (dir.empty() || dir == dir_) return "";
  dir_ = dir;
  const std::string path = file_of(dir);
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return "";
  try {
    json j = json::parse(read_text_file(path, path, "dns", 64u << 20));
    for (const auto& [name, e] : j.at("names").items()) {
      Entry& mine = entries_[name];
      if (!mine.ips.empty()) continue;  // this process already knows better
      for (const auto& a : e.at("addresses")) {
        if (auto ip = parse_ip(a.get<std::string>())) mine.ips.push_back(*ip);
      }
      mine.resolved_at = e.at("resolved_at").get<int64_t>();
    }
    return "";
  } catch (const std::exception& e) {
    return path + ": ignored, it is damaged (" + e.what() + "); names resolve afresh";
  }
}

std::string NameCache::record(const std::map<std::string, DnsAnswer>& answers, const DnsConfig& dns, int64_t now,
                              int64_t steady) {
  std::lock_guard<std::mutex> lock(m_);
  bool changed = false;
  for (const auto& [name, a] : answers) {
    Entry& e = entries_[name];
    if (a.ok) {
      const double ttl = std::clamp(static_cast<double>(a.ttl_s), dns.min_refresh_s, dns.refresh_s);
      changed |= e.ips != a.ips || e.failing;
      e.ips = a.ips;
      e.resolved_at = now;
      e.due_at = steady + static_cast<int64_t>(std::ceil(ttl));
      e.failing = false;
      e.error.clear();
    } else {
      ++failures_;
      e.failing = true;
      e.error = a.error;
      e.due_at = steady + static_cast<int64_t>(std::ceil(dns.retry_s));
    }
  }
  if (!changed || dir_.empty() || !persist_) return "";
  json names = json::object();
  for (const auto& [name, e] : entries_) {
    if (e.ips.empty()) continue;
    json list = json::array();
    for (const auto& ip : e.ips) list.push_back(ip.to_string());
    names[name] = {{"addresses", list}, {"resolved_at", e.resolved_at}};
  }
  try {
    std::error_code ec;
    std::filesystem::create_directories(dir_, ec);
    write_file_atomically(file_of(dir_), json_text(json{{"version", 1}, {"names", names}}, 1) + "\n", 0640);
    return "";
  } catch (const std::exception& e) {
    return std::string("dns: the last known addresses are not saved: ") + e.what();
  }
}

std::optional<NameCache::Entry> NameCache::get(const std::string& name) const {
  std::lock_guard<std::mutex> lock(m_);
  auto it = entries_.find(name);
  if (it == entries_.end()) return std::nullopt;
  return it->second;
}

std::vector<std::string> NameCache::due(const std::vector<std::string>& names, int64_t steady) const {
  std::lock_guard<std::mutex> lock(m_);
  std::vector<std::string> out;
  for (const auto& n : names) {
    auto it = entries_.find(n);
    if (it == entries_.end() || it->second.due_at <= steady) out.push_back(n);
  }
  return out;
}

NameCache::Census NameCache::census(const std::vector<std::string>& names) const {
  std::lock_guard<std::mutex> lock(m_);
  Census c;
  for (const auto& n : names) {
    auto it = entries_.find(n);
    if (it == entries_.end() || it->second.ips.empty()) ++c.unresolved;
    else if (it->second.failing) ++c.stale;
    else ++c.resolved;
  }
  return c;
}

uint64_t NameCache::failures() const {
  std::lock_guard<std::mutex> lock(m_);
  return failures_;
}

std::vector<std::string> dns_names(const std::vector<NodeIdentity>& nodes, const std::map<std::string, IpAddr>& hosts) {
  std::set<std::string> names;
  for (const auto& n : nodes)
    if (!parse_ip(n.host) && !hosts.count(n.host)) names.insert(n.host);
  return {names.begin(), names.end()};
}

std::string lookup_due_names(const std::vector<NodeIdentity>& nodes, const std::map<std::string, IpAddr>& hosts,
                             const DnsConfig& dns, NameCache* cache) {
  NameCache& c = cache ? *cache : NameCache::process();
  // Only names whose answer ran out (or never came): a replace of a table whose names are
  // all fresh does not wait on DNS.
  const std::vector<std::string> names = c.due(dns_names(nodes, hosts), steady_seconds());
  if (names.empty()) return "";
  return c.record(dns_lookup(names, dns), dns, std::time(nullptr), steady_seconds());
}

void resolve_identities(std::vector<NodeIdentity>& nodes, const std::map<std::string, IpAddr>& hosts,
                        const DnsConfig& dns, const std::string& source, std::vector<std::string>* warnings,
                        bool lookup, NameCache* cache) {
  NameCache& c = cache ? *cache : NameCache::process();
  if (lookup) {
    std::string w = lookup_due_names(nodes, hosts, dns, &c);
    if (!w.empty() && warnings) warnings->push_back(w);
  }
  for (auto& n : nodes) {
    n.ips.clear();
    if (auto ip = parse_ip(n.host)) {
      n.ips.push_back(*ip);
      continue;
    }
    if (auto it = hosts.find(n.host); it != hosts.end()) {
      n.ips.push_back(it->second);
      continue;
    }
    auto e = c.get(n.host);
    if (e) n.ips = e->ips;
    if (!warnings || (e && !e->failing && !e->ips.empty())) continue;
    const std::string who = source + ": node " + n.node_id + " (" + std::string(role_name(n.role)) + "): host '" + n.host + "'";
    const std::string why = e && !e->error.empty() ? e->error : "not looked up yet";
    if (!n.ips.empty())
      warnings->push_back(who + " does not resolve now (" + why + "); keeping its last known addresses " + join(n.ips) +
                          " (resolved " + iso8601_utc(static_cast<double>(e->resolved_at)) + ")");
    else
      warnings->push_back(who + " does not resolve (" + why +
                          "); the node stays in the table without an address and its packets count as unregistered "
                          "until the name resolves (identity.hosts pins an address)");
  }
}

}  // namespace stakegate
