// The name cache behind identity host names: answers kept for their TTL (clamped), a
// failing name keeping its last known addresses, persistence across a restart, census.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <sstream>

#include "stakegate/identity/resolve.h"
#include "test_util.h"

using namespace stakegate;
using ::testing::HasSubstr;

namespace {
DnsAnswer ok(std::initializer_list<const char*> ips, uint32_t ttl) {
  DnsAnswer a;
  a.ok = true;
  for (const char* s : ips) a.ips.push_back(*parse_ip(s));
  a.ttl_s = ttl;
  return a;
}
DnsAnswer failed(const char* why) {
  DnsAnswer a;
  a.error = why;
  return a;
}
std::string slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}
}  // namespace

TEST(DnsServer, AcceptsAddressesAndPorts) {
  EXPECT_EQ(parse_dns_server("198.18.0.53"), "198.18.0.53");
  EXPECT_EQ(parse_dns_server("127.0.0.1:5353"), "127.0.0.1:5353");
  EXPECT_EQ(parse_dns_server("2001:db8::53"), "[2001:db8::53]");
  EXPECT_EQ(parse_dns_server("[2001:db8::53]:5353"), "[2001:db8::53]:5353");
  for (const char* bad : {"", "resolver.example", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:70000", "[2001:db8::53",
                          "[198.18.0.1]:53", "[2001:db8::53]:x"})
    EXPECT_FALSE(parse_dns_server(bad)) << bad;
}

TEST(NameCache, AnAnswerIsUsedForItsTtlWithinTheBounds) {
  NameCache c;
  DnsConfig d;
  d.min_refresh_s = 5;
  d.refresh_s = 300;
  c.record({{"a.test", ok({"198.18.0.1"}, 60)}, {"zero.test", ok({"198.18.0.2"}, 0)}, {"long.test", ok({"198.18.0.3"}, 86400)}},
           d, 1000, 1000);
  EXPECT_EQ(c.get("a.test")->due_at, 1060);
  EXPECT_EQ(c.get("zero.test")->due_at, 1005);  // a TTL of 0 must not hammer the resolver
  EXPECT_EQ(c.get("long.test")->due_at, 1300);  // nor a long one hide a move for a day
  const std::vector<std::string> all{"a.test", "zero.test", "long.test", "new.test"};
  EXPECT_EQ(c.due(all, 1004), std::vector<std::string>{"new.test"});
  EXPECT_EQ(c.due(all, 1060), (std::vector<std::string>{"a.test", "zero.test", "new.test"}));
}

// The wall clock can step (NTP correcting a clock that was ahead at boot) while the
// steady one cannot: a name is due again after its TTL on the steady clock, whatever
// the wall clock did meanwhile. (By the wall clock, a step back of a year stopped every
// lookup for a year, and the nodes' addresses with them.)
TEST(NameCache, ANameIsDueAfterItsTtlWhateverTheWallClockDid) {
  NameCache c;
  DnsConfig d;
  d.min_refresh_s = 5;
  d.refresh_s = 300;
  const int64_t year = 365 * 86400;
  c.record({{"a.test", ok({"198.18.0.1"}, 60)}}, d, 2 * year, 500);
  EXPECT_EQ(c.get("a.test")->resolved_at, 2 * year);  // shown as a date
  EXPECT_EQ(c.due({"a.test"}, 559), std::vector<std::string>{});
  EXPECT_EQ(c.due({"a.test"}, 560), std::vector<std::string>{"a.test"});
  d.retry_s = 30;
  c.record({{"a.test", failed("timeout")}}, d, year, 560);  // the wall clock went back a year
  EXPECT_EQ(c.due({"a.test"}, 590), std::vector<std::string>{"a.test"});
}

TEST(NameCache, AFailingNameKeepsItsLastAddresses) {
  NameCache c;
  DnsConfig d;
  d.retry_s = 30;
  c.record({{"a.test", ok({"198.18.0.1", "2001:db8::1"}, 60)}}, d, 1000, 1000);
  c.record({{"a.test", failed("the name does not exist (NXDOMAIN)")}, {"b.test", failed("timeout")}}, d, 1100, 1100);
  auto a = c.get("a.test");
  ASSERT_TRUE(a);
  EXPECT_TRUE(a->failing);
  EXPECT_EQ(a->ips.size(), 2u);
  EXPECT_EQ(a->resolved_at, 1000);
  EXPECT_EQ(a->due_at, 1130);
  EXPECT_TRUE(c.get("b.test")->ips.empty());
  auto census = c.census({"a.test", "b.test", "c.test"});
  EXPECT_EQ(census.resolved, 0u);
  EXPECT_EQ(census.stale, 1u);
  EXPECT_EQ(census.unresolved, 2u);
  EXPECT_EQ(c.failures(), 2u);
  c.record({{"a.test", ok({"198.18.0.9"}, 60)}}, d, 1200, 1200);  // moved
  EXPECT_FALSE(c.get("a.test")->failing);
  EXPECT_EQ(c.get("a.test")->ips, std::vector<IpAddr>{*parse_ip("198.18.0.9")});
  EXPECT_EQ(c.census({"a.test"}).resolved, 1u);
}

TEST(NameCache, TheLastAddressesSurviveARestart) {
  stakegate::testing::TempDir dir;
  DnsConfig d;
  {
    NameCache before;
    EXPECT_EQ(before.use_state_dir(dir.path()), "");
    before.persist(true);
    before.record({{"a.test", ok({"198.18.0.1"}, 60)}, {"gone.test", failed("NXDOMAIN")}}, d, 1000, 7);
  }
  EXPECT_THAT(slurp(dir.path() + "/dns.json"), HasSubstr("198.18.0.1"));
  NameCache after;
  EXPECT_EQ(after.use_state_dir(dir.path()), "");
  auto a = after.get("a.test");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->ips, std::vector<IpAddr>{*parse_ip("198.18.0.1")});
  EXPECT_EQ(a->resolved_at, 1000);
  EXPECT_EQ(after.due({"a.test"}, 0).size(), 1u);  // looked up again at once
  EXPECT_FALSE(after.get("gone.test"));

  // With DNS down after the restart, a table still gets the address, with a warning.
  after.record({{"a.test", failed("no answer within identity.dns.timeout_s")}}, d, 2000, 9);
  std::vector<NodeIdentity> nodes(1);
  nodes[0].node_id = std::string(64, 'a');
  nodes[0].role = Role::kConsensus;
  nodes[0].host = "a.test";
  std::vector<std::string> warnings;
  resolve_identities(nodes, {}, DnsConfig{}, "t.json", &warnings, false, &after);
  EXPECT_EQ(nodes[0].ips, std::vector<IpAddr>{*parse_ip("198.18.0.1")});
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_THAT(warnings[0], HasSubstr("host 'a.test' does not resolve now (no answer within identity.dns.timeout_s); "
                                     "keeping its last known addresses 198.18.0.1 (resolved 1970-01-01T00:16:40.000Z)"));
}

