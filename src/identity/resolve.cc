#include "stakegate/identity/resolve.h"

#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>

#include "stakegate/base/error.h"

namespace stakegate {

// Runs on the control plane only. getaddrinfo() may block on DNS; the data path never waits for it.
void resolve_identities(std::vector<NodeIdentity>& nodes, const std::map<std::string, IpAddr>& hosts,
                        const std::string& file) {
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
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    int rc = getaddrinfo(n.host.c_str(), nullptr, &hints, &res);
    if (rc != 0)
      throw ConfigError(file, "", "node " + n.node_id + " (" + std::string(role_name(n.role)) + "): host '" + n.host +
                                      "' does not resolve: " + gai_strerror(rc) +
                                      " (map it under identity.hosts to pin an address)");
    for (addrinfo* a = res; a; a = a->ai_next) {
      IpAddr ip;
      if (a->ai_family == AF_INET) {
        ip = IpAddr::from_v4(ntohl(reinterpret_cast<sockaddr_in*>(a->ai_addr)->sin_addr.s_addr));
      } else if (a->ai_family == AF_INET6) {
        Ip6 v6;
        std::memcpy(v6.bytes.data(), &reinterpret_cast<sockaddr_in6*>(a->ai_addr)->sin6_addr, 16);
        ip = IpAddr::from_v6(v6);
      } else {
        continue;
      }
      if (std::find(n.ips.begin(), n.ips.end(), ip) == n.ips.end()) n.ips.push_back(ip);
    }
    freeaddrinfo(res);
  }
}

}  // namespace stakegate
