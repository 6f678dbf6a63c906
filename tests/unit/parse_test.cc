// Golden table: (frame, expected parse) pairs built with the packet builder, plus
// truncation of every prefix of valid frames (no read past the end, no crash).
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <random>
#include <tuple>

#include "packet_builder.h"
#include "stakegate/net/parse.h"

using namespace stakegate;
using stakegate::testing::build_frame;
using stakegate::testing::FrameSpec;

namespace {

IpAddr v6(const char* s) { return *parse_ip(s); }
IpAddr v6_addr(const char* s) { return *parse_ip(s); }

struct Case {
  const char* name;
  std::vector<uint8_t> frame;
  L3Kind kind;
  bool has_port;
  uint16_t port;
  bool non_first_fragment = false;
};

FrameSpec spec(auto&& mutate) {
  FrameSpec f;
  mutate(f);
  return f;
}

std::vector<uint8_t> patched(FrameSpec f, size_t at, uint8_t value) {
  auto b = build_frame(f);
  b.at(at) = value;
  return b;
}

std::vector<uint8_t> cut(FrameSpec f, size_t len) {
  auto b = build_frame(f);
  b.resize(len);
  return b;
}

std::vector<Case> cases() {
  const auto ipv6 = [](FrameSpec& f) { f.src = v6("2001:2::1"); f.dst = v6("2001:2::2"); };
  return {
      {"ipv4 tcp", build_frame({}), L3Kind::kIpv4, true, 3569},
      {"ipv4 udp", build_frame(spec([](FrameSpec& f) { f.proto = 17; f.dst_port = 9000; })), L3Kind::kIpv4, true, 9000},
      {"ipv4 icmp has no port", build_frame(spec([](FrameSpec& f) { f.proto = 1; })), L3Kind::kIpv4, false, 0},
      {"ipv4 options", build_frame(spec([](FrameSpec& f) { f.ipv4_options = {1, 1, 1, 1, 7, 7, 4, 0}; f.dst_port = 8000; })),
       L3Kind::kIpv4, true, 8000},
      {"802.1Q", build_frame(spec([](FrameSpec& f) { f.vlans = {100}; })), L3Kind::kIpv4, true, 3569},
      {"QinQ", build_frame(spec([](FrameSpec& f) { f.vlans = {200, 100}; f.dst_port = 9001; })), L3Kind::kIpv4, true, 9001},
      {"five tags", build_frame(spec([](FrameSpec& f) { f.vlans = {1, 2, 3, 4, 5}; })), L3Kind::kMalformed, false, 0},
      {"ipv6 tcp", build_frame(spec(ipv6)), L3Kind::kIpv6, true, 3569},
      {"ipv6 hop-by-hop + dstopts", build_frame(spec([&](FrameSpec& f) {
         ipv6(f);
         f.ipv6_ext = {{0, {0, 0, 1, 4, 0, 0, 0, 0}}, {60, {0, 1, 1, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}}};
         f.dst_port = 9000;
       })), L3Kind::kIpv6, true, 9000},
      {"ipv6 first fragment", build_frame(spec([&](FrameSpec& f) { ipv6(f); f.more_fragments = true; })),
       L3Kind::kIpv6, true, 3569},
      {"ipv6 later fragment", build_frame(spec([&](FrameSpec& f) { ipv6(f); f.frag_offset = 100; })),
       L3Kind::kIpv6, false, 0, true},
      {"ipv6 ext header past frame", build_frame(spec([&](FrameSpec& f) {
         ipv6(f);
         f.ipv6_ext = {{0, {0, 200, 0, 0, 0, 0, 0, 0}}};
       })), L3Kind::kMalformed, false, 0},
      {"ipv4 later fragment", build_frame(spec([](FrameSpec& f) { f.frag_offset = 185; })), L3Kind::kIpv4, false, 0, true},
      {"ipv4 tiny first fragment", cut(spec([](FrameSpec& f) { f.more_fragments = true; f.frame_size = 0; }), 14 + 20 + 8),
       L3Kind::kMalformed, false, 0},
      {"arp", stakegate::testing::build_arp(IpAddr::from_v4(1), IpAddr::from_v4(2)), L3Kind::kNonIp, false, 0},
      {"lldp", stakegate::testing::build_lldp(), L3Kind::kNonIp, false, 0},
      {"runt 13 bytes", cut({}, 13), L3Kind::kMalformed, false, 0},
      {"vlan tag cut", cut(spec([](FrameSpec& f) { f.vlans = {7}; }), 16), L3Kind::kMalformed, false, 0},
      {"ipv4 version 5", patched({}, 14, 0x55), L3Kind::kMalformed, false, 0},
      {"ipv4 ihl 4", patched({}, 14, 0x44), L3Kind::kMalformed, false, 0},
      {"ipv4 ihl beyond total length", patched({}, 14, 0x4f), L3Kind::kMalformed, false, 0},
      {"ipv4 total length beyond frame", patched({}, 16, 0x40), L3Kind::kMalformed, false, 0},
      {"ipv4 total length below header", patched({}, 17, 10), L3Kind::kMalformed, false, 0},
      {"tcp data offset 4", patched({}, 14 + 20 + 12, 0x40), L3Kind::kMalformed, false, 0},
      {"tcp data offset beyond packet", patched({}, 14 + 20 + 12, 0xf0), L3Kind::kMalformed, false, 0},
      {"ipv6 version 4", patched(spec(ipv6), 14, 0x40), L3Kind::kMalformed, false, 0},
      {"ipv6 payload length beyond frame", patched(spec(ipv6), 18, 0x40), L3Kind::kMalformed, false, 0},
  };
}

}  // namespace

