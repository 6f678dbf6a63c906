// Every refusal names the file, the key path and the problem.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "stakegate/base/utf8.h"
#include "stakegate/config/config.h"
#include "test_util.h"

using namespace stakegate;
using stakegate::testing::base_config;
using ::testing::HasSubstr;
using ::testing::Not;

namespace {

std::string error_of(const std::string& yaml) {
  try {
    parse_config(yaml, "config/x.yaml");
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "(accepted)";
}

std::string replace(std::string s, const std::string& from, const std::string& to) {
  auto at = s.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  return s.replace(at, from.size(), to);
}

}  // namespace

TEST(Config, AcceptsTheBaseConfig) {
  Config c = parse_config(base_config(), "config/x.yaml");
  EXPECT_EQ(c.capacity_pps, 100000);
  EXPECT_EQ(c.identity.inline_nodes.size(), 3u);
  EXPECT_EQ(c.roles[static_cast<int>(Role::kConsensus)].burst_ms, 100u);  // default
  EXPECT_EQ(c.unregistered.burst_ms, 100u);
  EXPECT_TRUE(c.roles[static_cast<int>(Role::kAccess)].configured);
  EXPECT_FALSE(c.roles[static_cast<int>(Role::kExecution)].configured);
  EXPECT_EQ(c.dataplane.workers, 1u);
}

TEST(Config, ModeIsEnforceOrMonitor) {
  EXPECT_FALSE(parse_config(base_config(), "config/x.yaml").monitor);
  EXPECT_FALSE(parse_config(base_config("", "mode: enforce\n"), "config/x.yaml").monitor);
  EXPECT_TRUE(parse_config(base_config("", "mode: monitor\n"), "config/x.yaml").monitor);
  EXPECT_THAT(error_of(base_config("", "mode: off\n")),
              HasSubstr("config/x.yaml: mode: 'off': must be 'enforce' (drop what the verdicts say) or 'monitor'"));
}

TEST(Config, ShareOutOfRange) {
  EXPECT_THAT(error_of(replace(base_config(), "share: 0.5", "share: 1.7")),
              HasSubstr("config/x.yaml: roles.consensus.share: must be between 0 and 1, got 1.7"));
}

TEST(Config, SharesSummingOverOne) {
  EXPECT_THAT(error_of(replace(base_config(), "share: 0.2", "share: 0.6")),
              HasSubstr("config/x.yaml: roles: shares sum to 1.15 (consensus 0.5 + access 0.6 + unregistered 0.05), "
                        "must be at most 1"));
  // A sessions share the config sets counts: what fits without it may not fit with it.
  EXPECT_THAT(error_of(base_config("", "sessions: {share: 0.3}\n")),
              HasSubstr("shares sum to 1.05 (consensus 0.5 + access 0.2 + unregistered 0.05 + sessions 0.3)"));
  EXPECT_EQ(error_of(base_config("", "sessions: {share: 0.25}\n")), "(accepted)");
}

// The contract's own example (shares summing to 1, no sessions key) must still start: the
// default sessions share then comes on top of the others, with a warning, instead of the
// whole config being refused (or the cluster's DNS and HTTPS replies getting nothing).
TEST(Config, DefaultSessionsShareComesOnTopWhenTheOthersSumToOne) {
  const std::string full = replace(base_config(), "share: 0.2", "share: 0.45");  // 0.5 + 0.45 + 0.05 = 1
  Config c = parse_config(full, "config/x.yaml");
  EXPECT_FALSE(c.sessions.share_set);
  EXPECT_DOUBLE_EQ(c.sessions.share, 0.05);
  EXPECT_EQ(share_sum_problem(c), "");
  EXPECT_THAT(sessions_share_warning(c), HasSubstr("sessions.share is not set: its default 0.05"));
  EXPECT_THAT(sessions_share_warning(c), HasSubstr("which sum to 1, so up to 1.05 x capacity"));
  // Where the default fits, nothing to say; set explicitly, it counts and is never warned.
  EXPECT_EQ(sessions_share_warning(parse_config(base_config(), "config/x.yaml")), "");
  Config set = parse_config(base_config("", "sessions: {share: 0.05}\n"), "config/x.yaml");
  EXPECT_TRUE(set.sessions.share_set);
  EXPECT_EQ(sessions_share_warning(set), "");
  EXPECT_THAT(error_of(full + "sessions: {share: 0.05}\n"), HasSubstr("shares sum to 1.05"));
  EXPECT_EQ(error_of(full + "sessions: {share: 0}\n"), "(accepted)");
  // Over 1 without the sessions share is refused as before.
  EXPECT_THAT(error_of(replace(base_config(), "share: 0.2", "share: 0.46")), HasSubstr("shares sum to 1.01"));
}

// A connection idle but for TCP keepalives (Linux: the first after 7,200 s) must outlive
// its first probe: the default is RFC 5382's floor for a NAT, 2 h 4 min.
TEST(Config, TheDefaultEstablishedTimeoutOutlivesTcpKeepalive) {
  const Config c = parse_config(base_config(), "config/x.yaml");
  EXPECT_GE(c.sessions.tcp_established_s, 7440);
}

TEST(Config, SessionsInfraClusterAndRequestChannel) {
  auto without_cluster = [](std::string y) { return y.erase(y.find("cluster:"), y.find('\n', y.find("cluster:")) - y.find("cluster:") + 1); };
  Config c = parse_config(without_cluster(base_config("", R"(cluster: {prefixes: [198.18.255.0/24, "2001:2::/48"]}
sessions: {share: 0.1, burst_ms: 200, timeouts: {tcp_established_s: 600, udp_s: 20}}
infra: {pps: 500, ethertypes: ["0x88cc", "35020", "0x88CC"]}
request_channel: {fraction: 0.1, min_pps: 20}
limits: {sessions: 65536}
)")), "x.yaml");
  ASSERT_EQ(c.cluster.prefixes.size(), 2u);
  EXPECT_EQ(c.sessions.share, 0.1);
  EXPECT_EQ(c.sessions.tcp_established_s, 600);
  EXPECT_EQ(c.sessions.tcp_syn_s, 60);  // default
  EXPECT_EQ(c.infra.ethertypes, (std::vector<uint16_t>{0x88cc}));  // 35020 is 0x88cc too
  EXPECT_FALSE(c.infra.icmp_errors_pps);  // as infra.pps
  EXPECT_EQ(*parse_config(base_config("", "infra: {icmp_errors_pps: 50}\n"), "x.yaml").infra.icmp_errors_pps, 50);
  EXPECT_THAT(error_of(base_config("", "infra: {icmp_errors_pps: -1}\n")), HasSubstr("infra.icmp_errors_pps"));
  const Config n = parse_config(base_config("", "infra: {neighbours: [\"02:AA:00:00:00:01\", \"02:aa:00:00:00:01\"]}\n"), "x.yaml");
  EXPECT_EQ(n.infra.neighbours, (std::vector<std::array<uint8_t, 6>>{{0x02, 0xaa, 0, 0, 0, 1}}));  // either case, once
  EXPECT_THAT(error_of(base_config("", "infra: {neighbours: [\"02:aa:00:00:00\"]}\n")),
              HasSubstr("infra.neighbours[0]: must be a MAC address (aa:bb:cc:dd:ee:ff), got '02:aa:00:00:00'"));
  EXPECT_THAT(error_of(base_config("", "infra: {neighbours: [\"02:aa:00:00:00:0g\"]}\n")), HasSubstr("must be a MAC address"));
  EXPECT_THAT(error_of(base_config("", "infra: {neighbours: [\"02-aa-00-00-00-01\"]}\n")), HasSubstr("must be a MAC address"));
  EXPECT_THAT(error_of(base_config("", "infra: {neighbours: [\"ff:ff:ff:ff:ff:ff\"]}\n")),
              HasSubstr("infra.neighbours[0]: 'ff:ff:ff:ff:ff:ff' is a multicast or broadcast address"));
  EXPECT_THAT(error_of(base_config("", "infra: {neighbours: [\"00:00:00:00:00:00\"]}\n")), HasSubstr("is no host's address"));
  EXPECT_TRUE(parse_config(base_config("", "infra: {neighbours: [\"02:aa:00:00:00:01\"], ra_guard: true}\n"), "x.yaml").infra.ra_guard);
  EXPECT_THAT(error_of(base_config("", "infra: {ra_guard: true}\n")), HasSubstr("infra.ra_guard: needs infra.neighbours"));
  std::string nine;
  for (int k = 1; k <= 9; ++k) nine += std::string(nine.empty() ? "" : ", ") + "\"02:00:00:00:00:0" + std::to_string(k) + "\"";
  EXPECT_THAT(error_of(base_config("", "infra: {neighbours: [" + nine + "]}\n")), HasSubstr("infra.neighbours: at most 8"));
  // A neighbour with the addresses it answers for (and one under two MACs: a VRRP pair).
  const Config g = parse_config(base_config("", R"(infra:
  neighbours:
    - {mac: "02:aa:00:00:00:01", addresses: [198.51.100.1, "fe80::1", "::ffff:198.51.100.9"]}
    - "02:aa:00:00:00:02"
    - {mac: "00:00:5e:00:01:07", addresses: [198.51.100.1]}
)"), "x.yaml");
  EXPECT_EQ(g.infra.neighbours.size(), 3u);
  ASSERT_EQ(g.infra.neighbour_addresses.size(), 4u);
  EXPECT_EQ(g.infra.neighbour_addresses[0].address, *parse_ip("198.51.100.1"));
  EXPECT_EQ(g.infra.neighbour_addresses[2].address, *parse_ip("198.51.100.9"));  // read as the IPv4 address
  EXPECT_EQ(g.infra.neighbour_addresses[3].mac, (std::array<uint8_t, 6>{0, 0, 0x5e, 0, 1, 7}));
  auto guarded = [](const std::string& entry) { return base_config("", "infra: {neighbours: [" + entry + "]}\n"); };
  EXPECT_THAT(error_of(guarded("{mac: \"02:aa:00:00:00:01\", addresses: [198.51.100.300]}")),
              HasSubstr("infra.neighbours[0].addresses[0]: must be an IPv4 or IPv6 address, got '198.51.100.300'"));
  EXPECT_THAT(error_of(guarded("{mac: \"02:aa:00:00:00:01\", addresses: [198.18.255.7]}")),
              HasSubstr("infra.neighbours[0].addresses[0]: '198.18.255.7' is inside cluster.prefixes (198.18.255.0/24)"));
  EXPECT_THAT(error_of(guarded("{mac: \"02:aa:00:00:00:01\", addresses: [224.0.0.1]}")), HasSubstr("is no host's address"));
  EXPECT_THAT(error_of(guarded("{mac: \"02:aa:00:00:00:01\", addresses: [\"::\"]}")), HasSubstr("is no host's address"));
  EXPECT_THAT(error_of(guarded("{addresses: [198.51.100.1]}")), HasSubstr("infra.neighbours[0]: missing key 'mac'"));
  EXPECT_THAT(error_of(guarded("{mac: \"02:aa:00:00:00:01\", address: [198.51.100.1]}")), HasSubstr("infra.neighbours[0]"));
  EXPECT_THAT(error_of(guarded("{mac: \"ff:aa:00:00:00:01\", addresses: [198.51.100.1]}")),
              HasSubstr("infra.neighbours[0].mac: 'ff:aa:00:00:00:01' is a multicast or broadcast address"));
  std::string many;
  for (int k = 1; k <= 33; ++k) many += std::string(many.empty() ? "" : ", ") + "198.51.100." + std::to_string(k);
  EXPECT_THAT(error_of(guarded("{mac: \"02:aa:00:00:00:01\", addresses: [" + many + "]}")),
              HasSubstr("at most 32 neighbour addresses"));
  // infra.routing: known protocols by name, only with a neighbour's addresses to come from.
  const std::string router = "neighbours: [{mac: \"02:aa:00:00:00:01\", addresses: [198.51.100.1]}]";
  const Config routing = parse_config(base_config("", "infra: {" + router + ", routing: [bgp, bfd, ospf]}\n"), "x.yaml");
  EXPECT_EQ(routing.infra.routing, kRoutingBgp | kRoutingBfd | kRoutingOspf);
  EXPECT_EQ(routing.infra.routing_pps, 2000);
  EXPECT_EQ(c.infra.routing, 0);
  EXPECT_THAT(error_of(base_config("", "infra: {" + router + ", routing: [bgp, isis]}\n")),
              HasSubstr("infra.routing[1]: unknown routing protocol 'isis' (known: bgp, bfd, ospf, pim, vrrp, rip, ldp)"));
  EXPECT_THAT(error_of(base_config("", "infra: {neighbours: [\"02:aa:00:00:00:01\"], routing: [bfd]}\n")),
              HasSubstr("infra.routing: needs infra.neighbours with their addresses"));
  EXPECT_THAT(error_of(base_config("", "infra: {routing: [bfd]}\n")), HasSubstr("infra.routing: needs infra.neighbours"));
  EXPECT_THAT(error_of(base_config("", "infra: {" + router + ", routing: [bfd], routing_pps: 0}\n")),
              HasSubstr("infra.routing_pps: must be at least 1 with infra.routing set"));
  EXPECT_EQ(parse_config(base_config("", "infra: {routing_pps: 0}\n"), "x.yaml").infra.routing_pps, 0);  // unused
  EXPECT_EQ(c.request_channel.fraction, 0.1);
  EXPECT_EQ(c.limits_sessions, 65536u);
  EXPECT_THAT(error_of(without_cluster(base_config("", "cluster: {prefixes: [10.0.0.1/8]}\n"))), HasSubstr("cluster.prefixes[0]: bad CIDR"));
  // Prefixes that would make the whole outside, or the router's neighbour discovery, spoofed.
  EXPECT_THAT(error_of(without_cluster(base_config("", "cluster: {prefixes: [198.18.255.0/24, 0.0.0.0/0]}\n"))),
              HasSubstr("cluster.prefixes[1]: refused '0.0.0.0/0': a /0 makes every IPv4 address the cluster's"));
  EXPECT_THAT(error_of(without_cluster(base_config("", "cluster: {prefixes: [\"::/0\"]}\n"))),
              HasSubstr("a /0 makes every IPv6 address the cluster's"));
  for (const char* ll : {"fe80::/64", "fe80::1", "fe80::/10", "8000::/1"})
    EXPECT_THAT(error_of(without_cluster(base_config("", std::string("cluster: {prefixes: [\"") + ll + "\"]}\n"))),
                HasSubstr("link-local addresses (fe80::/10) are the upstream router's too"))
        << ll;
  for (const char* ll : {"169.254.0.0/16", "169.254.7.1", "128.0.0.0/1"})
    EXPECT_THAT(error_of(without_cluster(base_config("", std::string("cluster: {prefixes: [\"") + ll + "\"]}\n"))),
                HasSubstr("link-local addresses (169.254.0.0/16) are the upstream router's too"))
        << ll;
  // No node has a multicast or loopback address.
  for (const auto& [bad, what] : std::vector<std::pair<const char*, const char*>>{
           {"224.0.0.0/4", "224.0.0.0/4 holds multicast"}, {"239.1.0.0/16", "224.0.0.0/4 holds multicast"},
           {"127.0.0.0/8", "127.0.0.0/8 holds loopback"}, {"ff02::/16", "ff00::/8 holds multicast"},
           {"::1", "::1/128 holds loopback"}})
    EXPECT_THAT(error_of(without_cluster(base_config("", std::string("cluster: {prefixes: [\"") + bad + "\"]}\n"))),
                HasSubstr(std::string("refused '") + bad + "': " + what))
        << bad;
  EXPECT_EQ(error_of(without_cluster(base_config("", "cluster: {prefixes: [0.0.0.0/1, \"2001:db8::/32\"]}\n"))), "(accepted)");
  EXPECT_THAT(error_of(base_config("", "infra: {ethertypes: [\"0x0800\"]}\n")),
              HasSubstr("infra.ethertypes[0]: IPv4, IPv6 and VLAN tags are always classified"));
  EXPECT_THAT(error_of(base_config("", "infra: {ethertypes: [\"ipx\"]}\n")), HasSubstr("must be an EtherType"));
  EXPECT_THAT(error_of(base_config("", "sessions: {timeouts: {tcp_forever_s: 1}}\n")), HasSubstr("unknown key"));
}

TEST(Config, UnknownRole) {
  EXPECT_THAT(error_of(base_config("  validator: {share: 0.1}\n")),
              HasSubstr("config/x.yaml: roles.validator: unknown key (expected one of: collection, consensus"));
}

TEST(Config, UnknownKeys) {
  EXPECT_THAT(error_of(replace(base_config(), "min_pps: 100, ports: [3569]}", "min_pps: 100, burstms: 5}")),
              HasSubstr("config/x.yaml: roles.consensus.burstms: unknown key"));
  EXPECT_THAT(error_of(base_config("", "colour: blue\n")), HasSubstr("config/x.yaml: colour: unknown key"));
}

TEST(Config, RepeatedKeys) {
  EXPECT_THAT(error_of(stakegate::testing::base_config("", "capacity: {pps: 5}\n")),
              HasSubstr("config/x.yaml: capacity: key given twice"));
  EXPECT_THAT(error_of(replace(stakegate::testing::base_config(), "share: 0.5,", "share: 0.5, share: 0.1,")),
              HasSubstr("roles.consensus.share: key given twice"));
}

TEST(Config, BadCidr) {
  EXPECT_THAT(error_of(base_config("", "blocklist: [{cidr: 198.51.100.0/33}]\n")),
              HasSubstr("config/x.yaml: blocklist[0].cidr: bad CIDR '198.51.100.0/33': prefix length must be 0..32"));
  EXPECT_THAT(error_of(base_config("", "blocklist: [{cidr: 300.1.1.1/32}]\n")),
              HasSubstr("blocklist[0].cidr: bad CIDR '300.1.1.1/32': not an IPv4 or IPv6 address"));
  EXPECT_THAT(error_of(base_config("", "blocklist: [{node_id: abc}]\n")),
              HasSubstr("blocklist[0].node_id: must be 64 hex characters"));
  // Blocks that would cut the cluster off (address_test.cc has the whole rule).
  EXPECT_THAT(error_of(base_config("", "blocklist: [{cidr: 198.51.100.0/24}, {cidr: 0.0.0.0/0}]\n")),
              HasSubstr("config/x.yaml: blocklist[1].cidr: refused '0.0.0.0/0': a /0 blocks every IPv4 source"));
  EXPECT_THAT(error_of(base_config("", "blocklist: [{cidr: \"fe80::/64\"}]\n")),
              HasSubstr("blocklist[0].cidr: refused 'fe80::/64': it covers link-local addresses (fe80::/10)"));
  EXPECT_EQ(error_of(base_config("", "blocklist: [{cidr: \"fe80::1\"}, {cidr: 0.0.0.0/1}]\n")), "(accepted)");
}

TEST(Config, BadPorts) {
  EXPECT_THAT(error_of(replace(base_config(), "ports: [3569]}", "ports: [70000]}")),
              HasSubstr("config/x.yaml: roles.consensus.ports[0]: must be a port number between 1 and 65535, got '70000'"));
  EXPECT_THAT(error_of(replace(base_config(), "ports: [9000]}", "ports: [0]}")),
              HasSubstr("unregistered.ports[0]: must be a port number"));
  EXPECT_THAT(error_of(replace(base_config(), "ports: [3569]}", "ports: [3569, 3569]}")),
              HasSubstr("roles.consensus.ports: port 3569 is listed twice"));
}

TEST(Config, MissingSectionsAndFiles) {
  EXPECT_THAT(error_of(replace(base_config(), "capacity: {pps: 100000}\n", "")),
              HasSubstr("config/x.yaml: capacity: missing section"));
  stakegate::testing::TempDir dir;
  try {
    load_config(dir.path() + "/nope.yaml");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_THAT(e.what(), HasSubstr("nope.yaml: cannot read '" + dir.path() + "/nope.yaml': No such file or directory"));
  }
}

// Entries pasted from Flow's node-infos.pub.json read as the config's own keys do.
TEST(Config, InlineNodesInFlowsSpelling) {
  const std::string flow_entry =
      R"(    - {"Role": "access", "Address": "[2001:2::3]:3569", "NodeID": "aa00000000000000000000000000000000000000000000000000000000000003", "Weight": 250, "NetworkPubKey": "14c7", "StakingPubKey": "ca78", "StakingPoP": "60d2"})";
  const std::string own = R"(    - {node_id: "aa00000000000000000000000000000000000000000000000000000000000003", role: access, address: "[2001:2::3]:3569", weight: 100})";
  Config c = parse_config(replace(base_config(), own, flow_entry), "config/x.yaml");
  ASSERT_EQ(c.identity.inline_nodes.size(), 3u);
  const NodeIdentity& n = c.identity.inline_nodes[2];
  EXPECT_EQ(n.node_id, "aa00000000000000000000000000000000000000000000000000000000000003");
  EXPECT_EQ(n.role, Role::kAccess);
  EXPECT_EQ(n.host, "2001:2::3");
  EXPECT_EQ(n.port, 3569);
  EXPECT_DOUBLE_EQ(n.weight, 250);
  EXPECT_EQ(n.network_key, "14c7");
  EXPECT_EQ(n.staking_key, "ca78");
  // Errors name Flow's keys; the two spellings do not mix in one entry.
  EXPECT_THAT(error_of(replace(replace(base_config(), own, flow_entry), "\"access\"", "\"validator\"")),
              HasSubstr("identity.nodes[2].Role: unknown role 'validator'"));
  EXPECT_THAT(error_of(replace(replace(base_config(), own, flow_entry), "\"Weight\"", "\"weight\"")),
              HasSubstr("identity.nodes[2].weight: unknown key"));
  EXPECT_THAT(error_of(replace(replace(base_config(), own, flow_entry), "\"NodeID\"", "\"Node\"")),
              HasSubstr("identity.nodes[2]"));
}

TEST(Config, BadValues) {
  EXPECT_THAT(error_of(replace(base_config(), "pps: 100000", "pps: lots")),
              HasSubstr("capacity.pps: must be a number, got 'lots'"));
  EXPECT_THAT(error_of(replace(base_config(), "role: access", "role: validator")),
              HasSubstr("identity.nodes[2].role: unknown role 'validator'"));
  EXPECT_THAT(error_of(replace(base_config(), "198.18.1.1:3569", "198.18.1.1")),
              HasSubstr("identity.nodes[0].address: must be host:port"));
  EXPECT_THAT(error_of(replace(base_config(), "{vdev: \"net_null1\"}", "{vdev: \"net_null0\"}")),
              HasSubstr("dataplane.inside: must be a different device than outside"));
  EXPECT_THAT(error_of(replace(base_config(), "{vdev: \"net_null1\"}", "{}")),
              HasSubstr("dataplane.inside: needs exactly one of vdev or pci"));
  EXPECT_THAT(error_of("dataplane: [\n"), HasSubstr("config/x.yaml: not valid YAML"));
  // A tab in an indentation (an editor's doing) is named as the cause.
  EXPECT_THAT(error_of("capacity:\n\tpps: 5\n"),
              HasSubstr("line 2 is indented with a tab, which YAML does not allow: use spaces"));
  EXPECT_THAT(error_of("dataplane: [\n"), Not(HasSubstr("tab")));
  EXPECT_THAT(error_of("a: b\n  c: d\nx:\t[\n"), Not(HasSubstr("indented with a tab")));  // a tab after the indentation
  EXPECT_THAT(error_of("a: b\n \t\nx: [\n"), Not(HasSubstr("indented with a tab")));  // a blank line with a tab
  EXPECT_THAT(error_of(replace(base_config(), "inside: {vdev: \"net_null1\"}", "inside: {vdev: \"net_null1\"}\n  mtu: 20")),
              HasSubstr("dataplane.mtu: must be between 68 and 65000, got 20"));
  EXPECT_EQ(parse_config(replace(base_config(), "inside: {vdev: \"net_null1\"}", "inside: {vdev: \"net_null1\"}\n  mtu: 9000"),
                         "x.yaml").dataplane.mtu,
            9000u);
}

TEST(Config, RelativeIdentityPathsFollowTheConfigFile) {
  std::string y = replace(base_config(), base_config().substr(base_config().find("identity:"),
                                                              base_config().find("roles:") - base_config().find("identity:")),
                          "identity: {flow_node_infos: ids/node-infos.pub.json, stake_file: /abs/stakes.json}\n");
  Config c = parse_config(y, "/etc/stakegate/stakegate.yaml");
  EXPECT_EQ(c.identity.path, "/etc/stakegate/ids/node-infos.pub.json");
  EXPECT_EQ(c.identity.stake_file, "/abs/stakes.json");
}

TEST(Config, ScoringEvidenceAndOperator) {
  Config c = parse_config(base_config("", "scoring: {graylist: -40}\n"), "config/x.yaml");
  EXPECT_TRUE(c.scoring.enabled);  // on by default
  EXPECT_DOUBLE_EQ(c.scoring.recover, -20);   // graylist / 2
  EXPECT_DOUBLE_EQ(c.scoring.floor, -400);    // graylist x 10
  EXPECT_DOUBLE_EQ(c.scoring.penalty_over_rate, 10);
  EXPECT_EQ(c.evidence.dir, "/var/lib/stakegate/evidence");
  EXPECT_THAT(error_of(base_config("", "scoring: {graylist: -100, recover: -100}\n")),
              HasSubstr("config/x.yaml: scoring.recover: must be above graylist"));
  EXPECT_THAT(error_of(base_config("", "scoring: {graylist: -100, floor: -50}\n")),
              HasSubstr("scoring.floor: must be at most graylist"));
  EXPECT_THAT(error_of(base_config("", "scoring: {graylist: 5}\n")), HasSubstr("scoring.graylist: must be"));
  EXPECT_THAT(error_of(base_config("", "scoring: {penalties: {overrate: 1}}\n")),
              HasSubstr("scoring.penalties.overrate: unknown key (expected one of: over_rate, port_denied"));
  EXPECT_THAT(error_of(base_config("", "evidence: {snaplen: 9000}\n")), HasSubstr("evidence.snaplen: must be"));
  EXPECT_THAT(error_of(base_config("", "operator: {node_id: abc}\n")),
              HasSubstr("operator.node_id: must be 64 hex characters"));
  EXPECT_THAT(error_of(base_config("", "operator: {role: validator}\n")), HasSubstr("operator.role: unknown role"));
  Config o = parse_config(base_config("", "operator: {name: Op, node_id: \"" + std::string(64, 'A') + "\"}\n"), "x.yaml");
  EXPECT_EQ(o.operator_info.node_id, std::string(64, 'a'));
}

// Fuzz finding (tests/fuzz/regressions/config): a key that is a list or mapping threw
// yaml-cpp's BadConversion, which aborted check-config.
TEST(Config, KeysThatAreNotPlainNamesAreRefused) {
  EXPECT_THAT(error_of(replace(base_config(), "capacity: {pps: 100000}", "capacity: {pps: 100000, [a, b]: 1}")),
              HasSubstr("config/x.yaml: capacity: keys must be plain names"));
  EXPECT_THAT(error_of("{a: 1}: 2\n"), HasSubstr("config/x.yaml: keys must be plain names"));
}

// The control section's keys are each optional: reading `socket: null` and `metrics: null`
// (turned off) once threw yaml-cpp's InvalidNode when the key was absent, so a control
// section without `metrics` was refused as "not a valid config".
TEST(Config, ControlKeysAreEachOptional) {
  Config c = parse_config(base_config("", "control: {socket: /run/x.sock}\n"), "x.yaml");
  EXPECT_EQ(c.control.socket, "/run/x.sock");
  EXPECT_EQ(c.control.metrics, "127.0.0.1:9469");  // the default
  c = parse_config(base_config("", "control: {metrics: \"127.0.0.1:9100\"}\n"), "x.yaml");
  EXPECT_EQ(c.control.socket, "/run/stakegate/control.sock");
  EXPECT_EQ(c.control.metrics, "127.0.0.1:9100");
  c = parse_config(base_config("", "control: {socket: null, metrics: ~}\n"), "x.yaml");
  EXPECT_EQ(c.control.socket, "");
  EXPECT_EQ(c.control.metrics, "");
  c = parse_config(base_config("", "control: {max_connections: 8}\n"), "x.yaml");
  EXPECT_EQ(c.control.socket, "/run/stakegate/control.sock");
  EXPECT_EQ(c.control.metrics, "127.0.0.1:9469");
}

// A Unix socket's path must fit sockaddr_un: a longer one passed check-config and then
// failed run's bind with only "File name too long", after the ports had started.
TEST(Config, UnixSocketPathsFitSockaddrUn) {
  const std::string fits = "/run/" + std::string(95, 'x') + "/c.sock";  // 107 bytes
  ASSERT_EQ(fits.size(), 107u);
  EXPECT_EQ(parse_config(base_config("", "control: {socket: " + fits + "}\n"), "x.yaml").control.socket, fits);
  const std::string longer = "/run/" + std::string(96, 'x') + "/c.sock";
  EXPECT_THAT(error_of(base_config("", "control: {socket: " + longer + "}\n")),
              HasSubstr("config/x.yaml: control.socket: 108 bytes long: a Unix socket's path may have at most 107"));
  EXPECT_THAT(error_of(base_config("", "control: {readonly_socket: " + longer + "}\n")),
              HasSubstr("control.readonly_socket: 108 bytes long"));
}

// Text from the config reaches report.json, flip.md and API answers, which are UTF-8:
// a Latin-1 operator name once passed check-config and then ended the gateway when the
// first evidence case was written (nlohmann::json refuses to dump it).
TEST(Config, TextThatIsNotUtf8IsRefusedWithItsKey) {
  EXPECT_THAT(error_of(base_config("", "operator: {name: \"Op\xe9rateur\"}\n")),
              HasSubstr("config/x.yaml: operator.name: the value is not valid UTF-8 (byte 0xe9 at position 3)"));
  EXPECT_THAT(error_of(base_config("", "blocklist: [{cidr: 198.19.0.0/16, reason: \"ok\xc0\xafno\"}]\n")),
              HasSubstr("blocklist[0].reason: the value is not valid UTF-8 (byte 0xc0 at position 3)"));
  std::string e = error_of(base_config("", "scoring: {\"gray\xfflist\": -40}\n"));
  EXPECT_THAT(e, HasSubstr("config/x.yaml: scoring: a key is not valid UTF-8 (byte 0xff at position 5)"));
  EXPECT_EQ(e.find('\xff'), std::string::npos);  // the message itself stays UTF-8
  // Valid UTF-8 beyond ASCII is text like any other.
  Config c = parse_config(base_config("", "operator: {name: \"Opérateur ノード 🚀\"}\n"), "x.yaml");
  EXPECT_EQ(c.operator_info.name, "Opérateur ノード 🚀");
}

// The UTF-8 walk covers every node, so aliases must not make it loop or explode: a list
// that contains itself crashed it (stack overflow) and nested aliases took exponential time.
TEST(Config, AliasesAreWalkedOnce) {
  EXPECT_THAT(error_of("a: &x [*x]\n"), HasSubstr("config/x.yaml: a: unknown key"));
  EXPECT_THAT(error_of("a: &x {b: *x}\n"), HasSubstr("config/x.yaml: a: unknown key"));
  std::string bomb = "x0: &a0 [lol]\n";
  for (int i = 1; i < 30; ++i) {
    bomb.append("x").append(std::to_string(i)).append(": &a").append(std::to_string(i)).append(" [");
    for (int k = 0; k < 9; ++k) bomb.append(k ? ",*a" : "*a").append(std::to_string(i - 1));
    bomb += "]\n";
  }
  EXPECT_THAT(error_of(bomb), HasSubstr("config/x.yaml: x0: unknown key"));  // 9^29 if walked per alias
  // A bad byte behind an alias is still found, at the anchor's place.
  EXPECT_THAT(error_of(base_config("", "operator: {name: &n \"Op\xe9\", contact: *n}\n")),
              HasSubstr("operator.name: the value is not valid UTF-8"));
}

// The validator behind the refusal above (base/utf8.h): RFC 3629's well-formed sequences.
TEST(Utf8, FirstInvalidByte) {
  using namespace std::string_view_literals;
  for (auto ok : {""sv, "plain"sv, "\xc2\x80"sv, "\xdf\xbf"sv, "\xe0\xa0\x80"sv, "\xef\xbf\xbd"sv, "\xed\x9f\xbf"sv,
                  "\xee\x80\x80"sv, "\xf0\x90\x80\x80"sv, "\xf4\x8f\xbf\xbf"sv, "a\0b"sv})
    EXPECT_EQ(invalid_utf8_at(ok), std::nullopt) << ::testing::PrintToString(ok);
  const std::pair<std::string_view, size_t> bad[] = {
      {"\x80", 0},                 // a continuation byte first
      {"ab\xbf", 2},
      {"\xc0\x80", 0},             // overlong NUL
      {"\xc1\xbf", 0},             // overlong
      {"\xe0\x80\x80", 0},         // overlong
      {"\xe0\x9f\xbf", 0},         // overlong
      {"\xed\xa0\x80", 0},         // a surrogate
      {"\xf0\x8f\xbf\xbf", 0},     // overlong
      {"\xf4\x90\x80\x80", 0},     // above U+10FFFF
      {"\xf5\x80\x80\x80", 0},
      {"\xff", 0},
      {"x\xe2\x82", 1},            // cut short at the end
      {"\xe2\x28\xa1", 0},         // a third byte that is not a continuation
      {"ok\xf0\x90\x80", 2},
      {"\xc3\xa9\xe9", 2},         // é, then Latin-1 é
  };
  for (const auto& [s, at] : bad) EXPECT_EQ(invalid_utf8_at(s), at) << ::testing::PrintToString(s);
}
