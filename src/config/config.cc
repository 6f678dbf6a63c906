#include "stakegate/config/config.h"

#include <algorithm>
#include <filesystem>
#include <sstream>

#include "stakegate/base/files.h"
#include "stakegate/config/yaml_reader.h"
#include "sections.h"

namespace stakegate {
namespace {

using config_sections::resolve_path;


std::vector<uint16_t> read_ports(const YamlReader& r) {
  r.expect_seq();
  std::vector<uint16_t> ports;
  for (size_t i = 0; i < r.size(); ++i) ports.push_back(r.item(i).port());
  std::sort(ports.begin(), ports.end());
  for (size_t i = 1; i < ports.size(); ++i)
    if (ports[i] == ports[i - 1]) r.fail("port " + std::to_string(ports[i]) + " is listed twice");
  return ports;
}

PortSpec read_port_spec(const YamlReader& r) {
  r.expect_map({"vdev", "pci"});
  PortSpec p;
  if (r.has("vdev")) p.vdev = r.child("vdev").string();
  if (r.has("pci")) p.pci = r.child("pci").string();
  if (p.vdev.empty() == p.pci.empty()) r.fail("needs exactly one of vdev or pci");
  return p;
}

void read_dataplane(const YamlReader& r, DataplaneConfig& d) {
  r.expect_map({"eal", "outside", "inside", "workers", "burst", "rx_desc", "tx_desc", "mbufs", "mbuf_data_room", "mtu", "rss",
                "stats_interval_s"});
  if (r.has("eal")) {
    auto e = r.child("eal");
    e.expect_seq();
    for (size_t i = 0; i < e.size(); ++i) d.eal.push_back(e.item(i).string());
  }
  if (!r.has("outside")) r.fail("missing key 'outside'");
  if (!r.has("inside")) r.fail("missing key 'inside'");
  d.outside = read_port_spec(r.child("outside"));
  d.inside = read_port_spec(r.child("inside"));
  if (d.outside.name() == d.inside.name()) r.child("inside").fail("must be a different device than outside");
  if (r.has("workers")) d.workers = static_cast<unsigned>(r.child("workers").integer(1, 64));
  if (r.has("burst")) d.burst = static_cast<unsigned>(r.child("burst").integer(1, 256));
  if (r.has("rx_desc")) d.rx_desc = static_cast<unsigned>(r.child("rx_desc").integer(64, 16384));
  if (r.has("tx_desc")) d.tx_desc = static_cast<unsigned>(r.child("tx_desc").integer(64, 16384));
  if (r.has("mbufs")) d.mbufs = static_cast<unsigned>(r.child("mbufs").integer(1023, 16u << 20));
  if (r.has("rss")) d.rss = r.child("rss").boolean();
  if (r.has("mbuf_data_room")) d.mbuf_data_room = static_cast<unsigned>(r.child("mbuf_data_room").integer(128, 65000));
  if (r.has("mtu")) d.mtu = static_cast<unsigned>(r.child("mtu").integer(68, 65000));
  if (r.has("stats_interval_s")) d.stats_interval_s = r.child("stats_interval_s").number(0.1, 3600);
}

// An inline node, in the config's own keys or as an entry of Flow's node-infos.pub.json
// (`NodeID`, `Role`, `Address`, `Weight`, `NetworkPubKey`, `StakingPubKey`, `StakingPoP`),
// so that entries can be pasted from the published file; one spelling per entry.
NodeIdentity read_inline_node(const YamlReader& r) {
  struct Keys {
    const char *node_id, *role, *address, *weight, *network_key, *staking_key;
  };
  static constexpr Keys kOwn{"node_id", "role", "address", "weight", "network_key", "staking_key"};
  static constexpr Keys kFlow{"NodeID", "Role", "Address", "Weight", "NetworkPubKey", "StakingPubKey"};
  const bool flow = r.has("NodeID") || r.has("Role") || r.has("Address");
  const Keys& k = flow ? kFlow : kOwn;
  if (flow) r.expect_map({"NodeID", "Role", "Address", "Weight", "NetworkPubKey", "StakingPubKey", "StakingPoP"});
  else r.expect_map({"node_id", "role", "address", "weight", "network_key", "staking_key", "ejected"});
  for (const char* key : {k.node_id, k.role, k.address})
    if (!r.has(key)) r.fail(std::string("missing key '") + key + "'");
  NodeIdentity n;
  try {
    set_node_fields(n, r.child(k.node_id).string(), r.child(k.role).string(), r.child(k.address).string(), r.file(), r.path(),
                    flow ? kFlowFieldNames : kFieldNames);
  } catch (const ConfigError& e) {  // say which line, as every other config error does
    YamlReader(r.node(), r.file(), e.key()).fail(e.problem());
  }
  if (r.has(k.weight)) n.weight = r.child(k.weight).number(0, 1e18);
  if (r.has(k.network_key)) n.network_key = r.child(k.network_key).string();
  if (r.has(k.staking_key)) n.staking_key = r.child(k.staking_key).string();
  if (!flow && r.has("ejected") && r.child("ejected").boolean()) set_node_status(n, "ejected");
  return n;
}

void read_identity(const YamlReader& r, IdentityConfig& id, const std::string& cfg_file) {
  r.expect_map({"flow_node_infos", "flow_snapshot", "nodes", "stake_file", "hosts", "max_removed_fraction", "dns", "access_api",
                "watch"});
  if (r.has("watch")) id.watch = r.child("watch").boolean();
  if (r.has("access_api")) config_sections::read_access_api(r.child("access_api"), id.access_api, cfg_file);
  if (r.has("max_removed_fraction")) id.max_removed_fraction = r.child("max_removed_fraction").number(0, 1);
  if (r.has("dns")) config_sections::read_dns(r.child("dns"), id.dns);
  int sources = r.has("flow_node_infos") + r.has("flow_snapshot") + r.has("nodes");
  if (sources != 1) r.fail("needs exactly one of flow_node_infos, flow_snapshot or nodes");
  if (r.has("flow_node_infos")) {
    id.kind = IdentityConfig::Kind::kNodeInfos;
    id.path = resolve_path(cfg_file, r.child("flow_node_infos").string());
  } else if (r.has("flow_snapshot")) {
    id.kind = IdentityConfig::Kind::kSnapshot;
    id.path = resolve_path(cfg_file, r.child("flow_snapshot").string());
  } else {
    id.kind = IdentityConfig::Kind::kInline;
    auto nodes = r.child("nodes");
    nodes.expect_seq();
    for (size_t i = 0; i < nodes.size(); ++i) id.inline_nodes.push_back(read_inline_node(nodes.item(i)));
    if (id.watch) r.child("watch").fail("watches the file of flow_node_infos or flow_snapshot; identity.nodes has none");
  }
  if (r.has("stake_file")) id.stake_file = resolve_path(cfg_file, r.child("stake_file").string());
  if (r.has("hosts")) {
    auto h = r.child("hosts");
    if (!h.node().IsMap()) h.fail("must be a mapping of host name to address");
    for (const auto& kv : h.node()) {
      std::string name = kv.first.as<std::string>();
      YamlReader v(kv.second, cfg_file, h.path() + "." + name);
      auto ip = parse_ip(v.string());
      if (!ip) v.fail("not an IPv4 or IPv6 address: '" + v.string() + "'");
      id.hosts[name] = *ip;
    }
  }
}

void read_role(const YamlReader& r, RoleQos& q) {
  r.expect_map({"share", "min_pps", "burst_ms", "ports"});
  q.configured = true;
  if (!r.has("share")) r.fail("missing key 'share'");
  q.share = r.child("share").number(0, 1);
  if (r.has("min_pps")) q.min_pps = r.child("min_pps").number(0, 1e9);
  if (r.has("burst_ms")) q.burst_ms = static_cast<unsigned>(r.child("burst_ms").integer(1, 60000));
  if (r.has("ports")) {
    q.ports = read_ports(r.child("ports"));
    if (q.ports.empty()) r.child("ports").fail("must list at least one port (omit it to allow every port)");
  }
}

void read_unregistered(const YamlReader& r, UnregisteredQos& u) {
  r.expect_map({"share", "per_source_pps", "burst_ms", "ports", "icmp_echo", "table_size"});
  if (r.has("share")) u.share = r.child("share").number(0, 1);
  if (r.has("per_source_pps")) u.per_source_pps = r.child("per_source_pps").number(0, 1e9);
  if (r.has("burst_ms")) u.burst_ms = static_cast<unsigned>(r.child("burst_ms").integer(1, 60000));
  if (r.has("ports")) u.ports = read_ports(r.child("ports"));
  if (r.has("icmp_echo")) u.icmp_echo = r.child("icmp_echo").boolean();
  if (r.has("table_size")) u.table_size = static_cast<unsigned>(r.child("table_size").integer(64, 1u << 26));
}

void read_blocklist(const YamlReader& r, std::vector<BlockEntry>& out) {
  r.expect_seq();
  for (size_t i = 0; i < r.size(); ++i) {
    auto e = r.item(i);
    e.expect_map({"cidr", "node_id", "reason"});
    BlockEntry b;
    if (e.has("cidr") == e.has("node_id")) e.fail("needs exactly one of cidr or node_id");
    if (e.has("cidr")) {
      std::string why;
      b.cidr = parse_cidr(e.child("cidr").string(), &why);
      if (!b.cidr) e.child("cidr").fail("bad CIDR '" + e.child("cidr").string() + "': " + why);
      if (auto refusal = block_refusal(*b.cidr); !refusal.empty())
        e.child("cidr").fail("refused '" + e.child("cidr").string() + "': " + refusal);
    } else {
      b.node_id = e.child("node_id").node_id();
    }
    if (e.has("reason")) b.reason = e.child("reason").string();
    out.push_back(std::move(b));
  }
}

void read_scoring(const YamlReader& s, ScoringConfig& c) {
  s.expect_map({"enabled", "graylist", "recover", "floor", "penalty_factor", "half_life_s", "penalties"});
  if (s.has("enabled")) c.enabled = s.child("enabled").boolean();
  if (s.has("graylist")) c.graylist = s.child("graylist").number(-1e12, -1e-9);
  c.recover = s.has("recover") ? s.child("recover").number(-1e12, 0) : c.graylist / 2;
  c.floor = s.has("floor") ? s.child("floor").number(-1e13, 0) : c.graylist * 10;
  if (c.recover <= c.graylist)
    s.child("recover").fail("must be above graylist (" + std::to_string(c.graylist) +
                            "): a node leaves the graylist above it");
  if (c.floor > c.graylist) s.child("floor").fail("must be at most graylist (" + std::to_string(c.graylist) + ")");
  if (s.has("penalty_factor")) c.penalty_factor = s.child("penalty_factor").number(0, 1);
  if (s.has("half_life_s")) c.half_life_s = s.child("half_life_s").number(0.001, 1e7);
  if (s.has("penalties")) {
    auto p = s.child("penalties");
    p.expect_map({"over_rate", "port_denied", "blocklisted", "ejected"});
    if (p.has("over_rate")) c.penalty_over_rate = p.child("over_rate").number(0, 1e9);
    if (p.has("port_denied")) c.penalty_port_denied = p.child("port_denied").number(0, 1e9);
    if (p.has("blocklisted")) c.penalty_blocklisted = p.child("blocklisted").number(0, 1e9);
    if (p.has("ejected")) c.penalty_ejected = p.child("ejected").number(0, 1e9);
  }
}

void read_tls(const YamlReader& t, TlsConfig& c) {
  t.expect_map({"cert", "key", "client_ca"});
  if (!t.has("cert") || !t.has("key")) t.fail("needs cert and key (PEM files)");
  c.cert = resolve_path(t.file(), t.child("cert").string());
  c.key = resolve_path(t.file(), t.child("key").string());
  if (t.has("client_ca")) c.client_ca = resolve_path(t.file(), t.child("client_ca").string());
}

unsigned socket_mode(const YamlReader& m) {
  // Written in octal as in chmod (0660); YAML reads 0660 as a decimal 660, so accept both.
  uint64_t v = m.integer(0, 0777777);
  unsigned mode = 0;
  for (uint64_t d = v, mul = 1; d; d /= 10, mul *= 8) {
    if (d % 10 > 7) m.fail("must be an octal mode such as 0660");
    mode += static_cast<unsigned>(d % 10 * mul);
  }
  if (mode & ~0777u) m.fail("must be an octal mode such as 0660");
  if (mode & 0007) m.fail("must not give others access (the socket changes or reveals the policy): use a group");
  return mode;
}

bool loopback(const std::string& host_port) {
  std::string host;
  uint16_t port = 0;
  if (!split_host_port(host_port, host, port)) return false;
  auto a = parse_ip(host);
  return a && (a->is_v4 ? (a->v4 >> 24) == 127 : a->v6 == Ip6{{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}});
}

void read_control(const YamlReader& s, ControlConfig& c) {
  s.expect_map({"socket", "socket_group", "socket_mode", "readonly_socket", "readonly_group", "readonly_mode", "tcp",
                "token_file", "readonly_token_file", "tls", "allow_plaintext", "metrics", "metrics_tls",
                "metrics_basic_auth", "max_body_bytes", "max_connections", "max_connections_per_peer",
                "reload_timeout_s"});
  if (s.has("socket")) c.socket = s.child("socket").string();
  if (s.is_null("socket")) c.socket.clear();
  if (s.has("socket_group")) c.socket_group = s.child("socket_group").string();
  if (s.has("socket_mode")) c.socket_mode = socket_mode(s.child("socket_mode"));
  if (s.has("readonly_socket")) c.readonly_socket = s.child("readonly_socket").string();
  if (s.has("readonly_group")) c.readonly_group = s.child("readonly_group").string();
  if (s.has("readonly_mode")) c.readonly_mode = socket_mode(s.child("readonly_mode"));
  if (!c.readonly_socket.empty() && c.readonly_socket == c.socket)
    s.child("readonly_socket").fail("must differ from control.socket");
  // A Unix socket's path must fit sockaddr_un (108 bytes with its NUL), or bind fails.
  for (const auto& [key, path] : {std::pair{"socket", &c.socket}, std::pair{"readonly_socket", &c.readonly_socket}})
    if (path->size() > 107)
      s.child(key).fail(std::to_string(path->size()) + " bytes long: a Unix socket's path may have at most 107");
  if (s.has("tcp")) c.tcp = s.child("tcp").string();
  if (s.has("token_file")) c.token_file = resolve_path(s.file(), s.child("token_file").string());
  if (s.has("readonly_token_file")) c.readonly_token_file = resolve_path(s.file(), s.child("readonly_token_file").string());
  if (s.has("tls")) read_tls(s.child("tls"), c.tls);
  if (s.has("allow_plaintext")) c.allow_plaintext = s.child("allow_plaintext").boolean();
  if (s.has("metrics")) c.metrics = s.child("metrics").string();
  if (s.is_null("metrics")) c.metrics.clear();
  if (s.has("metrics_tls")) read_tls(s.child("metrics_tls"), c.metrics_tls);
  if (s.has("metrics_basic_auth")) {
    // As node_exporter's web config: user -> bcrypt hash (stakegatectl hash-password).
    auto users = s.child("metrics_basic_auth");
    if (!users.node().IsMap()) users.fail("must map user names to bcrypt hashes");
    for (const auto& kv : users.node()) {
      std::string user = kv.first.as<std::string>();
      std::string hash = users.child(user.c_str()).string();
      if (user.empty() || user.find(':') != std::string::npos) users.fail("user names must be non-empty, without ':'");
      if (!(hash.rfind("$2a$", 0) == 0 || hash.rfind("$2b$", 0) == 0 || hash.rfind("$2y$", 0) == 0) || hash.size() != 60)
        users.child(user.c_str()).fail("must be a bcrypt hash ($2b$..., 60 characters; stakegatectl hash-password makes one)");
      c.metrics_users.emplace_back(user, hash);
    }
  }
  if (s.has("max_body_bytes")) c.max_body_bytes = s.child("max_body_bytes").integer(1024, 1ull << 32);
  if (s.has("max_connections")) c.max_connections = s.child("max_connections").integer(1, 4096);
  if (s.has("max_connections_per_peer")) c.max_connections_per_peer = s.child("max_connections_per_peer").integer(1, 4096);
  if (s.has("reload_timeout_s")) c.reload_timeout_s = s.child("reload_timeout_s").number(1, 3600);
  for (const char* k : {"tcp", "metrics"}) {
    if (!s.has(k)) continue;
    std::string v = s.child(k).string(), host;
    uint16_t port = 0;
    if (!split_host_port(v, host, port) || !parse_ip(host))
      s.child(k).fail("must be IP:port (a literal address), got '" + v + "'");
  }
  if (!c.tcp.empty()) {
    if (c.token_file.empty()) s.child("tcp").fail("a TCP control listener needs control.token_file");
    if (!c.tls.on() && !c.allow_plaintext && !loopback(c.tcp))
      s.child("tcp").fail("a TCP control listener on a non-loopback address needs control.tls (the token would travel "
                          "in clear), or control.allow_plaintext: true");
  } else if (s.has("tls") || s.has("token_file") || s.has("readonly_token_file")) {
    s.fail("tls, token_file and readonly_token_file are for control.tcp, which is not set");
  }
  if (c.metrics.empty() && (s.has("metrics_tls") || s.has("metrics_basic_auth")))
    s.fail("metrics_tls and metrics_basic_auth need control.metrics");
}

void read_evidence(const YamlReader& e, EvidenceConfig& c) {
  e.expect_map({"dir", "on_graylist", "window_s", "max_samples", "snaplen", "retention_cases", "retention_mb"});
  if (e.has("dir")) c.dir = e.child("dir").string();  // as given, like control.socket
  if (e.has("on_graylist")) c.on_graylist = e.child("on_graylist").boolean();
  if (e.has("window_s")) c.window_s = e.child("window_s").number(0.001, 86400);
  if (e.has("max_samples")) c.max_samples = static_cast<unsigned>(e.child("max_samples").integer(0, 1000000));
  if (e.has("snaplen")) c.snaplen = static_cast<unsigned>(e.child("snaplen").integer(64, 256));
  if (e.has("retention_cases")) c.retention_cases = static_cast<unsigned>(e.child("retention_cases").integer(1, 100000));
  if (e.has("retention_mb")) c.retention_bytes = e.child("retention_mb").integer(1, 1u << 20) << 20;
}

void read_operator(const YamlReader& o, OperatorConfig& c) {
  o.expect_map({"name", "contact", "node_id", "role", "address", "network_key", "staking_key"});
  auto str = [&](const char* k, std::string& out) {
    if (o.has(k)) out = o.child(k).string();
  };
  str("name", c.name);
  str("contact", c.contact);
  if (o.has("node_id")) c.node_id = o.child("node_id").node_id();
  str("role", c.role);
  str("address", c.address);
  str("network_key", c.network_key);
  str("staking_key", c.staking_key);
  if (!c.role.empty() && !parse_role(c.role)) o.child("role").fail("unknown role '" + c.role + "'");
}

}  // namespace

namespace {
// The role shares and unregistered.share, listed in `parts`.
double shares_without_sessions(const Config& c, std::ostringstream& parts) {
  double sum = c.unregistered.share;
  for (int i = 0; i < kRoleCount; ++i) {
    sum += c.roles[i].share;
    if (c.roles[i].configured) parts << role_name(static_cast<Role>(i)) << " " << c.roles[i].share << " + ";
  }
  parts << "unregistered " << c.unregistered.share;
  return sum;
}
}  // namespace

std::string share_sum_problem(const Config& c) {
  std::ostringstream parts;
  double sum = shares_without_sessions(c, parts);
  if (c.sessions.share_set) {
    sum += c.sessions.share;
    parts << " + sessions " << c.sessions.share;
  }
  if (sum <= 1.0 + 1e-9) return "";
  std::ostringstream total;
  total << sum;
  return "shares sum to " + total.str() + " (" + parts.str() + "), must be at most 1";
}

std::string sessions_share_warning(const Config& c) {
  std::ostringstream parts;
  const double sum = shares_without_sessions(c, parts);
  if (c.sessions.share_set || sum + c.sessions.share <= 1.0 + 1e-9) return "";
  std::ostringstream text;
  text << "sessions.share is not set: its default " << c.sessions.share
       << " (replies on sessions the cluster opened: DNS, NTP, HTTPS) comes on top of the other shares, which sum to "
       << sum << ", so up to " << sum + c.sessions.share
       << " x capacity may reach the cluster; set sessions.share and lower another share to stay within capacity "
          "(docs/configuration.md)";
  return text.str();
}

std::string PortSpec::name() const { return pci.empty() ? vdev.substr(0, vdev.find(',')) : pci; }

namespace {
Config parse_config_checked(const std::string& text, const std::string& file);
void check_share_sum(const Config& c) {
  std::string problem = share_sum_problem(c);
  if (!problem.empty()) throw ConfigError(c.file, "roles", problem);
}
}

Config parse_config(const std::string& text, const std::string& file) {
  try {
    return parse_config_checked(text, file);
  } catch (const YAML::Exception& e) {
    // Whatever yaml-cpp still throws while the config is read is a refusal too.
    throw ConfigError(file, "", "not a valid config: " + e.msg + " (line " + std::to_string(e.mark.line + 1) + ")");
  }
}

namespace {
// yaml-cpp reports a tab in an indentation as, say, "illegal map value": name the cause
// when a line up to the one it refused is indented with a tab.
std::string tab_indent_hint(const std::string& text, int error_line) {
  int line = 1;
  for (size_t start = 0; start < text.size() && line <= error_line; ++line) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    const size_t indent_end = std::min(text.find_first_not_of(" \t", start), end);
    if (indent_end < end && text.find('\t', start) < indent_end)  // blank lines do not count
      return "; line " + std::to_string(line) + " is indented with a tab, which YAML does not allow: use spaces";
    start = end + 1;
  }
  return "";
}

Config parse_config_checked(const std::string& text, const std::string& file) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw ConfigError(file, "", "not valid YAML: " + e.msg + " (line " + std::to_string(e.mark.line + 1) + ")" +
                                    tab_indent_hint(text, e.mark.line + 1));
  }
  YamlReader r(root, file, "");
  if (!root.IsMap()) throw ConfigError(file, "", "must be a YAML mapping");
  r.expect_utf8();
  r.expect_map({"dataplane", "capacity", "identity", "roles", "unregistered", "blocklist", "scoring", "evidence",
                "operator", "control", "limits", "cluster", "sessions", "infra", "request_channel",
                "state_dir", "mode"});
  Config c;
  c.file = file;
  for (const char* k : {"dataplane", "capacity", "identity", "roles"})
    if (!r.has(k)) throw ConfigError(file, k, "missing section");
  read_dataplane(r.child("dataplane"), c.dataplane);

  auto cap = r.child("capacity");
  cap.expect_map({"pps", "bps"});
  if (!cap.has("pps")) cap.fail("missing key 'pps'");
  c.capacity_pps = cap.child("pps").number(1, 1e10);
  if (cap.has("bps")) c.capacity_bps = cap.child("bps").number(1, 1e13);

  read_identity(r.child("identity"), c.identity, file);

  auto roles = r.child("roles");
  roles.expect_map({"collection", "consensus", "execution", "verification", "access"});
  for (int i = 0; i < kRoleCount; ++i) {
    std::string name(role_name(static_cast<Role>(i)));
    if (roles.has(name.c_str())) read_role(roles.child(name.c_str()), c.roles[i]);
  }
  if (r.has("unregistered")) read_unregistered(r.child("unregistered"), c.unregistered);

  if (r.has("blocklist")) read_blocklist(r.child("blocklist"), c.blocklist);

  if (r.has("scoring")) read_scoring(r.child("scoring"), c.scoring);
  if (r.has("evidence")) read_evidence(r.child("evidence"), c.evidence);
  if (r.has("operator")) read_operator(r.child("operator"), c.operator_info);
  if (r.has("control")) read_control(r.child("control"), c.control);
  if (r.has("mode")) {
    const std::string mode = r.child("mode").string();
    if (mode != "enforce" && mode != "monitor")
      r.child("mode").fail("'" + mode + "': must be 'enforce' (drop what the verdicts say) or 'monitor' (count them, drop nothing)");
    c.monitor = mode == "monitor";
  }
  if (r.has("state_dir")) c.state_dir = resolve_path(file, r.child("state_dir").string());
  if (r.has("cluster")) config_sections::read_cluster(r.child("cluster"), c.cluster);
  if (r.has("sessions")) config_sections::read_sessions(r.child("sessions"), c.sessions);
  if (r.has("infra")) config_sections::read_infra(r.child("infra"), c.infra, c.cluster);
  if (r.has("request_channel")) config_sections::read_request_channel(r.child("request_channel"), c.request_channel);
  if (r.has("limits")) {
    auto l = r.child("limits");
    l.expect_map({"sources", "blocklist", "sessions"});
    if (l.has("sources")) c.limits_sources = l.child("sources").integer(16, 1u << 26);
    if (l.has("blocklist")) c.limits_blocklist = l.child("blocklist").integer(1, 10000000);
    if (l.has("sessions")) c.limits_sessions = l.child("sessions").integer(1024, 1u << 26);
  }
  check_share_sum(c);
  if (c.blocklist.size() > c.limits_blocklist) {
    throw ConfigError(file, "blocklist", std::to_string(c.blocklist.size()) + " entries, over limits.blocklist (" +
                                             std::to_string(c.limits_blocklist) + ")");
  }
  return c;
}
}  // namespace

Config load_config(const std::string& path) { return parse_config(read_text_file(path, path, ""), path); }

}  // namespace stakegate