TEST(Parse, GoldenTable) {
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.name);
    PacketMeta m;
    parse_frame(c.frame.data(), static_cast<uint32_t>(c.frame.size()), m);
    EXPECT_EQ(m.kind, c.kind);
    EXPECT_EQ(m.has_port, c.has_port);
    if (c.has_port) {
      EXPECT_EQ(m.dst_port, c.port);
    }
    EXPECT_EQ(m.non_first_fragment, c.non_first_fragment);
  }
}

TEST(Parse, ReadsSourceAddresses) {
  PacketMeta m;
  auto b4 = build_frame(spec([](FrameSpec& f) { f.src = *parse_ip("198.18.7.9"); }));
  parse_frame(b4.data(), static_cast<uint32_t>(b4.size()), m);
  EXPECT_EQ(IpAddr::from_v4(m.src_v4), *parse_ip("198.18.7.9"));
  auto b6 = build_frame(spec([](FrameSpec& f) { f.src = *parse_ip("2001:2::abcd"); f.dst = f.src; f.vlans = {5, 6}; }));
  parse_frame(b6.data(), static_cast<uint32_t>(b6.size()), m);
  EXPECT_EQ(IpAddr::from_v6(m.src_v6), *parse_ip("2001:2::abcd"));
}

// Every truncation of every valid frame parses without reading past its end (ASan
// checks the reads: the bytes are copied into an exactly-sized heap buffer) and never
// yields a port the truncated frame does not hold.
TEST(Parse, EveryTruncationIsSafe) {
  for (const Case& c : cases()) {
    for (size_t len = 0; len <= c.frame.size(); ++len) {
      std::unique_ptr<uint8_t[]> buf(new uint8_t[len ? len : 1]);
      std::memcpy(buf.get(), c.frame.data(), len);
      PacketMeta m;
      parse_frame(buf.get(), static_cast<uint32_t>(len), m);
      if (len < 14) {
        EXPECT_EQ(m.kind, L3Kind::kMalformed) << c.name << " len " << len;
      }
    }
  }
}

// A frame in chained buffers: parsed from its first buffer alone (never read past it), its
// lengths checked against the whole, and l4_len the whole IP payload; a frame whose headers
// do not fit in the first buffer is malformed.
TEST(Parse, ChainedFramesUseTheFirstBufferAndTheWholeLength) {
  for (const Case& c : cases()) {
    if (c.kind == L3Kind::kMalformed || c.kind == L3Kind::kNonIp) continue;
    PacketMeta whole;
    parse_frame(c.frame.data(), static_cast<uint32_t>(c.frame.size()), whole);
    for (size_t first = 0; first <= c.frame.size(); ++first) {
      std::unique_ptr<uint8_t[]> buf(new uint8_t[first ? first : 1]);
      std::memcpy(buf.get(), c.frame.data(), first);
      PacketMeta m;
      parse_segmented_frame(buf.get(), static_cast<uint32_t>(first), static_cast<uint32_t>(c.frame.size()), m);
      if (m.kind == L3Kind::kMalformed) continue;  // headers beyond `first`
      EXPECT_EQ(m.kind, whole.kind) << c.name << " first " << first;
      EXPECT_EQ(m.has_port, whole.has_port) << c.name << " first " << first;
      EXPECT_EQ(m.dst_port, whole.dst_port) << c.name << " first " << first;
      EXPECT_EQ(m.l4_len, whole.l4_len) << c.name << " first " << first;
      EXPECT_EQ(m.tcp_seq, whole.tcp_seq) << c.name << " first " << first;
    }
  }
  // Long frames: headers in a first buffer of 128 bytes, the rest elsewhere.
  for (bool v6 : {false, true}) {
    FrameSpec f;
    if (v6) {
      f.src = v6_addr("2001:2::1");
      f.dst = v6_addr("2001:2::2");
    }
    f.frame_size = 9000;
    const auto b = build_frame(f);
    const uint32_t l3 = v6 ? 40 : 20;
    PacketMeta m;
    parse_segmented_frame(b.data(), 128, 9000, m);
    EXPECT_EQ(m.kind, v6 ? L3Kind::kIpv6 : L3Kind::kIpv4);
    EXPECT_EQ(m.l4_len, 9000 - 14 - l3);
    EXPECT_EQ(m.dst_port, 3569);
    parse_captured_frame(b.data(), 128, 9000, m);  // a sample cut at 128 bytes: what it holds
    EXPECT_EQ(m.l4_len, 128 - 14 - l3);
    parse_segmented_frame(b.data(), 40, 9000, m);  // the TCP header is not in the first buffer
    EXPECT_EQ(m.kind, L3Kind::kMalformed);
    parse_segmented_frame(b.data(), 128, 8000, m);  // the IP length says more than the frame holds
    EXPECT_EQ(m.kind, L3Kind::kMalformed);
  }
}