TEST(NameCache, ADamagedFileIsIgnoredWithAWarning) {
  stakegate::testing::TempDir dir;
  dir.file("dns.json", "{\"names\": [1, 2");
  NameCache c;
  EXPECT_THAT(c.use_state_dir(dir.path()), HasSubstr("dns.json: ignored, it is damaged"));
  EXPECT_FALSE(c.get("a.test"));
}

TEST(NameCache, PinnedAndLiteralHostsAreNotLookedUp) {
  std::vector<NodeIdentity> nodes(3);
  nodes[0].host = "198.18.0.1";
  nodes[1].host = "pinned.test";
  nodes[2].host = "dns.test";
  std::map<std::string, IpAddr> hosts{{"pinned.test", *parse_ip("198.18.0.2")}};
  EXPECT_EQ(dns_names(nodes, hosts), std::vector<std::string>{"dns.test"});
}

// A resolver that does not answer fails every name, within the deadline, without throwing.
TEST(DnsLookup, AnUnreachableResolverFailsEachNameWithinTheDeadline) {
  DnsConfig d;
  d.servers = {"127.0.0.1:9"};  // nothing listens: refused at once
  d.timeout_s = 2;
  const auto t0 = std::chrono::steady_clock::now();
  auto answers = dns_lookup({"a.test", "b.test"}, d);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(2500));
  ASSERT_EQ(answers.size(), 2u);
  for (const auto& [name, a] : answers) {
    EXPECT_FALSE(a.ok) << name;
    EXPECT_FALSE(a.error.empty()) << name;
  }
}
