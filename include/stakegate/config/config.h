#pragma once
// The gateway configuration (YAML). load_config() validates everything up front and
// throws ConfigError naming the file, the key path and the problem.
#include <array>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "stakegate/base/error.h"
#include "stakegate/identity/dns_config.h"
#include "stakegate/identity/node.h"
#include "stakegate/base/address.h"
#include "stakegate/base/routing.h"

namespace stakegate {

struct PortSpec {
  std::string vdev;  // DPDK devargs, e.g. "net_pcap0,rx_pcap=in.pcap"
  std::string pci;   // or a PCI address
  std::string name() const;  // the ethdev name: the vdev up to its first comma, or the PCI address
  bool operator==(const PortSpec&) const = default;
};

struct DataplaneConfig {
  std::vector<std::string> eal;
  PortSpec outside, inside;
  unsigned workers = 1;
  unsigned burst = 32;
  unsigned rx_desc = 1024;
  unsigned tx_desc = 1024;
  unsigned mbufs = 16383;
  unsigned mbuf_data_room = 2048;  // bytes of packet data per mbuf (plus headroom)
  unsigned mtu = 0;                // both ports' MTU; 0: the device's default (1500)
  double stats_interval_s = 10;
  bool rss = true;  // several workers: RSS on source IP where the outside NIC supports it
  bool operator==(const DataplaneConfig&) const = default;
};

struct RoleQos {
  bool configured = false;
  double share = 0;
  double min_pps = 0;
  unsigned burst_ms = 100;
  std::vector<uint16_t> ports;  // empty: every destination port
};

struct UnregisteredQos {
  double share = 0;
  double per_source_pps = 50;  // DESIGN.md's example; 0 would close `ports` to everyone
  unsigned burst_ms = 100;
  std::vector<uint16_t> ports;  // empty: unregistered sources reach no port
  unsigned table_size = 65536;  // per-source buckets per worker
  bool icmp_echo = false;       // echo requests (ping) reach the cluster as a public port does
};

// The protected cluster's own addresses (`cluster.prefixes`). Outside packets claiming a
// source inside them are `spoofed`; only sources inside them open sessions. Empty: every
// inside source opens sessions and no outside source is judged spoofed by prefix.
struct ClusterConfig {
  std::vector<Cidr> prefixes;
};

// Sessions the cluster opens or accepts (docs/architecture.md "Sessions"): replies from
// unregistered senders on sessions the cluster opened draw on a budget of `share` x
// capacity; idle sessions expire after their protocol's timeout. An explicit `share` counts
// in the share sum; the default does only where it fits, and otherwise comes on top of the
// other shares (warned): a config whose shares already sum to 1 keeps the cluster's own
// DNS, NTP and HTTPS replies flowing instead of being refused.
struct SessionConfig {
  double share = 0.05;
  bool share_set = false;  // `sessions.share` was in the config
  unsigned burst_ms = 100;
  // tcp_established_s: RFC 5382's floor for a NAT (2 h 4 min), so that a connection idle
  // but for TCP keepalives (every 2 h by default on Linux) keeps its session; udp_s: RFC
  // 4787's (2 min), conntrack's for a UDP flow with replies.
  double tcp_syn_s = 60, tcp_established_s = 7440, tcp_closing_s = 240, tcp_closed_s = 10, udp_s = 120, icmp_s = 30;
};

// Infrastructure the network needs from the outside: ARP, IPv6 neighbour discovery, ICMP
// errors quoting a live session, and the EtherTypes listed; all within one budget.
struct InfraConfig {
  double pps = 1000;              // ARP, neighbour discovery, listed EtherTypes: what only on-link hosts send
  std::optional<double> icmp_errors_pps;  // ICMP errors on sessions: what anyone may send (default: pps)
  unsigned burst_ms = 100;
  std::vector<uint16_t> ethertypes;  // besides ARP
  // MACs of hosts on the outside link the cluster needs (its upstream routers): their ARP,
  // neighbour discovery and listed EtherTypes take a budget of their own, each.
  std::vector<std::array<uint8_t, 6>> neighbours;
  // The addresses a neighbour answers for, each with its MAC (an address may be listed under
  // several): an ARP frame or neighbour discovery message from the outside claiming one of
  // them for another MAC is spoofed, so no host of the link can take the router's place in
  // the nodes' neighbour caches. (Empty: no address is guarded.)
  struct NeighbourAddress {
    IpAddr address;
    std::array<uint8_t, 6> mac;
  };
  std::vector<NeighbourAddress> neighbour_addresses;
  // Router advertisements and redirects only from `neighbours` (off by default: a router
  // missing from the list, after a failover say, would leave the nodes without an IPv6
  // default route once its last advertisement expired).
  bool ra_guard = false;
  // Routing protocols (base/routing.h bits) whose packets pass from a neighbour's own MAC
  // and addresses when only a host of the link can have sent them, each neighbour within
  // routing_pps of its own.
  uint8_t routing = 0;
  double routing_pps = 2000;
};

// Traffic from a staked address that is not on a verified connection (SYNs, UDP, ICMP,
// packets matching no verified connection: anything a spoofer could send) goes through a
// small request channel: `fraction` of the node's rate, at least `min_pps`.
struct RequestChannelConfig {
  double fraction = 0.05;
  double min_pps = 10;
  unsigned burst_ms = 100;
};

struct BlockEntry {
  std::optional<Cidr> cidr;
  std::string node_id;
  std::string reason;
};


// Following epochs by itself (docs/operations.md "Following epochs"): the latest protocol
// state snapshot from Flow Access API endpoints, tried in order, every `interval_s`.
struct AccessApiConfig {
  std::vector<std::string> endpoints;  // "host:port"; none: no fetching
  double interval_s = 60;
  double timeout_s = 20;               // per call
  bool tls = false;                    // TLS to the endpoint (system roots, or ca_file)
  std::string ca_file;                 // implies tls
  uint64_t max_bytes = 256u << 20;     // largest response accepted
  std::string stakes_contract;         // FlowIDTableStaking's address ("0x8624b52f9ddcd04a" on mainnet): fetch stakes
  bool on() const { return !endpoints.empty(); }
};

struct IdentityConfig {
  enum class Kind { kNodeInfos, kSnapshot, kInline } kind = Kind::kInline;
  std::string path;                    // resolved against the config file's folder
  std::vector<NodeIdentity> inline_nodes;
  std::string stake_file;              // optional
  std::map<std::string, IpAddr> hosts;  // static name -> address, consulted before DNS
  double max_removed_fraction = 0.5;   // a change removing more of the nodes needs --force
  DnsConfig dns;
  AccessApiConfig access_api;
  bool watch = false;  // apply the identity file when it is replaced or rewritten (inotify)
};

// Peer score (docs/operations.md "Peer score and graylist"): each drop of a staked
// source subtracts its reason's penalty; the score decays towards 0 with `half_life_s`;
// below `graylist` the source's rates are multiplied by `penalty_factor` until the score
// is back above `recover` (hysteresis). The score never goes below `floor`, which bounds
// the time a source that stopped misbehaving needs to recover.
struct ScoringConfig {
  bool enabled = true;
  double graylist = -100;
  double recover = -50;          // default graylist / 2
  double floor = -1000;          // default graylist x 10
  double penalty_factor = 0.1;
  double half_life_s = 60;
  // Penalties. over_rate: per second's worth of the source's own rate dropped (flooding at
  // k x its rate costs (k - 1) x penalty_over_rate per second); the others: per packet.
  // Only drops on verified connections are scored (over_rate): the others are kept for
  // compatibility and have no effect (check-config says so when they are set).
  double penalty_over_rate = 10, penalty_port_denied = 0, penalty_blocklisted = 0, penalty_ejected = 0;
};

// Evidence bundles (docs/operations.md "Reporting an errant node").
struct EvidenceConfig {
  std::string dir = "/var/lib/stakegate/evidence";  // as given (relative: to the working directory)
  bool on_graylist = true;       // open a case automatically when a node enters the graylist
  double window_s = 60;          // a case collects this long, then is written and closed
  unsigned max_samples = 1000;   // dropped packets kept per case
  unsigned snaplen = 256;        // bytes kept of each (at most kMaxSnap)
  unsigned retention_cases = 100;
  uint64_t retention_bytes = 256ull << 20;
};

// The reporting node (this operator's own Flow node), for report.json and flip.md.
struct OperatorConfig {
  std::string name, contact, node_id, role, address, network_key, staking_key;
};

// The control plane's listeners and who may use them (docs/api.md, "Security model").
struct TlsConfig {
  std::string cert, key, client_ca;  // PEM files; client_ca set: clients need a certificate it signed
  bool on() const { return !cert.empty(); }
  bool operator==(const TlsConfig&) const = default;
};

struct ControlConfig {
  std::string socket = "/run/stakegate/control.sock";  // admin (read-write); empty: none
  std::string socket_group;                            // group of the socket (empty: the process's)
  unsigned socket_mode = 0660;
  std::string readonly_socket;                         // read-only callers (status, lists); empty: none
  std::string readonly_group;
  unsigned readonly_mode = 0660;
  std::string tcp;                                     // host:port; needs token_file
  std::string token_file;                              // admin bearer token (TCP)
  std::string readonly_token_file;                     // read-only bearer token (TCP), optional
  TlsConfig tls;                                       // for tcp
  bool allow_plaintext = false;                        // tcp without TLS on a non-loopback address
  std::string metrics = "127.0.0.1:9469";              // empty: no metrics listener
  TlsConfig metrics_tls;
  std::vector<std::pair<std::string, std::string>> metrics_users;  // basic auth: user -> bcrypt hash
  size_t max_body_bytes = 64u << 20;
  size_t max_connections = 32;                         // per listener
  size_t max_connections_per_peer = 8;                 // per TCP address
  double reload_timeout_s = 30;                        // reading the config and tables on a reload
};

struct Config {
  std::string file;
  DataplaneConfig dataplane;
  double capacity_pps = 0;
  double capacity_bps = 0;  // 0: no byte limit
  IdentityConfig identity;
  std::array<RoleQos, kRoleCount> roles;
  UnregisteredQos unregistered;
  std::vector<BlockEntry> blocklist;
  ScoringConfig scoring;
  EvidenceConfig evidence;
  OperatorConfig operator_info;
  // Not from YAML: NodeIDs an operator asked evidence for (PolicyState sets them), so
  // their sources' dropped packets are sampled.
  std::vector<std::string> evidence_nodes;
  ControlConfig control;
  std::string state_dir;  // what survives a restart (API blocks); empty: nothing does (warned)
  ClusterConfig cluster;
  SessionConfig sessions;
  InfraConfig infra;
  RequestChannelConfig request_channel;
  // `mode: monitor`: every packet is decided and counted as when enforcing, and forwarded
  // whatever its verdict (a new deployment's first days, an incident). `mode: enforce`
  // (the default) drops what its verdict says. A reload switches it without a restart.
  bool monitor = false;
  size_t limits_sources = 0;  // meter slots per worker (0: twice the table, at least 65,536)
  size_t limits_sessions = 262144;  // session table entries per worker
  size_t limits_blocklist = 100000;  // blocklist entries (config and API together)
};

Config load_config(const std::string& path);
// The `mode` key's value for `monitor`: what reports and evidence print.
inline const char* mode_name(bool monitor) { return monitor ? "monitor" : "enforce"; }

// What is wrong with the shares (role shares + unregistered.share, + sessions.share when set,
// must be at most 1), or "" when nothing is. Shared by the loader and the API's QoS changes.
std::string share_sum_problem(const Config& c);
// The warning when the default sessions share does not fit under 1 with the other shares
// (it is granted on top of them), or "".
std::string sessions_share_warning(const Config& c);
Config parse_config(const std::string& yaml_text, const std::string& file_name);

}  // namespace stakegate