TEST(Parse, RandomBytesNeverCrash) {
  std::mt19937 rng(42);
  std::vector<uint8_t> b(128);
  int ip = 0;
  for (int i = 0; i < 200000; ++i) {
    size_t len = rng() % b.size();
    for (auto& x : b) x = static_cast<uint8_t>(rng());
    b[12] = i % 3 == 0 ? 0x08 : i % 3 == 1 ? 0x86 : 0x81;
    b[13] = i % 3 == 0 ? 0x00 : i % 3 == 1 ? 0xdd : 0x00;
    std::unique_ptr<uint8_t[]> buf(new uint8_t[len ? len : 1]);
    std::memcpy(buf.get(), b.data(), len);
    PacketMeta m;
    parse_frame(buf.get(), static_cast<uint32_t>(len), m);
    ip += m.kind == L3Kind::kIpv4 || m.kind == L3Kind::kIpv6;
  }
  EXPECT_GT(ip, 0);  // some random frames are valid IP: the loop did reach the deep paths
}

namespace {

// A frame for the fast parser's test: a valid IPv4 TCP segment or UDP datagram of every
// shape it must refuse (VLAN tag, IP options, fragments, another protocol, IPv6), then,
// for odd `i`, a few random bytes changed (so every check it makes is crossed, both
// ways), and now and then cut short.
std::vector<uint8_t> fast_parse_case(std::mt19937_64& rng, int i, uint8_t flags, uint8_t proto) {
  FrameSpec f;
  f.src = IpAddr::from_v4(static_cast<uint32_t>(rng()));
  f.dst = IpAddr::from_v4(static_cast<uint32_t>(rng()));
  f.src_port = static_cast<uint16_t>(rng());
  f.dst_port = static_cast<uint16_t>(rng());
  f.seq = static_cast<uint32_t>(rng());
  f.ack = static_cast<uint32_t>(rng());
  f.window = static_cast<uint16_t>(rng());
  f.tcp_flags = flags;
  f.proto = proto;
  const unsigned shape = rng() % 12;
  if (shape == 0) f.vlans = {100};
  if (shape == 1) f.ipv4_options = {1, 1, 1, 0};
  if (shape == 2) f.more_fragments = true;
  if (shape == 3) f.frag_offset = 3;
  if (shape == 4) f.proto = proto == 6 ? 17 : 1;
  if (shape == 5) f.src = v6("2001:db8::1"), f.dst = v6("2001:db8::2");
  if (rng() % 2) f.payload.assign(rng() % 40, 0x5a);
  f.frame_size = rng() % 2 ? 64 : static_cast<uint32_t>(42 + rng() % 100);
  auto b = build_frame(f);
  if (i % 2 == 1)
    for (int k = 1 + static_cast<int>(rng() % 3); k > 0; --k) b[rng() % std::min<size_t>(b.size(), 60)] = static_cast<uint8_t>(rng());
  if (rng() % 8 == 0) b.resize(rng() % (b.size() + 1));
  return b;
}

// Untagged Ethernet, IPv4 without options, not a fragment: what the fast parser requires.
bool plain_ipv4(const std::vector<uint8_t>& b, const PacketMeta& m) {
  return m.kind == L3Kind::kIpv4 && m.has_port && b[12] == 0x08 && b[13] == 0x00 && b[14] == 0x45 && !m.first_fragment;
}

}  // namespace

