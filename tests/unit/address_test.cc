#include <gtest/gtest.h>

#include "stakegate/base/address.h"

using namespace stakegate;

TEST(Address, ParsesCidrs) {
  auto c = parse_cidr("198.51.100.0/24");
  ASSERT_TRUE(c);
  EXPECT_TRUE(c->contains(*parse_ip("198.51.100.77")));
  EXPECT_FALSE(c->contains(*parse_ip("198.51.101.1")));
  EXPECT_FALSE(c->contains(*parse_ip("2001:2::1")));
  auto h = parse_cidr("2001:2::5");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->prefix_len, 128);
  auto z = parse_cidr("0.0.0.0/0");
  ASSERT_TRUE(z);
  EXPECT_TRUE(z->contains(*parse_ip("203.0.113.9")));
}

TEST(Address, RefusesBadCidrs) {
  std::string why;
  EXPECT_FALSE(parse_cidr("198.51.100.0/33", &why));
  EXPECT_EQ(why, "prefix length must be 0..32");
  EXPECT_FALSE(parse_cidr("198.51.100.1/24", &why));
  EXPECT_EQ(why, "address has bits set beyond the prefix length");
  EXPECT_FALSE(parse_cidr("198.51.100/24", &why));
  EXPECT_FALSE(parse_cidr("2001:2::/129", &why));
  EXPECT_FALSE(parse_cidr("10.0.0.0/x", &why));
  EXPECT_FALSE(parse_cidr("", &why));
}

// Packets carry an IPv4 address as IPv4, never as ::ffff:a.b.c.d: written that way in a
// config or an identity table, it is the IPv4 address (or prefix), or it would match none.
TEST(Address, IPv4MappedAddressesAreIPv4) {
  auto a = parse_ip("::ffff:198.51.100.7");
  ASSERT_TRUE(a);
  EXPECT_TRUE(a->is_v4);
  EXPECT_EQ(*a, *parse_ip("198.51.100.7"));
  EXPECT_EQ(*parse_ip("[::FFFF:c633:6407]"), *parse_ip("198.51.100.7"));
  EXPECT_FALSE(parse_ip("::fffe:198.51.100.7")->is_v4);  // not mapped
  EXPECT_FALSE(parse_ip("::198.51.100.7")->is_v4);       // IPv4-compatible (deprecated): an IPv6 address
  auto c = parse_cidr("::ffff:198.51.100.0/120");
  ASSERT_TRUE(c);
  EXPECT_TRUE(c->base.is_v4);
  EXPECT_EQ(c->prefix_len, 24);
  EXPECT_TRUE(c->contains(*parse_ip("198.51.100.77")));
  EXPECT_EQ(parse_cidr("::ffff:198.51.100.7")->prefix_len, 32);
  std::string why;
  EXPECT_FALSE(parse_cidr("::ffff:0.0.0.0/95", &why));
  EXPECT_EQ(why, "an IPv4-mapped prefix (::ffff:a.b.c.d) must be /96 or longer: it stands for IPv4 addresses");
  EXPECT_FALSE(parse_cidr("::ffff:198.51.100.0/129", &why));
  EXPECT_FALSE(parse_cidr("::ffff:198.51.100.1/120", &why));
  EXPECT_EQ(why, "address has bits set beyond the prefix length");
}

TEST(Address, SplitsHostPort) {
  std::string h;
  uint16_t p = 0;
  EXPECT_TRUE(split_host_port("consensus-001.example.net:3569", h, p));
  EXPECT_EQ(h, "consensus-001.example.net");
  EXPECT_EQ(p, 3569);
  EXPECT_TRUE(split_host_port("[2001:2::1]:9000", h, p));
  EXPECT_EQ(h, "2001:2::1");
  EXPECT_FALSE(split_host_port("2001:2::1:9000", h, p));  // bare IPv6 is ambiguous
  EXPECT_FALSE(split_host_port("host", h, p));
  EXPECT_FALSE(split_host_port("host:0", h, p));
  EXPECT_FALSE(split_host_port("host:65536", h, p));
  EXPECT_FALSE(split_host_port(":3569", h, p));
}

// Blocks that would cut the cluster off: every source of a family, or link-local IPv6
// ranges (the router's neighbour discovery). Anything narrower, or one link-local address,
// is the operator's call.
TEST(Address, RefusesBlocksThatCutTheClusterOff) {
  auto refusal = [](const char* text) { return block_refusal(*parse_cidr(text)); };
  EXPECT_NE(refusal("0.0.0.0/0").find("a /0 blocks every IPv4 source"), std::string::npos);
  EXPECT_NE(refusal("::/0").find("a /0 blocks every IPv6 source"), std::string::npos);
  for (const char* covering : {"fe80::/10", "fe80::/64", "fe80::/127", "fe80:1::/32", "febf:ffff::/32", "8000::/1", "fe00::/7"})
    EXPECT_NE(refusal(covering).find("link-local addresses (fe80::/10)"), std::string::npos) << covering;
  for (const char* fine : {"0.0.0.0/1", "128.0.0.0/1", "198.51.100.0/24", "203.0.113.7", "2001:db8::/32", "::/1",
                           "fe80::1", "fec0::/10", "fe40::/10", "2000::/3"})
    EXPECT_EQ(refusal(fine), "") << fine;
}