// parse_l4v4 (the fast paths' parser) takes exactly the frames it should (TCP without SYN
// and UDP), and where it takes one, it reads what parse_frame reads, TCP's sequence
// length as tcp_seq_len gives it.
TEST(Parse, FastL4v4AgreesWithParseFrame) {
  std::mt19937_64 rng(11);
  size_t taken = 0, refused = 0;
  for (int i = 0; i < 200000; ++i) {
    const auto frame = fast_parse_case(rng, i, static_cast<uint8_t>(rng()), rng() % 3 == 0 ? kProtoUdp : kProtoTcp);
    // In a buffer of exactly its size, so that ASan sees any read past it (a cut vector
    // keeps its capacity).
    const auto copy = std::make_unique<uint8_t[]>(frame.size());
    std::memcpy(copy.get(), frame.data(), frame.size());
    const uint8_t* d = copy.get();
    const auto len = static_cast<uint32_t>(frame.size());
    const std::vector<uint8_t>& b = frame;
    L4v4 t;
    PacketMeta m;
    parse_frame(d, len, m);
    const bool fast = parse_l4v4(d, len, t);
    const bool should = plain_ipv4(b, m) && (m.l4_proto == kProtoUdp || !(m.tcp_flags & kTcpSyn));
    ASSERT_EQ(fast, should) << "frame " << i;
    L4v4 tcp;
    ASSERT_EQ(parse_l4v4<true>(d, len, tcp), should && m.l4_proto == kProtoTcp)
        << "frame " << i << ", TCP only";
    if (!fast) {
      ++refused;
      continue;
    }
    ++taken;
    EXPECT_EQ(t.proto, m.l4_proto);
    EXPECT_EQ(t.src, m.src_v4);
    EXPECT_EQ(t.dst, m.dst_v4);
    EXPECT_EQ(t.sport, m.src_port);
    EXPECT_EQ(t.dport, m.dst_port);
    if (t.proto == kProtoTcp) {
      EXPECT_EQ(t.seq, m.tcp_seq);
      EXPECT_EQ(t.ack, m.tcp_ack);
      EXPECT_EQ(t.win, m.tcp_win);
      EXPECT_EQ(t.flags, m.tcp_flags);
      EXPECT_EQ(t.seq_len, tcp_seq_len(m));
      // The outside's form reads the same fields (all but seq_len, which it does not need).
      EXPECT_EQ(std::tie(tcp.src, tcp.dst, tcp.sport, tcp.dport, tcp.seq, tcp.ack, tcp.win, tcp.flags, tcp.proto),
                std::tie(t.src, t.dst, t.sport, t.dport, t.seq, t.ack, t.win, t.flags, t.proto));
    }
  }
  EXPECT_GT(taken, 50000u);
  EXPECT_GT(refused, 50000u);
  // Every cut of a TCP segment, each in a buffer of its own size (the fuzzer's finding: a
  // 48-byte frame whose IP length claimed a TCP header it did not hold).
  FrameSpec f;
  f.frame_size = 0;
  const auto whole = build_frame(f);
  for (size_t cut = 0; cut <= whole.size(); ++cut) {
    const auto copy = std::make_unique<uint8_t[]>(cut);
    std::memcpy(copy.get(), whole.data(), cut);
    if (cut >= 18) copy[16] = 0, copy[17] = static_cast<uint8_t>(cut - 14);  // its IP length fits the cut
    L4v4 t;
    EXPECT_EQ(parse_l4v4<true>(copy.get(), static_cast<uint32_t>(cut), t), cut == whole.size()) << cut;
  }
}

TEST(ParseArp4, ReadsIpv4OverEthernetOnlyWhole) {
  auto f = stakegate::testing::build_arp(*parse_ip("198.18.0.1"), *parse_ip("198.18.0.2"), 2);
  PacketMeta m;
  parse_frame(f.data(), static_cast<uint32_t>(f.size()), m);
  Arp4 a{};
  ASSERT_TRUE(parse_arp4(f.data(), static_cast<uint32_t>(f.size()), m, a));
  EXPECT_EQ(a.op, 2);
  EXPECT_EQ(a.sender, parse_ip("198.18.0.1")->v4);
  EXPECT_EQ(a.target, parse_ip("198.18.0.2")->v4);
  EXPECT_FALSE(parse_arp4(f.data(), 14 + 27, m, a));  // cut inside the target address
  auto other = f;
  other[19] = 16;  // 16-byte protocol addresses: not IPv4
  EXPECT_FALSE(parse_arp4(other.data(), static_cast<uint32_t>(other.size()), m, a));
  other = f;
  other[14] = 0x00, other[15] = 0x20;  // hardware type 32 (InfiniBand)
  EXPECT_FALSE(parse_arp4(other.data(), static_cast<uint32_t>(other.size()), m, a));
  auto lldp = stakegate::testing::build_lldp();
  parse_frame(lldp.data(), static_cast<uint32_t>(lldp.size()), m);
  EXPECT_FALSE(parse_arp4(lldp.data(), static_cast<uint32_t>(lldp.size()), m, a));
}
