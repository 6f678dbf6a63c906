// Sessions the cluster opens or accepts, through the real worker with injected time:
// replies reach the cluster's ephemeral ports, ICMP errors and neighbour discovery pass
// as infrastructure, TCP is verified by the acknowledgement of the cluster's own sequence
// numbers, and nothing a blind spoofer sends can verify, keep or close a session.
#include <gtest/gtest.h>

#include <set>

#include <random>

#include "packet_builder.h"
#include "test_util.h"
#include "worker_fixture.h"

using namespace stakegate;
using stakegate::testing::build_frame;
using stakegate::testing::FrameSpec;
using stakegate::testing::TcpFlow;

namespace {

constexpr uint64_t kMs = 1'000'000, kS = 1'000'000'000;

class SessionTest : public ::testing::Test {
 protected:
  void SetUp() override { f_.load(stakegate::testing::base_config()); }
  // A datagram from the cluster (198.18.255.1) to `dst`, and its reply.
  static FrameSpec out(const char* dst, uint16_t dport, uint16_t sport = 53000, uint8_t proto = 17) {
    FrameSpec f;
    f.dst = *parse_ip(dst);
    f.src = f.dst.is_v4 ? *parse_ip("198.18.255.1") : *parse_ip("2001:2::ff");
    f.src_port = sport;
    f.dst_port = dport;
    f.proto = proto;
    return f;
  }
  static FrameSpec back(FrameSpec f) {
    std::swap(f.src, f.dst);
    std::swap(f.src_port, f.dst_port);
    return f;
  }
  // A connection the cluster opens to an unregistered web server (198.51.200.81:443, from
  // `lport`), verified by the server's SYN-ACK.
  TcpFlow opened_web(uint16_t lport) {
    TcpFlow web;
    web.remote = *parse_ip("198.51.200.81");
    web.rport = 443;
    web.lport = lport;
    f_.inside(web.local_syn(), 0);
    EXPECT_EQ(f_.send(web.remote_syn_ack(), 0), Verdict::kPass);
    return web;
  }
  // A datagram's first fragment (id 77), and the fragment after it.
  static FrameSpec first_fragment(FrameSpec f) {
    f.more_fragments = true;
    f.frag_id = 77;
    f.frame_size = 1500;
    return f;
  }
  static FrameSpec last_fragment(FrameSpec first) {
    first.more_fragments = false;
    first.frag_offset = 185;
    first.frame_size = 600;
    return first;
  }
  Verdict send(const FrameSpec& f, uint64_t now) { return f_.send(build_frame(f), now); }
  uint64_t count(TrafficClass c, Verdict v) const { return f_.count(c, v); }
  stakegate::testing::WorkerFixture f_;
};

}  // namespace

TEST_F(SessionTest, AResolversReplyReachesTheClustersEphemeralPort) {
  FrameSpec q = out("198.51.200.53", 53);
  EXPECT_EQ(send(back(q), 0), Verdict::kUnregistered);  // before the query: port 53000 is not public
  f_.inside(build_frame(q), 0);
  EXPECT_EQ(send(back(q), 1 * kMs), Verdict::kPass);
  EXPECT_EQ(count(TrafficClass::kUnregistered, Verdict::kPass), 1u);
  FrameSpec other = back(q);
  other.src_port = 54;  // the same server, another port: not the session
  EXPECT_EQ(send(other, 1 * kMs), Verdict::kUnregistered);
  other = back(q);
  other.src = *parse_ip("198.51.200.54");
  EXPECT_EQ(send(other, 1 * kMs), Verdict::kUnregistered);
  // Idle past the UDP timeout (120 s; each reply refreshes it): gone.
  EXPECT_EQ(send(back(q), 110 * kS), Verdict::kPass);
  EXPECT_EQ(send(back(q), 231 * kS), Verdict::kUnregistered);
}

// A burst is decided in stages that look up every packet's set before any is inserted:
// a new flow's later packets in the same burst must find the session its first created.
TEST_F(SessionTest, AFlowsPacketsInOneBurstOpenOneSession) {
  std::vector<std::vector<uint8_t>> frames;
  for (int i = 0; i < 6; ++i) frames.push_back(build_frame(out("198.51.200.53", 53, static_cast<uint16_t>(53000 + i % 2))));
  std::vector<PacketView> burst;
  for (const auto& f : frames) burst.push_back({f.data(), static_cast<uint32_t>(f.size())});
  f_.worker->process_inside(burst.data(), static_cast<uint16_t>(burst.size()), 0);
  EXPECT_EQ(f_.worker->counters().sessions_created, 2u);  // two flows, three packets each
  EXPECT_EQ(send(back(out("198.51.200.53", 53, 53000)), 1 * kMs), Verdict::kPass);
  EXPECT_EQ(send(back(out("198.51.200.53", 53, 53001)), 1 * kMs), Verdict::kPass);
}

TEST_F(SessionTest, TheSessionsBudgetBoundsReplies) {
  // sessions: 5 % of 100,000 pps, a burst of 500, whatever the ports.
  FrameSpec q = out("198.51.200.80", 443, 41000);
  f_.inside(build_frame(q), 0);
  int passed = 0;
  for (int i = 0; i < 2000; ++i) passed += send(back(q), 1) == Verdict::kPass;
  EXPECT_EQ(passed, 500);
  EXPECT_EQ(count(TrafficClass::kUnregistered, Verdict::kSessionOverRate), 1500u);
}

TEST_F(SessionTest, PingRepliesMatchTheirIdentifier) {
  FrameSpec ping = out("198.51.200.9", 0, 0, 1);
  ping.icmp_type = 8;
  ping.icmp_id = 0x4242;
  f_.inside(build_frame(ping), 0);
  FrameSpec pong = back(ping);
  pong.icmp_type = 0;
  EXPECT_EQ(send(pong, 1 * kMs), Verdict::kPass);
  pong.icmp_id = 0x4243;
  EXPECT_EQ(send(pong, 1 * kMs), Verdict::kUnregistered);
  // IPv6: echo request 128, reply 129.
  FrameSpec ping6 = out("2001:2:1::9", 0, 0, 58);
  ping6.icmp_type = 128;
  ping6.icmp_id = 7;
  f_.inside(build_frame(ping6), 0);
  FrameSpec pong6 = back(ping6);
  pong6.icmp_type = 129;
  EXPECT_EQ(send(pong6, 1 * kMs), Verdict::kPass);
}

// unregistered.icmp_echo: echo requests from the outside reach the cluster as a packet to a
// public port does (the sender's bucket, a new one holding one packet; the pool), fragments
// following their first. Off (the default), and for staked addresses whose role lists
// ports, they are dropped as before; an unsolicited echo reply never passes.
TEST_F(SessionTest, EchoRequestsFromTheOutsidePassOnlyWithIcmpEcho) {
  FrameSpec ping = back(out("198.51.200.9", 0, 0, 1));
  ping.icmp_type = 8;
  FrameSpec ping6 = back(out("2001:db8:9::9", 0, 0, 58));
  ping6.icmp_type = 128;
  FrameSpec staked = ping;
  staked.src = *parse_ip("198.18.1.1");
  EXPECT_EQ(send(ping, 0), Verdict::kUnregistered);
  EXPECT_EQ(send(ping6, 0), Verdict::kUnregistered);

  std::string cfg = stakegate::testing::base_config();
  const std::string ports = "ports: [9000]}";
  cfg.replace(cfg.find(ports), ports.size(), "ports: [9000], icmp_echo: true}");
  f_.load(cfg);
  EXPECT_EQ(send(ping, 0), Verdict::kPass);
  EXPECT_EQ(send(ping, 0), Verdict::kUnregisteredOverRate);  // a new source: one packet
  EXPECT_EQ(send(ping, 100 * kMs), Verdict::kPass);           // then per_source_pps (10)
  EXPECT_EQ(send(ping6, 0), Verdict::kPass);
  FrameSpec reply = ping;
  reply.icmp_type = 0;
  reply.src = *parse_ip("198.51.200.10");
  EXPECT_EQ(send(reply, 0), Verdict::kUnregistered);
  EXPECT_EQ(send(staked, 0), Verdict::kPortDenied);
  // A large ping: its later fragment follows the first.
  FrameSpec big = ping;
  big.src = *parse_ip("198.51.200.11");
  EXPECT_EQ(send(first_fragment(big), 0), Verdict::kPass);
  EXPECT_EQ(send(last_fragment(first_fragment(big)), 0), Verdict::kUnregisteredOverRate);  // its source's one packet spent
  EXPECT_EQ(send(last_fragment(first_fragment(big)), 200 * kMs), Verdict::kPass);
  EXPECT_EQ(count(TrafficClass::kUnregistered, Verdict::kPass), 5u);
}

TEST_F(SessionTest, IcmpErrorsQuotingALiveSessionPassAsInfrastructure) {
  // Path MTU discovery: a router says the cluster's packet was too big.
  FrameSpec big = out("198.51.200.80", 443, 41000, 6);
  big.tcp_flags = 0x10;
  big.frame_size = 1500;
  auto sent = build_frame(big);
  const IpAddr router = *parse_ip("198.51.100.1");
  auto frag_needed = stakegate::testing::icmp_error_about(sent, router, 3, 4);
  EXPECT_EQ(f_.send(frag_needed, 0), Verdict::kUnregistered);  // no such session yet
  f_.inside(sent, 0);
  EXPECT_EQ(f_.send(frag_needed, 1 * kMs), Verdict::kPass);
  EXPECT_EQ(count(TrafficClass::kInfra, Verdict::kPass), 1u);
  // IPv6 Packet Too Big (type 2) about the cluster's UDP.
  FrameSpec big6 = out("2001:2:1::80", 443, 41000);
  big6.frame_size = 1500;
  auto sent6 = build_frame(big6);
  auto ptb = stakegate::testing::icmp_error_about(sent6, *parse_ip("2001:2:1::1"), 2, 0);
  f_.inside(sent6, 0);
  EXPECT_EQ(f_.send(ptb, 1 * kMs), Verdict::kPass);
  // Past the quoted packet's extension headers: a Packet Too Big about the first fragment
  // of the cluster's fragmented UDP datagram (a fragment header before its ports), and an
  // unreachable about a packet with destination options. A quoted non-first fragment
  // shows no ports: it matches nothing.
  for (const auto& ext : std::vector<std::pair<uint8_t, std::vector<uint8_t>>>{
           {44, {0, 0, 0, 1, 0, 0, 0x12, 0x34}}, {60, {0, 0, 1, 4, 0, 0, 0, 0}}}) {
    FrameSpec x = out("2001:2:1::82", 5353, 41002 + ext.first, 17);
    x.frame_size = 1500;
    x.ipv6_ext = {ext};
    auto sent_x = build_frame(x);
    f_.inside(sent_x, 1 * kMs);
    EXPECT_EQ(f_.send(stakegate::testing::icmp_error_about(sent_x, *parse_ip("2001:2:1::1"), ext.first == 44 ? 2 : 1, 0,
                                                           1232),
                      2 * kMs),
              Verdict::kPass)
        << "extension header " << int(ext.first);
  }
  FrameSpec later = out("2001:2:1::82", 5353, 41044, 17);
  later.ipv6_ext = {{44, {0, 0, 0x05, 0xc8, 0, 0, 0x12, 0x34}}};  // offset 1,480: no ports
  EXPECT_EQ(f_.send(stakegate::testing::icmp_error_about(build_frame(later), *parse_ip("2001:2:1::1"), 2, 0, 1232), 2 * kMs),
            Verdict::kUnregistered);
  // An error about a packet the cluster never sent proves nothing.
  FrameSpec never = out("2001:2:1::81", 443, 41001);
  EXPECT_EQ(f_.send(stakegate::testing::icmp_error_about(build_frame(never), *parse_ip("2001:2:1::1"), 2, 0), 1 * kMs),
            Verdict::kUnregistered);
}

TEST_F(SessionTest, PathMtuDiscoveryWorksOnConnectionsTheClusterAccepted) {
  // A client of the public API behind a smaller MTU (a tunnel, PPPoE): a router on its path
  // says the cluster's 1,500-byte response segment was too big. The error quotes the
  // connection the cluster accepted: it passes, whatever the client's own bucket holds.
  for (const char* client_ip : {"198.51.200.9", "2001:db8:9::9"}) {
    TcpFlow client;
    client.remote = *parse_ip(client_ip);
    if (!client.remote.is_v4) client.local = *parse_ip("2001:2::ff");
    client.lport = 9000;
    f_.accept(client, 0);
    client.frame_size = 1500;
    auto response = client.local_data();
    f_.inside(response, 0);
    const bool v4 = client.remote.is_v4;
    auto too_big = stakegate::testing::icmp_error_about(response, *parse_ip(v4 ? "198.51.100.1" : "2001:db8:9::1"),
                                                        v4 ? 3 : 2, v4 ? 4 : 0);
    EXPECT_EQ(f_.send(too_big, 1 * kMs), Verdict::kPass) << client_ip;
  }
  EXPECT_EQ(count(TrafficClass::kInfra, Verdict::kPass), 2u);
}

// A frame in chained buffers (net_pcap's long frames, a NIC's scattered RX) as the worker
// gets it: the first `first` bytes, copied into a buffer of exactly that size (reading past
// it is an AddressSanitizer report), and the whole length.
struct Chained {
  std::vector<uint8_t> head;
  uint32_t wire;
  Chained(const std::vector<uint8_t>& frame, size_t first)
      : head(frame.begin(), frame.begin() + static_cast<std::ptrdiff_t>(first)), wire(static_cast<uint32_t>(frame.size())) {}
  PacketView view() const { return {head.data(), static_cast<uint32_t>(head.size()), wire}; }
};

TEST_F(SessionTest, ChainedFramesAreJudgedByTheirHeadersAndCountedWhole) {
  auto passed_bytes = [&] {
    uint64_t n = 0;
    for (const auto& cls : f_.worker->counters().bytes[static_cast<int>(Direction::kOutside)])
      n += cls[static_cast<int>(Verdict::kPass)];
    return n;
  };
  TcpFlow flow;
  ASSERT_EQ(f_.accept(flow, 0), Verdict::kPass);
  flow.frame_size = 9000;
  // The cluster sends three 9,000-byte segments, each seen as its first 128 bytes: its
  // sequence space advances by their whole payload...
  for (int i = 0; i < 3; ++i) {
    const Chained c(flow.local_data(), 128);
    const PacketView v = c.view();
    f_.worker->process_inside(&v, 1, 1 * kMs);
  }
  // ...so the remote's acknowledgement of all of it is on the verified connection (the
  // node's allowance), and its own 9,000-byte segment counts 9,000 bytes.
  const uint64_t verified = f_.meter("198.18.1.1").passed, bytes = passed_bytes();
  const Chained reply(flow.remote_data(), 100);
  PacketView v = reply.view();
  Verdict got;
  f_.worker->process_outside(&v, 1, 2 * kMs, &got);
  EXPECT_EQ(got, Verdict::kPass);
  EXPECT_EQ(f_.meter("198.18.1.1").passed, verified + 1);
  EXPECT_EQ(passed_bytes(), bytes + 9000);
  // Headers that are not all in the first buffer: malformed, whatever follows.
  const Chained torn(flow.remote_data(), 40);
  v = torn.view();
  f_.worker->process_outside(&v, 1, 3 * kMs, &got);
  EXPECT_EQ(got, Verdict::kMalformed);
  // An ICMP error whose quote is cut by the first buffer is not read past it: it matches no session.
  FrameSpec big = out("198.51.200.80", 443, 41000, 6);
  big.tcp_flags = 0x10;
  big.frame_size = 1500;
  const auto sent = build_frame(big);
  f_.inside(sent, 0);
  const auto frag_needed = stakegate::testing::icmp_error_about(sent, *parse_ip("198.51.100.1"), 3, 4);
  const Chained quote_cut(frag_needed, 14 + 20 + 8 + 10);
  v = quote_cut.view();
  f_.worker->process_outside(&v, 1, 4 * kMs, &got);
  EXPECT_EQ(got, Verdict::kUnregistered);
  EXPECT_EQ(f_.send(frag_needed, 4 * kMs), Verdict::kPass);
}

TEST_F(SessionTest, NeighbourDiscoveryPassesOnlyWithHopLimit255) {
  FrameSpec ns;
  ns.src = *parse_ip("fe80::1");
  ns.dst = *parse_ip("ff02::1:ff00:ff");
  ns.proto = 58;
  ns.icmp_type = 135;
  ns.ttl = 255;
  EXPECT_EQ(send(ns, 0), Verdict::kPass);
  ns.icmp_type = 134;  // router advertisement
  EXPECT_EQ(send(ns, 0), Verdict::kPass);
  EXPECT_EQ(count(TrafficClass::kInfra, Verdict::kPass), 2u);
  ns.ttl = 64;  // forwarded from elsewhere: not neighbour discovery
  EXPECT_EQ(send(ns, 0), Verdict::kUnregistered);
  // With a fragment header, even an atomic one, hosts must ignore it (RFC 6980): it is
  // how a router advertisement slips past an RA guard. So is the first of real fragments.
  ns.ttl = 255;
  ns.ipv6_ext = {{44, {0, 0, 0, 0, 0, 0, 0x12, 0x34}}};
  EXPECT_EQ(send(ns, 0), Verdict::kUnregistered);
  ns.ipv6_ext.clear();
  ns.more_fragments = true;
  EXPECT_EQ(send(ns, 0), Verdict::kUnregistered);
  ns.more_fragments = false;
  ns.ipv6_ext = {{60, {0, 0, 1, 4, 0, 0, 0, 0}}};  // a destination options header is no fragment header
  EXPECT_EQ(send(ns, 0), Verdict::kPass);
  EXPECT_EQ(count(TrafficClass::kInfra, Verdict::kPass), 3u);
}

// Multicast group membership is link-scoped: MLD (ICMPv6 130-132, 143) and IGMP (IPv4
// protocol 2) with hop limit / TTL 1 to a multicast group pass as infrastructure, within
// its budget; routed from elsewhere, to a unicast address, or in fragments they are not.
TEST_F(SessionTest, MulticastListenerQueriesAndReportsPassOnlyOnTheLink) {
  FrameSpec mld;
  mld.src = *parse_ip("fe80::1");
  mld.dst = *parse_ip("ff02::1");
  mld.proto = 58;
  mld.icmp_type = 130;  // MLD query
  mld.ttl = 1;
  mld.payload.assign(16, 0);
  EXPECT_EQ(send(mld, 0), Verdict::kPass);
  mld.icmp_type = 143;  // MLDv2 report
  EXPECT_EQ(send(mld, 0), Verdict::kPass);
  mld.ipv6_ext = {{0, {0, 0, 5, 2, 0, 0, 1, 0}}};  // as sent: behind a hop-by-hop router alert
  EXPECT_EQ(send(mld, 0), Verdict::kPass);
  mld.ipv6_ext.clear();
  mld.ttl = 2;
  EXPECT_EQ(send(mld, 0), Verdict::kUnregistered);

  FrameSpec igmp;
  igmp.src = *parse_ip("198.51.100.1");  // the router
  igmp.dst = *parse_ip("224.0.0.1");
  igmp.proto = 2;
  igmp.ttl = 1;
  igmp.ipv4_options = {0x94, 0x04, 0x00, 0x00};  // router alert
  igmp.payload = {0x11, 0x64, 0xee, 0x9b, 0, 0, 0, 0};  // general query
  EXPECT_EQ(send(igmp, 0), Verdict::kPass);
  igmp.dst = *parse_ip("239.1.2.3");  // group-specific
  EXPECT_EQ(send(igmp, 0), Verdict::kPass);
  igmp.dst = *parse_ip("224.0.0.22");  // another host's IGMPv3 report
  igmp.payload[0] = 0x22;
  EXPECT_EQ(send(igmp, 0), Verdict::kPass);
  EXPECT_EQ(count(TrafficClass::kInfra, Verdict::kPass), 6u);
  igmp.ttl = 2;  // routed: not from the link
  EXPECT_EQ(send(igmp, 0), Verdict::kUnregistered);
  igmp.ttl = 1;
  igmp.dst = *parse_ip("198.18.255.1");  // to a node, not a group
  EXPECT_EQ(send(igmp, 0), Verdict::kUnregistered);
  igmp.dst = *parse_ip("224.0.0.1");
  igmp.more_fragments = true;
  EXPECT_EQ(send(igmp, 0), Verdict::kUnregistered);
  igmp.more_fragments = false;
  EXPECT_EQ(count(TrafficClass::kInfra, Verdict::kPass), 6u);
  // A flood of them is held to the infra budget (1,000 pps here, 100 ms of burst).
  int passed = 0;
  for (int i = 0; i < 1000; ++i) passed += send(igmp, 1 * kMs) == Verdict::kPass;
  EXPECT_LT(passed, 200);
  EXPECT_GT(passed, 50);
  EXPECT_EQ(count(TrafficClass::kInfra, Verdict::kInfraOverRate), 1000u - passed);
}

TEST_F(SessionTest, OutboundTcpIsVerifiedByTheSynAckAndFollowsItsClose) {
  TcpFlow web;
  web.remote = *parse_ip("198.51.200.80");
  web.rport = 443;
  web.lport = 41000;
  f_.inside(web.local_syn(), 0);
  // A SYN-ACK that does not acknowledge the cluster's SYN is no reply: it goes nowhere.
  EXPECT_EQ(f_.send(web.forged(7, 12345, 0x12), 0), Verdict::kUnregistered);
  EXPECT_EQ(f_.send(web.remote_syn_ack(), 0), Verdict::kPass);
  f_.inside(web.local_data(), 0);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(f_.send(web.remote_data(), 0), Verdict::kPass);
  EXPECT_EQ(f_.worker->counters().sessions_verified, 1u);
  // A forged RST out of the window neither passes nor closes the connection.
  EXPECT_EQ(f_.send(web.forged(web.remote_seq + 0x40000000, web.local_seq, 0x14), 0), Verdict::kUnregistered);
  EXPECT_EQ(f_.send(web.remote_data(), 10 * kS), Verdict::kPass);
  // The cluster's FIN half-closes it: the server may still answer, after a pause (a
  // request sent with its FIN, then a slow answer), within the closing timeout (240 s).
  f_.inside(web.local_data(0x01), 10 * kS);
  EXPECT_EQ(f_.send(web.remote_data(), 200 * kS), Verdict::kPass);
  // The server's FIN ends it: after the closed timeout (10 s), the session is gone.
  EXPECT_EQ(f_.send(web.remote_data(0x01), 200 * kS), Verdict::kPass);
  EXPECT_EQ(f_.send(web.remote_data(), 215 * kS), Verdict::kUnregistered);
}

// The remote end's FIN half-closes a connection as well; the cluster may still send (and
// the remote acknowledge it) long after; the cluster's own FIN then ends it.
TEST_F(SessionTest, AConnectionHalfClosedByTheRemoteStaysUntilTheClusterCloses) {
  TcpFlow web = opened_web(41001);
  f_.inside(web.local_data(), 0);
  EXPECT_EQ(f_.send(web.remote_data(0x01), 1 * kS), Verdict::kPass);  // the server is done sending
  f_.inside(web.local_data(), 150 * kS);                                 // the cluster still is
  EXPECT_EQ(f_.send(web.remote_data(), 150 * kS), Verdict::kPass);
  f_.inside(web.local_data(0x01), 160 * kS);
  EXPECT_EQ(f_.send(web.remote_data(), 165 * kS), Verdict::kPass);      // the last acknowledgement
  EXPECT_EQ(f_.send(web.remote_data(), 180 * kS), Verdict::kUnregistered);
}

TEST_F(SessionTest, AClientOfAPublicPortKeepsItsPerSourceLimit) {
  // An unregistered client connects to the public port 9000 (10 pps, 100 ms: a burst of 1
  // and a reserve of 1 for verified connections). Its SYN takes the one packet a new source
  // starts with, its ACK of the SYN-ACK (with its request) the reserve; its next segment
  // finds the reserve spent and proves its address: the bucket's full depth, 2, once. The
  // connection is one the cluster accepted, so from there on the client stays within its
  // own 10 pps.
  TcpFlow client;
  client.remote = *parse_ip("198.51.200.7");
  client.lport = 9000;
  EXPECT_EQ(f_.accept(client, 0), Verdict::kPass);
  EXPECT_EQ(f_.send(client.remote_data(), 0), Verdict::kPass);
  EXPECT_EQ(f_.send(client.remote_data(), 0), Verdict::kPass);
  EXPECT_EQ(f_.send(client.remote_data(), 0), Verdict::kUnregisteredOverRate);
  EXPECT_EQ(f_.worker->counters().unregistered_proven, 1u);
  for (uint64_t t = 100; t <= 500; t += 100) {
    EXPECT_EQ(f_.send(client.remote_data(), t * kMs), Verdict::kPass) << t;
    EXPECT_EQ(f_.send(client.remote_data(), t * kMs), Verdict::kUnregisteredOverRate) << t;
  }
  EXPECT_EQ(count(TrafficClass::kUnregistered, Verdict::kSessionOverRate), 0u);
}

TEST_F(SessionTest, AForgerOfOneClientsAddressCannotStarveItsConnection) {
  // Someone forges the client's address (datagrams to the public port, and ACKs on its own
  // 4-tuple with guessed numbers) at 100 times its 10 pps. The forgeries can take only what
  // is above the client's reserve, and its verified segments have first claim on every
  // refill: at its own rate, the client loses nothing, and the forger gets nothing.
  TcpFlow client;
  client.remote = *parse_ip("198.51.200.7");
  client.lport = 9000;
  EXPECT_EQ(f_.accept(client, 0), Verdict::kPass);
  FrameSpec forged;
  forged.src = client.remote;
  forged.dst = client.local;
  forged.src_port = 5353;
  forged.dst_port = 9000;
  forged.proto = 17;
  int client_passed = 0, forged_passed = 0;
  for (uint64_t ms = 1; ms <= 2000; ++ms) {
    forged_passed += send(forged, ms * kMs) == Verdict::kPass;
    forged_passed += f_.send(client.forged(client.remote_seq + 0x40000000, client.local_seq), ms * kMs) == Verdict::kPass;
    if (ms % 100 == 0) client_passed += f_.send(client.remote_data(), ms * kMs) == Verdict::kPass;
  }
  EXPECT_EQ(client_passed, 20);
  EXPECT_EQ(forged_passed, 0);
  // Once the client is idle, the forger gets the source's rate (it cannot be told apart
  // from the client's own datagrams), and never more.
  for (uint64_t ms = 2001; ms <= 3000; ++ms) forged_passed += send(forged, ms * kMs) == Verdict::kPass;
  EXPECT_GE(forged_passed, 9);
  EXPECT_LE(forged_passed, 11);
}

TEST_F(SessionTest, ANewClientThatCompletesAHandshakeGetsItsFullBurstOnce) {
  // burst_ms 500 at 10 pps: a burst of 5 and a reserve of 2.5 for verified connections. A
  // new source starts with one packet and the reserve, so a client in the same data centre
  // (its ACK follows the SYN-ACK sooner than a packet refills) sends its ACK and the start
  // of its request at once. When a segment on its verified connection finds even the
  // reserve spent, its bucket gets the full depth (7.5), as for a source seen before: its
  // acknowledgement proved it receives at its address.
  std::string config = stakegate::testing::base_config();
  config.replace(config.find("per_source_pps: 10,"), 19, "per_source_pps: 10, burst_ms: 500,");
  f_.load(config);
  auto passes = [&](TcpFlow& flow, uint64_t now) {
    int n = 0;
    while (n < 100 && f_.send(flow.remote_data(), now) == Verdict::kPass) ++n;
    return n;
  };
  TcpFlow client;
  client.remote = *parse_ip("198.51.200.7");
  client.lport = 9000;
  EXPECT_EQ(f_.accept(client, 0), Verdict::kPass);
  EXPECT_EQ(passes(client, 0), 1 + 7);  // the reserve's last whole packet, then 7 of the full depth
  EXPECT_EQ(f_.worker->counters().unregistered_proven, 1u);
  // Once per source: its next connection, on an empty bucket, proves nothing new.
  TcpFlow again = client;
  again.rport = 40001;
  EXPECT_EQ(f_.accept(again, 0), Verdict::kUnregisteredOverRate);
  EXPECT_EQ(f_.send(again.remote_data(), 0), Verdict::kUnregisteredOverRate);
  EXPECT_EQ(f_.worker->counters().unregistered_proven, 1u);

  // A forger cannot: an ACK that does not acknowledge the cluster's ISN, on the 4-tuple of
  // a connection the cluster accepted (its SYN took the new source's one packet) ...
  TcpFlow forged;
  forged.remote = *parse_ip("198.51.200.8");
  forged.lport = 9000;
  EXPECT_EQ(f_.send(forged.remote_syn(), 0), Verdict::kPass);
  f_.inside(forged.local_syn_ack(), 0);
  for (uint32_t guess : {forged.local_seq + 1, forged.local_seq - 2, forged.local_seq + 0x10000})
    EXPECT_EQ(f_.send(forged.forged(forged.remote_seq, guess, 0x10), 0), Verdict::kUnregisteredOverRate) << guess;
  // ... nor a SYN-ACK, nor an ACK with no connection behind it.
  EXPECT_EQ(f_.send(forged.forged(forged.remote_seq, forged.local_seq, 0x12), 0), Verdict::kUnregisteredOverRate);
  TcpFlow stray;
  stray.remote = *parse_ip("198.51.200.9");
  stray.lport = 9000;
  EXPECT_EQ(f_.send(stray.remote_data(), 0), Verdict::kPass);  // a new source's one packet
  EXPECT_EQ(f_.send(stray.remote_data(), 0), Verdict::kUnregisteredOverRate);
  EXPECT_EQ(f_.worker->counters().unregistered_proven, 1u);
  // The real acknowledgement, later, takes the reserve, then proves the address.
  EXPECT_EQ(passes(forged, 1 * kMs), 2 + 7);
  EXPECT_EQ(f_.worker->counters().unregistered_proven, 2u);

  // An IPv6 client is its /64: one address of it proves the subnet's bucket, once.
  TcpFlow six;
  six.remote = *parse_ip("2001:db8:7:1::10");
  six.local = *parse_ip("2001:2::ff");
  six.lport = 9000;
  EXPECT_EQ(f_.accept(six, 2 * kMs), Verdict::kPass);
  EXPECT_EQ(passes(six, 2 * kMs), 1 + 7);
  TcpFlow sibling = six;
  sibling.remote = *parse_ip("2001:db8:7:1::11");
  EXPECT_EQ(f_.accept(sibling, 2 * kMs), Verdict::kUnregisteredOverRate);
  EXPECT_EQ(f_.worker->counters().unregistered_proven, 3u);
}

TEST_F(SessionTest, AFloodThatEmptiesThePoolLeavesClientsVerifiedConnectionsTheReserve) {
  // The pool: 5,000 pps, 500 packets of burst, and a reserve of 250 that only verified
  // connections may take. A flood from ever new sources (anyone can forge those) at four
  // times the pool's rate holds everything else at the reserve; a client of the public
  // port, within its own 10 pps on a connection the cluster accepted, loses nothing.
  TcpFlow client;
  client.remote = *parse_ip("198.51.200.7");
  client.lport = 9000;
  EXPECT_EQ(f_.accept(client, 0), Verdict::kPass);
  const uint64_t reserve0 = f_.worker->counters().unregistered_reserve;
  FrameSpec flood;
  flood.dst = *parse_ip("198.18.255.1");
  flood.dst_port = 9000;
  flood.proto = 17;
  uint64_t flood_passed = 0, client_passed = 0, forged_passed = 0;
  uint32_t next = 0;
  for (uint64_t ms = 1; ms <= 2000; ++ms) {
    for (int i = 0; i < 20; ++i, ++next) {
      flood.src = IpAddr::from_v4(0xC6330000u + (next % 60000));  // 198.51.0.0/16
      flood_passed += send(flood, ms * kMs) == Verdict::kPass;
    }
    // A forger on the client's own 4-tuple, numbers guessed: no reserve for it.
    forged_passed += f_.send(client.forged(client.remote_seq + 0x40000000, client.local_seq), ms * kMs) == Verdict::kPass;
    if (ms % 100 == 0) client_passed += f_.send(client.remote_data(), ms * kMs) == Verdict::kPass;
  }
  EXPECT_EQ(client_passed, 20u);
  EXPECT_EQ(forged_passed, 0u);
  EXPECT_EQ(f_.worker->counters().unregistered_reserve - reserve0, 20u);
  // The flood gets what the pool gives anyone else: its burst, then its rate.
  EXPECT_LE(flood_passed, 500u + 5000u * 2);
  EXPECT_GE(flood_passed, 5000u * 2 - 100);

  // A new client's handshake is not a verified connection yet: its SYN and ACK take their
  // chance against the flood, and the proof of its ACK gets it no reserve.
  TcpFlow late;
  late.remote = *parse_ip("198.51.200.8");
  late.lport = 9000;
  for (int i = 0; i < 20; ++i, ++next) {
    flood.src = IpAddr::from_v4(0xC6330000u + (next % 60000));
    send(flood, 2001 * kMs);
  }
  EXPECT_EQ(f_.send(late.remote_syn(), 2001 * kMs), Verdict::kUnregisteredOverRate);
  EXPECT_EQ(f_.worker->counters().unregistered_reserve - reserve0, 20u);
}

TEST_F(SessionTest, WithAByteBudgetTheReserveHoldsBytesToo) {
  // capacity.bps 8 Mbit/s: the pool holds 50,000 bytes a second, 5,000 of burst, and a
  // reserve of 2,500 bytes beyond them (half the burst, and at least one full frame).
  // Datagrams of 1,000 bytes from ever new sources at 20 times that empty its bytes (its
  // packets, 5,000 a second, never run short); a client's segments of the same size, on
  // its verified connection, still pass (without the byte reserve: none of them).
  std::string config = stakegate::testing::base_config();
  config.replace(config.find("capacity: {pps: 100000}"), 23, "capacity: {pps: 100000, bps: 8000000}");
  f_.load(config);
  TcpFlow client;
  client.remote = *parse_ip("198.51.200.7");
  client.lport = 9000;
  client.frame_size = 1000;
  EXPECT_EQ(f_.accept(client, 0), Verdict::kPass);
  FrameSpec flood;
  flood.dst = *parse_ip("198.18.255.1");
  flood.dst_port = 9000;
  flood.proto = 17;
  flood.frame_size = 1000;
  int client_passed = 0, flood_passed = 0;
  for (uint32_t ms = 1; ms <= 2000; ++ms) {
    flood.src = IpAddr::from_v4(0xC6330000u + ms);
    flood_passed += send(flood, ms * kMs) == Verdict::kPass;
    if (ms % 100 == 0) client_passed += f_.send(client.remote_data(), ms * kMs) == Verdict::kPass;
  }
  EXPECT_EQ(client_passed, 20);
  // The flood: the byte burst, then the byte rate less the client's 20 segments.
  EXPECT_LE(flood_passed, 5 + 100);
  EXPECT_GE(flood_passed, 100 - 20 - 2);
}

TEST_F(SessionTest, AConnectionPickedUpMidStreamIsVerifiedByItsNextAcknowledgement) {
  // The gateway (re)started while the connection was open: the cluster's next segment
  // opens the session, the remote's acknowledgement of it verifies the connection.
  TcpFlow flow;  // 198.18.1.1 (staked) to the cluster's 3569
  f_.inside(flow.local_data(), 0);
  EXPECT_EQ(f_.send(flow.forged(flow.remote_seq, flow.local_seq + 100000), 0), Verdict::kPass);  // request channel
  EXPECT_EQ(f_.worker->meter_cold(f_.slot_of("198.18.1.1")).passed_request, 1u);
  EXPECT_EQ(f_.send(flow.remote_data(), 0), Verdict::kPass);
  EXPECT_EQ(f_.meter("198.18.1.1").passed, 1u);  // verified: its allowance
}

// The request channel keeps a bucket for packets that arrive with the hop limit of the
// node's own verified packets: a forged flood from elsewhere (another hop limit) fills the
// other bucket, and the node's new connections still get through.
TEST_F(SessionTest, ANodesOwnHopLimitKeepsItsNewConnectionsThroughAForgedFlood) {
  const uint32_t slot = f_.slot_of("198.18.1.1");
  const NodeMeterCold& c = f_.worker->meter_cold(slot);
  auto flood = [&](uint8_t ttl, uint64_t now) {  // forged SYNs until the bucket is empty
    TcpFlow forged;
    forged.remote_ttl = ttl;
    const uint64_t dropped = c.dropped_request;
    for (uint16_t i = 0; i < 2000 && c.dropped_request == dropped; ++i) {
      forged.rport = static_cast<uint16_t>(20000 + i);
      f_.send(forged.remote_syn(), now);
    }
    ASSERT_GT(c.dropped_request, dropped);
  };
  auto dial = [&](uint16_t rport, uint64_t now) {  // the node's SYN to the cluster's 3569
    TcpFlow node;
    node.remote_ttl = 58;
    node.rport = rport;
    return f_.send(node.remote_syn(), now);
  };
  // No connection of the node verified yet: one bucket for everything, as a flood empties it.
  flood(50, 0);
  EXPECT_EQ(dial(40001, 0), Verdict::kRequestOverRate);
  EXPECT_EQ(c.hop, 0);
  // The node's connection verifies (its ACK of the cluster's SYN-ACK), arriving with TTL 58.
  TcpFlow node;
  node.remote_ttl = 58;
  node.rport = 40002;
  EXPECT_EQ(f_.send(node.remote_syn(), 1 * kS), Verdict::kPass);
  f_.inside(node.local_syn_ack(), 1 * kS);
  EXPECT_EQ(f_.send(node.remote_data(), 1 * kS), Verdict::kPass);
  EXPECT_EQ(c.hop, 58);
  // A forged flood arriving with TTL 50 empties its bucket, not the node's own.
  flood(50, 2 * kS);
  EXPECT_EQ(dial(40003, 2 * kS), Verdict::kPass);
  EXPECT_EQ(f_.worker->counters().request_hop_passed, 1u);
  TcpFlow forged;
  forged.remote_ttl = 50;
  EXPECT_EQ(f_.send(forged.remote_syn(), 2 * kS), Verdict::kRequestOverRate);
  // Forged packets on the node's own 4-tuple, with guessed numbers, never teach it a hop limit.
  node.remote_ttl = 50;
  for (uint32_t guess = 1; guess < 100; ++guess)
    EXPECT_NE(f_.send(node.forged(guess * 0x01000193u, guess * 0x9e3779b9u), 2 * kS), Verdict::kPass);
  EXPECT_EQ(c.hop, 58);
  // It is a preference, not a proof: a spoofer who knows the node's distance forges it too,
  // and then competes with the node in that bucket as before.
  flood(58, 3 * kS);
  EXPECT_EQ(dial(40004, 3 * kS), Verdict::kRequestOverRate);
}

// A forged SYN that passes a staked address's request channel gets the cluster's SYN-ACK,
// which the real node refuses with a RST: at its own hop limit, so such RSTs spent the
// bucket its own new connections need (a spoofer elsewhere filling the other bucket spent
// the node's through its refusals). The RST at exactly the number the SYN-ACK acknowledged
// passes without taking the request channel, once per connection, and closes its session.
TEST_F(SessionTest, ANodesRefusalsOfForgedConnectionsDoNotSpendItsRequestChannel) {
  const uint32_t slot = f_.slot_of("198.18.1.1");
  const NodeMeterCold& c = f_.worker->meter_cold(slot);
  TcpFlow node;  // a connection of the node verifies: its hop limit is 58
  node.remote_ttl = 58;
  node.rport = 40002;
  EXPECT_EQ(f_.send(node.remote_syn(), 0), Verdict::kPass);
  f_.inside(node.local_syn_ack(), 0);
  EXPECT_EQ(f_.send(node.remote_data(), 0), Verdict::kPass);
  ASSERT_EQ(c.hop, 58);
  // A spoofer seven hops further away forges SYNs until its bucket is empty; the cluster
  // answers each that passed, and the node refuses each answer.
  std::vector<TcpFlow> accepted;
  for (uint16_t i = 0; i < 200; ++i) {
    TcpFlow forged;
    forged.remote_ttl = 51;
    forged.rport = static_cast<uint16_t>(20000 + i);
    if (f_.send(forged.remote_syn(), 1 * kS) != Verdict::kPass) continue;
    f_.inside(forged.local_syn_ack(), 1 * kS);
    accepted.push_back(forged);
  }
  ASSERT_GT(accepted.size(), 20u);
  const uint64_t dropped = c.dropped_request;
  int refused = 0;
  for (TcpFlow& a : accepted) {
    a.remote_ttl = 58;  // the real node's
    refused += f_.send(a.forged(a.remote_seq, 0, 0x04), 1 * kS) == Verdict::kPass;
  }
  EXPECT_EQ(refused, static_cast<int>(accepted.size()));
  EXPECT_EQ(f_.worker->counters().refusals_passed, accepted.size());
  EXPECT_EQ(c.dropped_request, dropped);
  // The node's own bucket is whole: its new connections pass.
  int dialled = 0;
  for (uint16_t i = 0; i < 20; ++i) {
    TcpFlow next;
    next.remote_ttl = 58;
    next.rport = static_cast<uint16_t>(41000 + i);
    dialled += f_.send(next.remote_syn(), 1 * kS) == Verdict::kPass;
  }
  EXPECT_EQ(dialled, 20);
  // Once per connection (its session is closed), and only at the exact number.
  const uint64_t free_before = f_.worker->counters().refusals_passed;
  f_.send(accepted[0].forged(accepted[0].remote_seq, 0, 0x04), 1 * kS);
  TcpFlow other;
  other.rport = 30000;
  other.remote_ttl = 51;
  ASSERT_EQ(f_.send(other.remote_syn(), 2 * kS), Verdict::kPass);
  f_.inside(other.local_syn_ack(), 2 * kS);
  f_.send(other.forged(other.remote_seq + 1, 0, 0x04), 2 * kS);
  EXPECT_EQ(f_.worker->counters().refusals_passed, free_before);
  f_.send(other.forged(other.remote_seq, 0, 0x04), 2 * kS);  // the exact one still is
  EXPECT_EQ(f_.worker->counters().refusals_passed, free_before + 1);
}

TEST_F(SessionTest, FragmentsOfAReplyFollowTheirFirstFragment) {
  FrameSpec q = out("198.51.200.53", 53);
  f_.inside(build_frame(q), 0);
  const FrameSpec first = first_fragment(back(q));
  EXPECT_EQ(send(first, 0), Verdict::kPass);
  FrameSpec rest = last_fragment(first);
  EXPECT_EQ(send(rest, 0), Verdict::kPass);
  rest.frag_id = 78;  // no first fragment of this one passed
  EXPECT_EQ(send(rest, 0), Verdict::kUnregistered);
  rest.frag_id = 77;
  EXPECT_EQ(send(rest, 3 * kS), Verdict::kUnregistered);  // too late: fragments expire after 2 s
}

// RFC 8200 puts the final destination's options (and AH) after the fragment header: then
// the first fragment's transport is UDP, the others' fragment header names destination
// options, and an IPv6 datagram is one datagram by its addresses and identification alone.
TEST_F(SessionTest, FragmentsOfAnIpv6ReplyWithOptionsAfterTheFragmentHeaderFollowTheirFirst) {
  FrameSpec q = out("2001:db8:53::53", 53);
  f_.inside(build_frame(q), 0);
  FrameSpec first = first_fragment(back(q));
  first.ipv6_ext_after_fragment = {{60, {0, 0, 1, 4, 0, 0, 0, 0}}};  // destination options: PadN
  EXPECT_EQ(send(first, 0), Verdict::kPass);
  FrameSpec rest = last_fragment(first);
  rest.ipv6_ext_after_fragment.clear();  // only the first fragment carries them,
  rest.proto = 60;                        // but every fragment header names them next
  EXPECT_EQ(send(rest, 0), Verdict::kPass);
  rest.frag_id = 78;
  EXPECT_EQ(send(rest, 0), Verdict::kUnregistered);
}

// The worker sweeps its tables a few sets each tick (Worker::tick, from the lcore loop):
// a session and a fragment entry expired long ago stay dead after the 32-bit tick wraps.
TEST_F(SessionTest, ExpiredSessionsAndFragmentsStayDeadAcrossTheTickWrap) {
  FrameSpec q = out("198.51.200.53", 53);
  f_.inside(build_frame(q), 0);
  const FrameSpec first = first_fragment(back(q));
  EXPECT_EQ(send(first, 1 * kMs), Verdict::kPass);
  // An idle gateway: the loop ticks, no packet for 417 days and a bit.
  const uint64_t tick_ns = uint64_t{1} << kTickShift;
  for (uint64_t i = 0; i < 4096; ++i) f_.worker->tick(300 * kS + i * tick_ns);
  const uint64_t later = (uint64_t{1} << (31 + kTickShift)) + 200 * kS;  // the deadlines look ahead again
  EXPECT_EQ(send(back(q), later), Verdict::kUnregistered);
  EXPECT_EQ(send(last_fragment(first), later), Verdict::kUnregistered);
  // And the table still works: a new query, its reply.
  f_.inside(build_frame(q), later);
  EXPECT_EQ(send(back(q), later + kMs), Verdict::kPass);
}

TEST_F(SessionTest, OnlyTheClustersOwnAddressesOpenSessions) {
  FrameSpec q = out("198.51.200.53", 53);
  q.src = *parse_ip("198.18.254.1");  // behind the gateway, but not a protected address
  f_.inside(build_frame(q), 0);
  EXPECT_EQ(send(back(q), 1), Verdict::kUnregistered);
  // Without cluster.prefixes every inside source opens sessions (and nothing is spoofed by prefix).
  std::string y = stakegate::testing::base_config();
  y.erase(y.find("cluster:"));
  f_.load(y);
  f_.inside(build_frame(q), 0);
  EXPECT_EQ(send(back(q), 1), Verdict::kPass);
}

// A node speaks to its router's link-local address (ping, BGP over link-local): those
// addresses never appear in cluster.prefixes, and the replies must still come back.
TEST_F(SessionTest, LinkLocalSourcesOpenSessions) {
  FrameSpec ping6 = out("fe80::1", 0, 0, 58);
  ping6.src = *parse_ip("fe80::aa");
  ping6.icmp_type = 128;
  ping6.icmp_id = 9;
  FrameSpec pong6 = back(ping6);
  pong6.icmp_type = 129;
  EXPECT_EQ(send(pong6, 0), Verdict::kUnregistered);  // nothing asked yet
  f_.inside(build_frame(ping6), 1 * kMs);
  EXPECT_EQ(send(pong6, 2 * kMs), Verdict::kPass);
  // IPv4 169.254.0.0/16, a UDP datagram (the inside fast path) and its answer.
  FrameSpec q = out("169.254.1.1", 3784);
  q.src = *parse_ip("169.254.1.2");
  EXPECT_EQ(send(back(q), 2 * kMs), Verdict::kUnregistered);
  f_.inside(build_frame(q), 3 * kMs);
  EXPECT_EQ(send(back(q), 4 * kMs), Verdict::kPass);
  // The addresses next to them are no one's.
  for (const char* src : {"fec0::aa", "169.255.1.2"}) {
    FrameSpec o = ping6;
    o.src = *parse_ip(src);
    if (o.src.is_v4) o = q, o.src = *parse_ip(src);
    f_.inside(build_frame(o), 5 * kMs);
    FrameSpec r = back(o);
    if (!r.dst.is_v4) r.icmp_type = 129;
    EXPECT_EQ(send(r, 6 * kMs), Verdict::kUnregistered) << src;
  }
}

// A node's tunnel to a remote site (GRE, IPsec ESP): no ports, so the session is the two
// addresses and the protocol. Its replies pass, and so does a router's ICMP error about
// it (path MTU discovery of the tunnel).
TEST_F(SessionTest, ProtocolsWithoutPortsOpenSessionsOfTheirAddresses) {
  for (const char* remote : {"198.51.200.47", "2001:2:1::47"}) {
    for (uint8_t proto : {uint8_t{47}, uint8_t{50}}) {
      f_.load(stakegate::testing::base_config());  // a fresh worker for each
      FrameSpec t = out(remote, 0, 0, proto);
      t.src_port = t.dst_port = 0;
      FrameSpec r = back(t);
      EXPECT_EQ(send(r, 0), Verdict::kUnregistered) << remote << " " << int{proto};
      const auto sent = build_frame(t);
      f_.inside(sent, 1 * kMs);
      EXPECT_EQ(send(r, 2 * kMs), Verdict::kPass) << remote << " " << int{proto};
      FrameSpec other = r;
      other.proto = proto == 47 ? 50 : 47;  // the other protocol between the same addresses
      EXPECT_EQ(send(other, 2 * kMs), Verdict::kUnregistered);
      other = r;
      other.src = *parse_ip(r.src.is_v4 ? "198.51.200.48" : "2001:2:1::48");
      EXPECT_EQ(send(other, 2 * kMs), Verdict::kUnregistered);
      const auto error = stakegate::testing::icmp_error_about(sent, *parse_ip(r.src.is_v4 ? "198.51.100.1" : "2001:2:1::1"),
                                                              r.src.is_v4 ? 3 : 2, r.src.is_v4 ? 4 : 0);
      EXPECT_EQ(f_.send(error, 3 * kMs), Verdict::kPass) << remote << " " << int{proto};
      EXPECT_EQ(count(TrafficClass::kInfra, Verdict::kPass), 1u);
      // As long as either side speaks within UDP's timeout (120 s), then gone.
      EXPECT_EQ(send(r, 115 * kS), Verdict::kPass);
      EXPECT_EQ(send(r, 236 * kS), Verdict::kUnregistered);
    }
  }
}

// A host of the inside whose address cluster.prefixes misses opens no session, so the replies
// to its connections are dropped: its packets are counted, with the last address (the
// control loop warns with it), on the fast path and the full one alike.
TEST_F(SessionTest, InsideSourcesOutsideTheClusterPrefixesAreCounted) {
  auto foreign = [&](stakegate::testing::WorkerFixture& f) { return f.worker->counters().inside_foreign; };
  // The cluster's own (IPv4, IPv6), link-local ones, a DHCP client's 0.0.0.0: not counted.
  f_.inside(build_frame(out("198.51.200.53", 53)), 0);
  f_.inside(build_frame(out("2001:db8::53", 53)), 0);
  FrameSpec ll = out("198.51.200.53", 53);
  ll.src = *parse_ip("169.254.3.3");
  f_.inside(build_frame(ll), 0);
  ll = out("2001:db8::53", 53);
  ll.src = *parse_ip("fe80::3");
  f_.inside(build_frame(ll), 0);
  FrameSpec dhcp = out("255.255.255.255", 67, 68);
  dhcp.src = *parse_ip("0.0.0.0");
  f_.inside(build_frame(dhcp), 0);
  // A node renewing its lease from its own address (68 -> 67, its session new, then live).
  const FrameSpec renew = out("198.51.200.67", 67, 68);
  f_.inside(build_frame(renew), 0);
  f_.inside(build_frame(renew), 0);
  EXPECT_EQ(foreign(f_), 0u);
  EXPECT_EQ(f_.worker->counters().inside_foreign_v4, 0u);
  // A node at 198.18.7.7: its TCP segment (the fast path) and its ping (the full path).
  FrameSpec tcp = out("198.51.200.80", 443, 41000, 6);
  tcp.src = *parse_ip("198.18.7.7");
  f_.inside(build_frame(tcp), 1 * kMs);
  EXPECT_EQ(foreign(f_), 1u);
  EXPECT_EQ(f_.worker->counters().inside_foreign_v4, (uint64_t{1} << 32) | parse_ip("198.18.7.7")->v4);
  EXPECT_EQ(send(back(tcp), 2 * kMs), Verdict::kUnregistered);  // what the count warns of: no session
  FrameSpec ping = out("198.51.200.80", 0, 0, 1);
  ping.src = *parse_ip("198.18.7.8");
  f_.inside(build_frame(ping), 3 * kMs);
  EXPECT_EQ(foreign(f_), 2u);
  EXPECT_EQ(f_.worker->counters().inside_foreign_v4, (uint64_t{1} << 32) | parse_ip("198.18.7.8")->v4);
  // IPv6: the /64 is kept (2001:2::ff/128 is the cluster's; 2001:2::1 is not).
  FrameSpec v6 = out("2001:db8::53", 53);
  v6.src = *parse_ip("2001:2::1");
  f_.inside(build_frame(v6), 4 * kMs);
  EXPECT_EQ(foreign(f_), 3u);
  EXPECT_EQ(f_.worker->counters().inside_foreign_v6, 0x2001000200000000ull);
  // Without cluster.prefixes every source opens sessions: nothing is foreign.
  std::string cfg = stakegate::testing::base_config();
  cfg.erase(cfg.find("cluster:"), cfg.find('\n', cfg.find("cluster:")) - cfg.find("cluster:") + 1);
  stakegate::testing::WorkerFixture open;
  open.load(cfg);
  open.inside(build_frame(tcp), 0);
  open.inside(build_frame(v6), 0);
  EXPECT_EQ(foreign(open), 0u);
  EXPECT_EQ(open.send(build_frame(back(tcp)), 1 * kMs), Verdict::kPass);
}

// A cluster source from the outside is spoofed wherever it goes; to another cluster address
// it is also what a router routing the nodes' traffic to each other sends back: counted apart.
TEST_F(SessionTest, ClusterToClusterFromTheOutsideIsCountedApart) {
  FrameSpec f = back(out("198.51.200.53", 53));
  f.src = *parse_ip("198.18.255.9");  // a cluster address, to the cluster's 198.18.255.1
  EXPECT_EQ(send(f, 0), Verdict::kSpoofed);
  f.dst = *parse_ip("198.51.200.53");  // to elsewhere
  EXPECT_EQ(send(f, 0), Verdict::kSpoofed);
  EXPECT_EQ(count(TrafficClass::kNone, Verdict::kSpoofed), 2u);
  EXPECT_EQ(f_.worker->counters().spoofed_internal, 1u);
}

TEST_F(SessionTest, AFullTableRecyclesTheSessionThatExpiresFirstAndCountsIt) {
  for (uint16_t p = 0; p < 6000; ++p) f_.inside(build_frame(out("198.51.200.53", 53, static_cast<uint16_t>(20000 + p))), p);
  EXPECT_GT(f_.worker->counters().sessions_evicted, 0u);  // 4,096 entries
  EXPECT_EQ(f_.worker->counters().sessions_created, 6000u);
  EXPECT_EQ(send(back(out("198.51.200.53", 53, 25999)), 6000), Verdict::kPass);  // the newest is there
}

TEST_F(SessionTest, AStakedPeersUdpReplyUsesTheSessionsBudgetNotItsRequestChannel) {
  // The cluster asks the staked node 198.18.1.1 something over UDP. Its reply proves
  // nothing about who sent it, so it is not charged to the node; and a spoofer who filled
  // the node's request channel with forged datagrams does not stop it either.
  const uint32_t slot = f_.slot_of("198.18.1.1");
  FrameSpec forged = out("198.18.1.1", 3569, 40000);
  forged = back(forged);
  forged.src_port = 5353;  // to the node port, not on any session
  forged.dst_port = 3569;
  for (int i = 0; i < 1000; ++i) send(forged, 0);
  EXPECT_GT(f_.worker->meter_cold(slot).dropped_request, 900u);
  FrameSpec q = out("198.18.1.1", 3569, 41000);
  f_.inside(build_frame(q), 0);
  EXPECT_EQ(send(back(q), 1 * kMs), Verdict::kPass);
  EXPECT_EQ(f_.worker->meter_cold(slot).passed_session, 1u);
  EXPECT_EQ(f_.meter("198.18.1.1").passed, 0u);  // not its allowance
  // Its reply to a datagram the cluster sent from a port it serves (a session it
  // accepted) is a request like any other.
  FrameSpec served = out("198.18.1.1", 41001, 3569);
  f_.inside(build_frame(served), 2 * kMs);
  const uint64_t requests = f_.worker->meter_cold(slot).passed_request + f_.worker->meter_cold(slot).dropped_request;
  send(back(served), 2 * kMs);
  EXPECT_EQ(f_.worker->meter_cold(slot).passed_request + f_.worker->meter_cold(slot).dropped_request, requests + 1);
}

TEST_F(SessionTest, OnAVerifiedConnectionGuessesFarFromItsNumbersAreNotItsTraffic) {
  // An unregistered web server the cluster fetches from. After verification, a packet on
  // its 4-tuple counts as the connection's only with an acknowledgement at most 256 KiB
  // behind the highest one it sent, and a RST closes it only at the exact sequence.
  TcpFlow web = opened_web(41001);
  for (int i = 0; i < 4; ++i) f_.inside(web.local_data(), 0);
  EXPECT_EQ(f_.send(web.remote_data(), 0), Verdict::kPass);
  const uint64_t passed = count(TrafficClass::kUnregistered, Verdict::kPass);
  // An old acknowledgement, 1 MiB behind: not the connection's (and not a reply either).
  EXPECT_EQ(f_.send(web.forged(web.remote_seq, web.local_seq - (1u << 20)), 0), Verdict::kUnregistered);
  // Beyond what the cluster sent: neither.
  EXPECT_EQ(f_.send(web.forged(web.remote_seq, web.local_seq + 1000), 0), Verdict::kUnregistered);
  // A RST inside the window but not at the expected sequence: it passes (it may be real:
  // the cluster decides) but does not close the session.
  EXPECT_EQ(f_.send(web.forged(web.remote_seq + 100, web.local_seq, 0x14), 0), Verdict::kPass);
  EXPECT_EQ(f_.send(web.remote_data(), 20 * kS), Verdict::kPass);  // still open past tcp_closed (10 s)
  EXPECT_EQ(count(TrafficClass::kUnregistered, Verdict::kPass), passed + 2);
}

// A session between 198.18.255.1 (the cluster) and 198.51.0.1.
SessionKey table_key(uint16_t lport, uint16_t rport, uint8_t proto) {
  SessionKey k;
  k.local = mapped_v4(0xC612FF01);
  k.remote = mapped_v4(0xC6330001);
  k.lport = lport;
  k.rport = rport;
  k.proto = proto;
  return k;
}

TEST(SessionTable, VerifiedAndClusterOpenedSessionsAreEvictedLast) {
  SessionTable t(8, 1);  // one set of eight ways
  auto key = [](uint16_t p) { return table_key(3569, p, kProtoTcp); };
  bool created, evicted;
  std::vector<Session*> s;
  for (uint16_t p = 0; p < 8; ++p) {
    s.push_back(t.upsert(key(p), t.hash(key(p)), 0, created, evicted));
    EXPECT_TRUE(created);
    EXPECT_FALSE(evicted);
  }
  // The first expires soonest but is a verified connection; the second was opened by the
  // cluster; the rest are half-open connections it accepted, expiring later.
  s[0]->flags = Session::kVerified;
  t.extend_keep(s[0], 100);
  s[1]->flags = Session::kOpened;
  t.extend_keep(s[1], 110);
  for (int i = 2; i < 8; ++i) t.extend_keep(s[i], 200 + i);
  Session* fresh = t.upsert(key(100), t.hash(key(100)), 10, created, evicted);
  EXPECT_TRUE(created && evicted);
  EXPECT_NE(t.find(key(0), t.hash(key(0)), 10), nullptr);
  EXPECT_NE(t.find(key(1), t.hash(key(1)), 10), nullptr);
  EXPECT_EQ(t.find(key(2), t.hash(key(2)), 10), nullptr);  // the half-open one expiring first went
  fresh->flags = Session::kVerified;
  t.extend_keep(fresh, 300);
  // Five more take the other half-open ones' ways; the sixth finds only kept sessions and
  // takes the one expiring first.
  for (uint16_t p = 101; p < 107; ++p) {
    Session* x = t.upsert(key(p), t.hash(key(p)), 10, created, evicted);
    EXPECT_TRUE(evicted);
    x->flags = Session::kVerified;
    t.extend_keep(x, 300);
  }
  EXPECT_EQ(t.find(key(0), t.hash(key(0)), 10), nullptr);  // deadline 100, the earliest
  EXPECT_NE(t.find(key(1), t.hash(key(1)), 10), nullptr);
  EXPECT_NE(t.find(key(100), t.hash(key(100)), 10), nullptr);
}

// The set is scanned all at once (SSE2): each way's signature, keep bit and deadline must
// count on its own, across the tick counter's wrap.
TEST(SessionTable, EveryWayIsFoundWhileLiveAndNotAfter) {
  SessionTable t(8, 7);  // one set of eight ways
  auto key = [](uint16_t p) { return table_key(40000, p, kProtoUdp); };
  const uint32_t base = 0xFFFFFFF0u;  // deadlines straddle the wrap
  bool created, evicted;
  for (uint16_t p = 0; p < 8; ++p) {
    Session* s = t.upsert(key(p), t.hash(key(p)), base, created, evicted);
    ASSERT_TRUE(created);
    s->flags = (p % 2) ? Session::kOpened : 0;  // every other way carries the keep bit
    t.extend_keep(s, base + 4 * p);             // way p lives until base + 4p
  }
  for (uint32_t dt = 0; dt <= 32; ++dt) {
    const uint32_t now = base + dt;
    for (uint16_t p = 0; p < 8; ++p) {
      const uint64_t h = t.hash(key(p));
      EXPECT_EQ(t.find(key(p), h, now) != nullptr, dt <= 4u * p) << "way " << p << " at +" << dt;
      EXPECT_EQ(t.candidates(h, now) != 0, dt <= 4u * p) << "way " << p << " at +" << dt;
    }
  }
  EXPECT_EQ(t.find(key(9), t.hash(key(9)), base), nullptr);  // never inserted
}

// Deadlines are 32-bit ticks (16.8 ms) compared by the sign of their difference: a way
// left dead for 2^31 ticks (417 days) would look live again. sweep() empties it first.
TEST(SessionTable, SweepEmptiesDeadWaysBeforeTheirDeadlinesWrap) {
  SessionTable t(16, 7);  // two sets
  const SessionKey k = table_key(40000, 53, kProtoUdp);
  const uint64_t h = t.hash(k);
  bool created, evicted;
  t.extend(t.upsert(k, h, 100, created, evicted), 110);
  const uint32_t later = 110 + (1u << 31) + 50;  // 417 days after it died
  EXPECT_EQ(t.find(k, h, 111), nullptr);
  EXPECT_NE(t.find(k, h, later), nullptr);  // what the sweep is for
  t.sweep(105, 2);  // still live: kept
  EXPECT_NE(t.find(k, h, 105), nullptr);
  t.sweep(111, 2);  // dead: emptied
  EXPECT_EQ(t.find(k, h, later), nullptr);
  // Nothing counts as evicted when the way is taken again.
  t.upsert(k, h, later, created, evicted);
  EXPECT_TRUE(created);
  EXPECT_FALSE(evicted);
}

TEST(SolicitationTable, SweepForgetsRequestsBeforeTheirDeadlinesWrap) {
  const Ip6 target = parse_ip("2001:2::1")->v6;
  const uint32_t within = static_cast<uint32_t>(SolicitationTable::kNeighbourWithinNs >> kTickShift);
  const uint32_t later = within + (1u << 31) + 50;
  SolicitationTable kept(3), swept(3);
  kept.note(target, 0);
  swept.note(target, 0);
  for (size_t i = 0; i < SolicitationTable::kEntries; ++i) {
    kept.sweep(i, within - 1);  // not expired yet: stays
    swept.sweep(i, within + 1);
  }
  EXPECT_TRUE(kept.take_answer(target, within - 1));
  EXPECT_TRUE(kept.take_answer(target, later));  // unswept, it would look current again
  EXPECT_FALSE(swept.take_answer(target, later));
}

TEST(SessionKey, IPv4IsStoredMappedAndComparedWhole) {
  Ip6 m = mapped_v4(0xC612FF01);  // 198.18.255.1
  Ip6 want{};
  want.bytes[10] = want.bytes[11] = 0xff;
  want.bytes[12] = 198, want.bytes[13] = 18, want.bytes[14] = 255, want.bytes[15] = 1;
  EXPECT_EQ(m, want);  // ::ffff:198.18.255.1
  SessionKey a, b;
  a.local = b.local = m;
  a.remote = b.remote = mapped_v4(0xC6330001);
  a.lport = b.lport = 40000;
  a.proto = b.proto = 6;
  EXPECT_TRUE(a == b);
  b.remote.bytes[15] ^= 1;
  EXPECT_FALSE(a == b);
  b = a;
  b.rport = 1;
  EXPECT_FALSE(a == b);
  b = a;
  b.lport = 40001;
  EXPECT_FALSE(a == b);
  b = a;
  b.proto = 17;
  EXPECT_FALSE(a == b);
  b = a;
  b.local.bytes[0] = 1;
  EXPECT_FALSE(a == b);
}

namespace {
// The fast path hashes an IPv4 key from its parts; the session it finds must be the one
// the full path's SessionKey finds.
TEST(SessionTable, Ipv4HashAndLookupMatchTheKeys) {
  SessionTable t(4096, 99);
  std::mt19937_64 rng(5);
  for (int i = 0; i < 2000; ++i) {
    const uint32_t local = static_cast<uint32_t>(rng()), remote = static_cast<uint32_t>(rng());
    const uint16_t lport = static_cast<uint16_t>(rng()), rport = static_cast<uint16_t>(rng());
    const uint8_t proto = i % 2 ? kProtoTcp : kProtoUdp;
    SessionKey k;
    k.local = mapped_v4(local);
    k.remote = mapped_v4(remote);
    k.lport = lport;
    k.rport = rport;
    k.proto = proto;
    const uint64_t h = t.hash(k);
    ASSERT_EQ(t.hash_v4(local, remote, lport, rport, proto), h);
    bool created = false, evicted = false;
    Session* s = t.upsert(k, h, 10, created, evicted);
    t.extend(s, 1000);
    const unsigned ways = t.candidates(h, 10);
    EXPECT_EQ(t.find_in_v4(h, ways, local, remote, lport, rport, proto), s);
    // Any one part different is another session.
    EXPECT_EQ(t.find_in_v4(h, ways, local ^ 1, remote, lport, rport, proto), nullptr);
    EXPECT_EQ(t.find_in_v4(h, ways, local, remote ^ 0x80000000u, lport, rport, proto), nullptr);
    EXPECT_EQ(t.find_in_v4(h, ways, local, remote, static_cast<uint16_t>(lport + 1), rport, proto), nullptr);
    EXPECT_EQ(t.find_in_v4(h, ways, local, remote, lport, static_cast<uint16_t>(rport ^ 0x100), proto), nullptr);
    EXPECT_EQ(t.find_in_v4(h, ways, local, remote, lport, rport, kProtoIcmp), nullptr);
  }
  // An IPv6 session whose last bytes look like a mapped address is not an IPv4 one.
  SessionKey k6;
  k6.local = mapped_v4(0xC612FF01);
  k6.remote = mapped_v4(0xC6120101);
  k6.local.bytes[0] = 0x20;
  k6.lport = 3569;
  k6.rport = 40000;
  k6.proto = kProtoTcp;
  const uint64_t h6 = t.hash(k6);
  bool created = false, evicted = false;
  t.extend(t.upsert(k6, h6, 10, created, evicted), 1000);
  EXPECT_EQ(t.find_in_v4(h6, t.candidates(h6, 10), 0xC612FF01, 0xC6120101, 3569, 40000, kProtoTcp), nullptr);
}
}  // namespace

namespace {
// An IPv6 neighbour solicitation (135) or advertisement (136) from `src` about `target`.
std::vector<uint8_t> neighbour_frame(const char* src, const char* dst, const char* target, uint8_t type, uint8_t hops = 255) {
  FrameSpec f;
  f.src = *parse_ip(src);
  f.dst = *parse_ip(dst);
  f.proto = 58;
  f.icmp_type = type;
  f.ttl = hops;
  const IpAddr t = *parse_ip(target);
  f.payload.assign(t.v6.bytes.begin(), t.v6.bytes.end());
  return build_frame(f);
}
// The frame from another source MAC (02:00:00:00:00:xx; the builders' own is ...:01).
std::vector<uint8_t> from_mac(std::vector<uint8_t> frame, uint8_t last) {
  frame[11] = last;
  return frame;
}
// The frame with no source MAC at all (as replay reads a raw IP capture).
std::vector<uint8_t> from_mac_zero(std::vector<uint8_t> frame) {
  std::fill(frame.begin() + 6, frame.begin() + 12, 0);
  return frame;
}
}  // namespace

// An on-link flood drains the infra budget (ARP, neighbour discovery); the answers to the
// cluster's own requests pass all the same, a few per request and for a few seconds, so the
// cluster keeps resolving its router. Nothing else gets through on them.
TEST_F(SessionTest, AnswersToTheClustersOwnNeighbourRequestsPassThroughAFlood) {
  const IpAddr cluster = *parse_ip("198.18.255.1"), router = *parse_ip("198.18.254.1");
  const IpAddr flooder = *parse_ip("198.18.254.66");
  auto flood = [&](uint64_t now) {  // 150 requests: the budget's 100 and more
    for (int i = 0; i < 150; ++i) f_.send(from_mac(stakegate::testing::build_arp(flooder, cluster), 0x66), now);
  };
  const auto reply = stakegate::testing::build_arp(router, cluster, 2);
  flood(0);
  EXPECT_EQ(f_.send(reply, 0), Verdict::kInfraOverRate);  // unsolicited: the budget, which is empty
  f_.inside(stakegate::testing::build_arp(cluster, router), 0);  // the cluster asks for its router
  EXPECT_EQ(f_.send(reply, 0), Verdict::kPass);
  EXPECT_EQ(f_.send(reply, 0), Verdict::kPass);           // a second answer
  EXPECT_EQ(f_.send(reply, 0), Verdict::kInfraOverRate);  // no more on that request
  EXPECT_EQ(f_.send(from_mac(stakegate::testing::build_arp(flooder, cluster, 2), 0x66), 0), Verdict::kInfraOverRate);
  EXPECT_EQ(f_.send(from_mac(stakegate::testing::build_arp(router, cluster), 0x66), 0), Verdict::kInfraOverRate);
  EXPECT_EQ(f_.worker->counters().neighbour_answers, 2u);
  // A request's answers are awaited for 3 s.
  f_.inside(stakegate::testing::build_arp(cluster, router), 2 * kS);
  flood(5 * kS + 100 * kMs);
  EXPECT_EQ(f_.send(reply, 5 * kS + 100 * kMs), Verdict::kInfraOverRate);
  f_.inside(stakegate::testing::build_arp(cluster, router), 5 * kS + 200 * kMs);
  EXPECT_EQ(f_.send(reply, 5 * kS + 300 * kMs), Verdict::kPass);

  // IPv6: the cluster's solicitation, the router's advertisement (its target is the router).
  flood(10 * kS);
  const auto na = from_mac(neighbour_frame("fe80::1", "2001:2::ff", "fe80::1", 136), 0x44);
  EXPECT_EQ(f_.send(na, 10 * kS), Verdict::kInfraOverRate);
  f_.inside(neighbour_frame("2001:2::ff", "ff02::1:ff00:1", "fe80::1", 135), 10 * kS);
  EXPECT_EQ(f_.send(neighbour_frame("fe80::1", "2001:2::ff", "fe80::1", 136, 64), 10 * kS), Verdict::kUnregistered);
  EXPECT_EQ(f_.send(from_mac(neighbour_frame("fe80::2", "2001:2::ff", "fe80::2", 136), 0x77), 10 * kS),
            Verdict::kInfraOverRate);
  EXPECT_EQ(f_.send(na, 10 * kS), Verdict::kPass);
  EXPECT_EQ(count(TrafficClass::kInfra, Verdict::kPass), 1u);
  EXPECT_EQ(f_.worker->counters().neighbour_answers, 4u);
}

// With several workers a request and its answer may reach different workers: a first
// neighbour solicitation goes to the target's solicited-node multicast group (the inside's
// RSS hashes that group), the router answers from its own address (the outside hashes
// that). The workers share one table of the cluster's requests, as DataPlane sets them up,
// so the answer passes through a flood on whichever worker it reaches.
TEST_F(SessionTest, AnAnswerPassesOnAnotherWorkerThanItsRequest) {
  Worker::Sizes sizes;
  sizes.unregistered = 1024;
  sizes.sources = f_.snap->source_count();
  sizes.sessions = f_.sessions;
  Worker a(sizes, 1), b(sizes, 2);
  auto outside = [](Worker& w, const std::vector<uint8_t>& frame, uint64_t now) {
    PacketView v{frame.data(), static_cast<uint32_t>(frame.size())};
    Verdict out;
    w.process_outside(&v, 1, now, &out);
    return out;
  };
  auto inside = [](Worker& w, const std::vector<uint8_t>& frame, uint64_t now) {
    PacketView v{frame.data(), static_cast<uint32_t>(frame.size())};
    w.process_inside(&v, 1, now);
  };
  auto run = [&](Worker& asks, Worker& answered) {  // how many of three answers pass during a flood
    asks.bind(f_.snap.get());
    answered.bind(f_.snap.get());
    const auto flood = from_mac(neighbour_frame("fe80::66", "ff02::1", "fe80::66", 136), 0x66);
    for (int i = 0; i < 150; ++i) outside(answered, flood, 0);  // the budget's 100 and more
    inside(asks, neighbour_frame("2001:2::ff", "ff02::1:ff00:1", "2001:2::1", 135), 0);
    inside(asks, stakegate::testing::build_arp(*parse_ip("198.18.255.1"), *parse_ip("198.18.254.1")), 0);
    int n = 0;
    for (int i = 0; i < 3; ++i) {
      n += outside(answered, neighbour_frame("2001:2::1", "2001:2::ff", "2001:2::1", 136), 0) == Verdict::kPass;
      n += outside(answered, stakegate::testing::build_arp(*parse_ip("198.18.254.1"), *parse_ip("198.18.255.1"), 2), 0) ==
           Verdict::kPass;
    }
    return n;
  };
  EXPECT_EQ(run(a, b), 0);  // each worker with its own table: worker b never saw the requests
  EXPECT_EQ(a.counters().neighbour_answers + b.counters().neighbour_answers, 0u);
  SolicitationTable shared(7);
  Worker c(sizes, 3), d(sizes, 4);
  c.share_solicitations(shared);
  d.share_solicitations(shared);
  EXPECT_EQ(run(c, d), 4);  // two answers to each request, on the other worker
  EXPECT_EQ(d.counters().neighbour_answers, 4u);
  EXPECT_EQ(c.counters().neighbour_answers, 0u);
}

// The upstream router, listed in infra.neighbours: its own requests for the cluster's
// addresses take a budget of their own, so it keeps resolving the cluster through a flood
// from another host of the link. Answering the cluster makes no MAC a listed neighbour.
TEST_F(SessionTest, ListedNeighboursHaveABudgetOfTheirOwn) {
  f_.load(stakegate::testing::base_config() + "infra: {neighbours: [\"02:00:00:00:00:01\", \"02:00:00:00:00:02\"]}\n");
  const IpAddr cluster = *parse_ip("198.18.255.1"), router = *parse_ip("198.18.254.1");
  const IpAddr flooder = *parse_ip("198.18.254.66");
  auto flood = [&](uint64_t now) {
    for (int i = 0; i < 150; ++i) f_.send(from_mac(stakegate::testing::build_arp(flooder, cluster), 0x66), now);
  };
  auto requests = [&](uint8_t mac, uint64_t now) {  // how many of 150 pass
    int n = 0;
    for (int i = 0; i < 150; ++i) n += f_.send(from_mac(stakegate::testing::build_arp(router, cluster), mac), now) == Verdict::kPass;
    return n;
  };
  flood(0);
  EXPECT_EQ(requests(0x66, 0), 0);   // the flooder's MAC: the shared budget, drained
  EXPECT_EQ(requests(0x01, 0), 100);  // the router's: its own, infra.pps and 100 ms deep
  EXPECT_EQ(requests(0x02, 0), 100);  // the second router's: its own too
  EXPECT_EQ(f_.worker->counters().listed_neighbour_passes, 200u);
  // Neighbour discovery from a listed MAC too (a router solicits from its link-local address).
  EXPECT_EQ(f_.send(neighbour_frame("fe80::1", "ff02::1:ff00:ff", "2001:2::ff", 135), 1 * kS), Verdict::kPass);
  // A host the cluster resolved (and that answered) gains nothing beyond the answers.
  flood(2 * kS);
  f_.inside(stakegate::testing::build_arp(cluster, flooder), 2 * kS);
  const auto answer = from_mac(stakegate::testing::build_arp(flooder, cluster, 2), 0x66);
  EXPECT_EQ(f_.send(answer, 2 * kS), Verdict::kPass);
  EXPECT_EQ(f_.send(answer, 2 * kS), Verdict::kPass);
  EXPECT_EQ(requests(0x66, 2 * kS), 0);
  // A reload that drops the first neighbour, adopted by the same worker: its frames take the
  // shared budget again; the other keeps a budget of its own.
  f_.cfg = parse_config(stakegate::testing::base_config() + "infra: {neighbours: [\"02:00:00:00:00:02\"]}\n", "t.yaml");
  f_.plan = make_stake_plan(f_.cfg, f_.nodes);
  auto reloaded = SnapshotBuilder::build(f_.cfg, f_.plan, Sharding::even(1), f_.snap.get());
  f_.worker->bind(reloaded.get());
  f_.snap = reloaded;
  flood(2 * kS);
  EXPECT_EQ(requests(0x01, 2 * kS), 0);
  EXPECT_EQ(requests(0x02, 2 * kS), 100);
}

// With the router's addresses listed in infra.neighbours, ARP and neighbour discovery from
// the outside claiming one of them must come from its MAC (Ethernet source, and the
// sender's or target's hardware address inside): another host of the link cannot take the
// router's place in the nodes' caches, nor spend the answers to the cluster's requests.
TEST_F(SessionTest, NeighbourAddressesAreClaimedOnlyByTheirMac) {
  const std::string tail =
      "infra: {neighbours: [{mac: \"02:00:00:00:00:01\", addresses: [198.18.254.1, \"fe80::1\"]}]}\n";
  f_.load(stakegate::testing::base_config("", tail));
  const IpAddr cluster = *parse_ip("198.18.255.1"), router = *parse_ip("198.18.254.1");
  const IpAddr other = *parse_ip("198.18.254.66");
  auto impostors = [&] { return f_.worker->counters().neighbour_impostors; };
  auto sha = [](std::vector<uint8_t> frame, uint8_t last) {  // the ARP sender hardware address
    frame[27] = last;
    return frame;
  };
  const auto reply = stakegate::testing::build_arp(router, cluster, 2);  // from ...:01 in both places
  EXPECT_EQ(f_.send(reply, 0), Verdict::kPass);
  EXPECT_EQ(f_.send(from_mac(reply, 0x66), 0), Verdict::kSpoofed);  // another Ethernet source
  EXPECT_EQ(f_.send(sha(reply, 0x66), 0), Verdict::kSpoofed);       // the router's source, another sender MAC
  EXPECT_EQ(f_.send(from_mac(sha(stakegate::testing::build_arp(router, router), 0x66), 0x66), 0),
            Verdict::kSpoofed);  // a gratuitous ARP for the router's address
  EXPECT_EQ(impostors(), 3u);
  EXPECT_EQ(count(TrafficClass::kNone, Verdict::kSpoofed), 3u);
  // Another host's own address is no concern of the guard.
  EXPECT_EQ(f_.send(from_mac(sha(stakegate::testing::build_arp(other, cluster, 2), 0x66), 0x66), 0), Verdict::kPass);
  // The cluster asks for its router: an impostor's answers are spoofed, and leave the
  // answers to the real one.
  f_.inside(stakegate::testing::build_arp(cluster, router), 1 * kS);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(f_.send(from_mac(sha(reply, 0x66), 0x66), 1 * kS), Verdict::kSpoofed);
  EXPECT_EQ(f_.worker->counters().neighbour_answers, 0u);
  EXPECT_EQ(f_.send(reply, 1 * kS), Verdict::kPass);
  EXPECT_EQ(f_.worker->counters().neighbour_answers, 1u);
  EXPECT_EQ(impostors(), 6u);

  // IPv6: a message's source address and an advertisement's target are its claims; a
  // link-layer address option (source: 1, target: 2) must carry the listed MAC too.
  auto nd = [](const char* src, uint8_t type, const char* target, int option, uint8_t option_mac, uint8_t eth) {
    FrameSpec f;
    f.src = *parse_ip(src);
    f.dst = *parse_ip("ff02::1");
    f.proto = 58;
    f.icmp_type = type;
    f.ttl = 255;
    static constexpr size_t kBody[] = {0, 8, 16, 16, 32};  // after the 8-byte ICMP header: RS, RA, NS, NA, redirect
    f.payload.assign(kBody[type - 133], 0);
    if (target) {
      const IpAddr t = *parse_ip(target);
      std::copy(t.v6.bytes.begin(), t.v6.bytes.end(), f.payload.begin());
    }
    if (option) f.payload.insert(f.payload.end(), {static_cast<uint8_t>(option), 1, 2, 0, 0, 0, 0, option_mac});
    return from_mac(build_frame(f), eth);
  };
  const uint64_t t = 2 * kS;
  EXPECT_EQ(f_.send(nd("fe80::1", 136, "fe80::1", 2, 0x01, 0x01), t), Verdict::kPass);
  EXPECT_EQ(f_.send(nd("fe80::1", 136, "fe80::1", 2, 0x01, 0x66), t), Verdict::kSpoofed);  // Ethernet source
  EXPECT_EQ(f_.send(nd("fe80::1", 136, "fe80::1", 2, 0x66, 0x01), t), Verdict::kSpoofed);  // target link-layer address
  EXPECT_EQ(f_.send(nd("fe80::5", 136, "fe80::1", 0, 0, 0x66), t), Verdict::kSpoofed);     // the target is the claim
  EXPECT_EQ(f_.send(nd("fe80::1", 134, nullptr, 1, 0x01, 0x01), t), Verdict::kPass);       // the router's advertisement
  EXPECT_EQ(f_.send(nd("fe80::1", 134, nullptr, 1, 0x66, 0x01), t), Verdict::kSpoofed);    // source link-layer address
  EXPECT_EQ(f_.send(nd("fe80::1", 135, "2001:2::ff", 1, 0x01, 0x01), t), Verdict::kPass);  // it resolves a node
  EXPECT_EQ(f_.send(nd("fe80::1", 135, "2001:2::ff", 1, 0x66, 0x66), t), Verdict::kSpoofed);
  // A redirect's target link-layer address is the better first hop's, not its sender's.
  EXPECT_EQ(f_.send(nd("fe80::1", 137, "fe80::9", 2, 0x99, 0x01), t), Verdict::kPass);
  EXPECT_EQ(f_.send(nd("fe80::5", 136, "fe80::5", 2, 0x66, 0x66), t), Verdict::kPass);  // not a listed address
  // Without an Ethernet source (a replayed raw IP capture), the options still speak.
  EXPECT_EQ(f_.send(from_mac_zero(nd("fe80::1", 136, "fe80::1", 2, 0x01, 0x01)), t), Verdict::kPass);
  EXPECT_EQ(f_.send(from_mac_zero(nd("fe80::1", 136, "fe80::1", 2, 0x66, 0x01)), t), Verdict::kSpoofed);
  EXPECT_EQ(f_.send(from_mac_zero(reply), t), Verdict::kPass);
  EXPECT_EQ(f_.send(from_mac_zero(sha(reply, 0x66)), t), Verdict::kSpoofed);
  // An option of length 0 makes hosts discard the message: nothing to guard, and the scan ends.
  auto zero = nd("fe80::1", 136, "fe80::1", 2, 0x66, 0x01);
  zero[zero.size() - 7] = 0;
  EXPECT_EQ(f_.send(zero, t), Verdict::kPass);
  EXPECT_EQ(impostors(), 13u);

  // Without addresses listed, nothing is guarded: the same impostor passes, as before.
  f_.load(stakegate::testing::base_config("", "infra: {neighbours: [\"02:00:00:00:00:01\"]}\n"));
  EXPECT_EQ(f_.send(from_mac(sha(reply, 0x66), 0x66), 0), Verdict::kPass);
  EXPECT_EQ(f_.send(nd("fe80::1", 136, "fe80::1", 2, 0x66, 0x66), 0), Verdict::kPass);
  EXPECT_EQ(impostors(), 0u);
}

// infra.routing: the router's BFD, BGP and OSPF reach the cluster when only the router can
// have sent them: from its MAC and a listed address, with TTL 255 (GTSM) or to a
// link-local group. The same packets forwarded from elsewhere (a lower TTL), from another
// host's MAC or another address, or of a protocol not listed, are judged as any other
// traffic of an unregistered source (dropped: no public port). Each neighbour's routing
// budget is its own: its ARP passes while its BGP has spent it.
TEST_F(SessionTest, TheRoutersRoutingProtocolsPassOnlyWhenSentOnTheLink) {
  const std::string neighbours =
      "infra: {neighbours: [{mac: \"02:00:00:00:00:01\", addresses: [198.18.254.1, \"fe80::1\"]}]";
  auto spec = [](const char* src, const char* dst, uint8_t proto, uint16_t sport, uint16_t dport, uint8_t ttl) {
    FrameSpec f;
    f.src = *parse_ip(src);
    f.dst = *parse_ip(dst);
    f.proto = proto;
    f.src_port = sport;
    f.dst_port = dport;
    f.ttl = ttl;
    f.tcp_flags = 0x02;  // a SYN, for TCP
    return f;
  };
  auto datagram = [&](const char* src, const char* dst, uint8_t proto, uint16_t sport, uint16_t dport, uint8_t ttl) {
    return build_frame(spec(src, dst, proto, sport, dport, ttl));
  };
  const auto bfd = datagram("198.18.254.1", "198.18.255.1", 17, 49152, 3784, 255);
  // Without infra.routing, the router's BFD is what any unregistered source's datagram to a
  // closed port is.
  f_.load(stakegate::testing::base_config("", neighbours + "}\n"));
  EXPECT_EQ(f_.send(bfd, 0), Verdict::kUnregistered);

  f_.load(stakegate::testing::base_config("", neighbours + ", routing: [bgp, bfd, ospf], routing_pps: 100}\n"));
  EXPECT_EQ(f_.send(bfd, 0), Verdict::kPass);
  EXPECT_EQ(f_.send(datagram("198.18.254.1", "198.18.255.1", 17, 49152, 3784, 254), 0), Verdict::kUnregistered);
  EXPECT_EQ(f_.send(from_mac(bfd, 0x66), 0), Verdict::kUnregistered);  // another host of the link
  EXPECT_EQ(f_.send(datagram("198.18.254.2", "198.18.255.1", 17, 49152, 3784, 255), 0), Verdict::kUnregistered);
  EXPECT_EQ(f_.send(datagram("198.18.254.1", "198.18.255.1", 17, 49152, 3785, 255), 0), Verdict::kUnregistered);
  // BGP with GTSM, either way round: the router's connection to the node, or its answers on
  // the node's; never at a lower TTL.
  EXPECT_EQ(f_.send(datagram("198.18.254.1", "198.18.255.1", 6, 40000, 179, 255), 0), Verdict::kPass);
  EXPECT_EQ(f_.send(datagram("198.18.254.1", "198.18.255.1", 6, 179, 40001, 255), 0), Verdict::kPass);
  EXPECT_EQ(f_.send(datagram("198.18.254.1", "198.18.255.1", 6, 40000, 179, 1), 0), Verdict::kUnregistered);
  // OSPF hellos to AllSPFRouters at TTL 1 (IPv4) and from the router's link-local address
  // (OSPFv3); unicast at TTL 1 proves nothing (a remote forger can arrive so).
  EXPECT_EQ(f_.send(datagram("198.18.254.1", "224.0.0.5", 89, 0, 0, 1), 0), Verdict::kPass);
  EXPECT_EQ(f_.send(datagram("fe80::1", "ff02::5", 89, 0, 0, 1), 0), Verdict::kPass);
  EXPECT_EQ(f_.send(datagram("198.18.254.1", "198.18.255.1", 89, 0, 0, 1), 0), Verdict::kUnregistered);
  // PIM is not listed.
  EXPECT_EQ(f_.send(datagram("198.18.254.1", "224.0.0.13", 103, 0, 0, 1), 0), Verdict::kUnregistered);
  // A fragment proves its TTL but cannot show its ports: only whole datagrams.
  FrameSpec frag = spec("198.18.254.1", "198.18.255.1", 17, 49152, 3784, 255);
  frag.more_fragments = true;
  EXPECT_EQ(f_.send(build_frame(frag), 0), Verdict::kUnregistered);
  EXPECT_EQ(f_.worker->counters().routing_passes, 5u);
  EXPECT_EQ(count(TrafficClass::kInfra, Verdict::kPass), 5u);

  // routing_pps 100, 100 ms deep: 10 packets from idle, 5 spent. Past them, infra_over_rate.
  int passed = 0;
  for (int i = 0; i < 20; ++i) passed += f_.send(bfd, 0) == Verdict::kPass;
  EXPECT_EQ(passed, 5);
  EXPECT_EQ(f_.worker->counters().routing_over_rate, 15u);
  EXPECT_EQ(count(TrafficClass::kInfra, Verdict::kInfraOverRate), 15u);
  // The router's ARP has its own budget still; the routing budget refills at its rate.
  EXPECT_EQ(f_.send(stakegate::testing::build_arp(*parse_ip("198.18.254.1"), *parse_ip("198.18.255.1")), 0), Verdict::kPass);
  EXPECT_EQ(f_.send(bfd, 50 * kMs), Verdict::kPass);
}

// The Toeplitz hash NICs compute for RSS, on Microsoft's published verification vectors
// (IPv4 source and destination; IPv6 the same), with the key the gateway gives both ports.
TEST(Steering, ToeplitzMatchesTheVerificationVectors) {
  constexpr uint8_t kKey[40] = {0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3,
                                0x8f, 0xb0, 0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3,
                                0x80, 0x30, 0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa};
  auto both = [&](const char* src, const char* dst) {
    const IpAddr a = *parse_ip(src), b = *parse_ip(dst);
    std::vector<uint8_t> in;
    for (const IpAddr& x : {a, b}) {
      if (x.is_v4) {
        for (int sh = 24; sh >= 0; sh -= 8) in.push_back(static_cast<uint8_t>(x.v4 >> sh));
      } else {
        in.insert(in.end(), x.v6.bytes.begin(), x.v6.bytes.end());
      }
    }
    return toeplitz_hash(kKey, in.data(), in.size());
  };
  EXPECT_EQ(both("66.9.149.187", "161.142.100.80"), 0x323e8fc2u);
  EXPECT_EQ(both("199.92.111.2", "65.69.140.83"), 0xd718262au);
  EXPECT_EQ(both("3ffe:2501:200:1fff::7", "3ffe:2501:200:3::1"), 0x2cc18cd5u);
  // A worker's owner of an address is its hash's redirection table entry, i % workers.
  Steering st;
  st.workers = 3;
  st.reta_size = 128;
  std::copy(std::begin(kKey), std::end(kKey), st.key.begin());
  const IpAddr v4 = *parse_ip("66.9.149.187");
  const uint8_t v4b[4] = {66, 9, 149, 187};
  EXPECT_EQ(st.owner(mapped_v4(v4.v4)), toeplitz_hash(kKey, v4b, 4) % 128 % 3);
}

// Where the ports hash IPv6 addresses on their /64 (RTE_ETH_RSS_L3_PRE64), a worker finds
// an IPv6 remote's owner from its first 8 bytes, as the NIC does: every address of one /64
// has one owner, which is the hash of those 8 bytes (IPv4 is unchanged).
TEST(Steering, WithPrefixHashingEveryAddressOfASlash64HasOneOwner) {
  Steering st;
  st.workers = 4;
  st.reta_size = 128;
  for (size_t i = 0; i < st.key.size(); ++i) st.key[i] = static_cast<uint8_t>(0x6d + 37 * i);
  Ip6 a = parse_ip("2001:db8:7:9::1")->v6;
  std::set<uint16_t> whole, prefix;
  Steering pre = st;
  pre.prefix64 = true;
  for (int i = 0; i < 64; ++i) {
    a.bytes[15] = static_cast<uint8_t>(i * 7);
    a.bytes[9] = static_cast<uint8_t>(i * 13);
    whole.insert(st.owner(a));
    prefix.insert(pre.owner(a));
    EXPECT_EQ(pre.owner(a), toeplitz_hash(st.key.data(), a.bytes.data(), 8) % 128 % 4);
  }
  EXPECT_GT(whole.size(), 1u);  // hashed whole, the /64's addresses spread over the workers
  EXPECT_EQ(prefix.size(), 1u);
  const Ip6 v4 = mapped_v4(parse_ip("66.9.149.187")->v4);
  EXPECT_EQ(pre.owner(v4), st.owner(v4));
}

// With several workers a router's ICMP error (RSS: the router's address) and the session
// it quotes (RSS: the remote's address) may be on different workers: the one that gets the
// error hands it to the one holding the session, which decides it as any ICMP error.
TEST_F(SessionTest, AnIcmpErrorIsHandedToTheWorkerHoldingItsSession) {
  Worker::Sizes sizes;
  sizes.unregistered = 1024;
  sizes.sources = f_.snap->source_count();
  sizes.sessions = f_.sessions;
  Steering st;
  st.workers = 2;
  st.reta_size = 128;
  for (size_t i = 0; i < st.key.size(); ++i) st.key[i] = static_cast<uint8_t>(0x6d + 37 * i);
  // A remote, and a router that hashes to the other worker.
  const char* remote = "198.51.200.80";
  std::string router;
  for (int i = 1; router.empty(); ++i) {
    const std::string r = "198.51.100." + std::to_string(i);
    if (st.owner(mapped_v4(parse_ip(r)->v4)) != st.owner(mapped_v4(parse_ip(remote)->v4))) router = r;
  }
  const uint16_t owner = st.owner(mapped_v4(parse_ip(remote)->v4));
  Worker w0(sizes, 1), w1(sizes, 2);
  Worker* workers[2] = {&w0, &w1};
  for (uint16_t i = 0; i < 2; ++i) {
    st.self = i;
    workers[i]->set_steering(st);
    workers[i]->bind(f_.snap.get());
  }
  Worker& holder = *workers[owner];
  Worker& other = *workers[1 - owner];
  FrameSpec big = out(remote, 443, 41000, 6);
  big.tcp_flags = 0x02;
  const auto sent = build_frame(big);
  PacketView v{sent.data(), static_cast<uint32_t>(sent.size())};
  holder.process_inside(&v, 1, 0);  // the inside hashes the remote: its worker holds the session
  const auto error = stakegate::testing::icmp_error_about(sent, *parse_ip(router.c_str()), 3, 4);
  PacketView e{error.data(), static_cast<uint32_t>(error.size())};
  // Second in a burst (its index is what handoff_target takes), after a plain packet.
  const auto plain = build_frame(back(out(remote, 9000, 41001)));
  PacketView burst[2] = {{plain.data(), static_cast<uint32_t>(plain.size())}, e};
  Verdict verdicts[2];
  other.process_outside(burst, 2, 1 * kMs, verdicts);
  EXPECT_EQ(verdicts[1], Worker::kHandoff);
  EXPECT_EQ(other.handoff_target(1), owner);
  EXPECT_EQ(other.counters().handoffs, 1u);
  uint64_t counted = 0;
  for (const auto& cls : other.counters().packets[0])
    for (uint64_t n : cls) counted += n;
  EXPECT_EQ(counted, 1u);  // the plain packet only: the handed-off one is counted where it is decided
  Verdict decided;
  holder.process_handoffs(&e, 1, 1 * kMs, &decided);
  EXPECT_EQ(decided, Verdict::kPass);
  EXPECT_EQ(holder.counters().packets[0][static_cast<int>(TrafficClass::kInfra)][0], 1u);
  // An error quoting a source outside cluster.prefixes matches no session anywhere: decided
  // where it arrives (a forged flood of them stays on one worker).
  FrameSpec stranger = big;
  stranger.src = *parse_ip("198.51.100.250");
  const auto forged = stakegate::testing::icmp_error_about(build_frame(stranger), *parse_ip(router.c_str()), 3, 4);
  EXPECT_EQ(f_.send(forged, 1 * kMs), Verdict::kUnregistered);  // (the fixture's worker: no steering)
  PacketView fv{forged.data(), static_cast<uint32_t>(forged.size())};
  other.process_outside(&fv, 1, 1 * kMs, &decided);
  EXPECT_EQ(decided, Verdict::kUnregistered);
  EXPECT_EQ(other.counters().handoffs, 1u);
  // Handed frames are never handed on: on a worker without the session it is decided there.
  other.process_handoffs(&e, 1, 1 * kMs, &decided);
  EXPECT_EQ(decided, Verdict::kUnregistered);
  // The holder itself decides it in place; without steering nothing is ever handed off.
  holder.process_outside(&e, 1, 1 * kMs, &decided);
  EXPECT_EQ(decided, Verdict::kPass);
  Worker alone(sizes, 3);
  alone.bind(f_.snap.get());
  alone.process_outside(&e, 1, 1 * kMs, &decided);
  EXPECT_EQ(decided, Verdict::kUnregistered);  // no session here, and no one to hand it to
  EXPECT_EQ(alone.counters().handoffs, 0u);
  // A flood of errors quoting the cluster's sessions (anyone can forge them) is charged to
  // the arriving worker's ICMP error budget before it reaches a ring: 1,000 pps, 100 ms of
  // burst. What is over it is dropped and counted there.
  const uint64_t handed = other.counters().handoffs;
  std::vector<PacketView> flood(250, e);  // (under kHandoffSlots)
  std::vector<Verdict> fv_out(flood.size());
  other.process_outside(flood.data(), static_cast<uint16_t>(flood.size()), 2 * kS, fv_out.data());
  EXPECT_EQ(std::count(fv_out.begin(), fv_out.end(), Worker::kHandoff), 100);
  EXPECT_EQ(std::count(fv_out.begin(), fv_out.end(), Verdict::kInfraOverRate), 150);
  EXPECT_EQ(other.counters().handoffs - handed, 100u);
  EXPECT_EQ(other.counters().packets[0][static_cast<int>(TrafficClass::kInfra)][static_cast<int>(Verdict::kInfraOverRate)],
            150u);
  // What was handed is not charged a second time on the holder: with the holder's own budget
  // spent (by errors arriving there), the 100 handed frames still pass.
  std::vector<PacketView> own(250, e);
  std::vector<Verdict> own_out(own.size());
  holder.process_outside(own.data(), static_cast<uint16_t>(own.size()), 2 * kS, own_out.data());
  EXPECT_EQ(std::count(own_out.begin(), own_out.end(), Verdict::kInfraOverRate), 150);
  std::vector<PacketView> handed_frames(100, e);
  std::vector<Verdict> handed_out(handed_frames.size());
  holder.process_handoffs(handed_frames.data(), 100, 2 * kS, handed_out.data());
  EXPECT_EQ(std::count(handed_out.begin(), handed_out.end(), Verdict::kPass), 100);
  // Its own arrivals are still held to its budget afterwards.
  holder.process_outside(&e, 1, 2 * kS, &decided);
  EXPECT_EQ(decided, Verdict::kInfraOverRate);
}

namespace {
// A DHCP message: IPv4 BOOTP (op 1 request, 2 reply; chaddr 02:00:00:00:00:xx) or a DHCPv6
// message of `type`, transaction `xid`.
std::vector<uint8_t> dhcp4(const char* src, const char* dst, uint8_t op, uint32_t xid, uint8_t mac = 0xaa) {
  FrameSpec f;
  f.src = *parse_ip(src);
  f.dst = *parse_ip(dst);
  f.proto = 17;
  f.src_port = op == 1 ? 68 : 67;
  f.dst_port = op == 1 ? 67 : 68;
  f.payload.assign(240, 0);
  f.payload[0] = op;
  f.payload[1] = 1;
  f.payload[2] = 6;
  for (int i = 0; i < 4; ++i) f.payload[4 + i] = static_cast<uint8_t>(xid >> (24 - 8 * i));
  const uint8_t chaddr[6] = {2, 0, 0, 0, 0, mac};
  std::copy(chaddr, chaddr + 6, f.payload.begin() + 28);
  f.payload[236] = 99, f.payload[237] = 130, f.payload[238] = 83, f.payload[239] = 99;  // the magic cookie
  f.frame_size = 0;
  return build_frame(f);
}
std::vector<uint8_t> dhcp6(const char* src, const char* dst, uint8_t type, uint32_t xid) {
  FrameSpec f;
  f.src = *parse_ip(src);
  f.dst = *parse_ip(dst);
  f.proto = 17;
  const bool client = type != 2 && type != 7;
  f.src_port = client ? 546 : 547;
  f.dst_port = client ? 547 : 546;
  f.payload = {type, static_cast<uint8_t>(xid >> 16), static_cast<uint8_t>(xid >> 8), static_cast<uint8_t>(xid), 0, 1, 0, 0};
  f.frame_size = 0;
  return build_frame(f);
}
}  // namespace

// A node taking its address by DHCP from a server on the outside: its DISCOVER goes from
// 0.0.0.0 to the broadcast address and opens no session, so the server's OFFER and ACK
// would be `unregistered`. The cluster's DHCP transactions are noted, and a server's
// answers to them pass (infra, a few per transaction, 10 s); nothing else to port 68 does.
TEST_F(SessionTest, AnswersToTheClustersDhcpTransactionsPass) {
  const char* server = "198.18.254.67";
  EXPECT_EQ(f_.send(dhcp4(server, "255.255.255.255", 2, 0x1234), 0), Verdict::kUnregistered);  // unasked
  f_.inside(dhcp4("0.0.0.0", "255.255.255.255", 1, 0x1234), 0);                              // DISCOVER
  EXPECT_EQ(f_.send(dhcp4(server, "255.255.255.255", 2, 0x1235), 1 * kMs), Verdict::kUnregistered);  // another xid
  EXPECT_EQ(f_.send(dhcp4(server, "255.255.255.255", 2, 0x1234, 0xbb), 1 * kMs), Verdict::kUnregistered);  // client
  EXPECT_EQ(f_.send(dhcp4(server, "255.255.255.255", 1, 0x1234), 1 * kMs), Verdict::kUnregistered);  // not a reply
  EXPECT_EQ(f_.send(dhcp4(server, "255.255.255.255", 2, 0x1234), 1 * kMs), Verdict::kPass);        // OFFER
  EXPECT_EQ(count(TrafficClass::kInfra, Verdict::kPass), 1u);
  f_.inside(dhcp4("0.0.0.0", "255.255.255.255", 1, 0x1234), 2 * kS);                         // REQUEST
  EXPECT_EQ(f_.send(dhcp4(server, "198.18.255.7", 2, 0x1234), 2 * kS + 1 * kMs), Verdict::kPass);  // ACK, unicast
  for (int i = 0; i < 3; ++i) f_.send(dhcp4(server, "255.255.255.255", 2, 0x1234), 2 * kS + 2 * kMs);
  EXPECT_EQ(f_.send(dhcp4(server, "255.255.255.255", 2, 0x1234), 2 * kS + 3 * kMs), Verdict::kUnregistered);
  EXPECT_EQ(f_.worker->counters().dhcp_answers, 5u);  // the OFFER, and 4 on the REQUEST's renewal
  f_.inside(dhcp4("0.0.0.0", "255.255.255.255", 1, 0x99), 20 * kS);
  EXPECT_EQ(f_.send(dhcp4(server, "255.255.255.255", 2, 0x99), 31 * kS), Verdict::kUnregistered);  // after 10 s
  // Rebinding: a node with an address broadcasts its REQUEST (the inside fast path, a new
  // session, then the same one refreshed); another server answers from its own address.
  for (uint32_t xid : {0x5150u, 0x5151u}) {
    f_.inside(dhcp4("198.18.255.7", "255.255.255.255", 1, xid), 35 * kS);
    EXPECT_EQ(f_.send(dhcp4("198.18.254.68", "198.18.255.7", 2, xid), 35 * kS + 1 * kMs), Verdict::kPass) << xid;
  }
  EXPECT_EQ(f_.worker->counters().dhcp_answers, 7u);
  // DHCPv6: SOLICIT from the node's link-local address to the servers' group; ADVERTISE and
  // REPLY to that address with its transaction ID.
  f_.inside(dhcp6("fe80::aa", "ff02::1:2", 1, 0xabcdef), 40 * kS);
  EXPECT_EQ(f_.send(dhcp6("fe80::67", "fe80::bb", 2, 0xabcdef), 40 * kS), Verdict::kUnregistered);  // another client
  EXPECT_EQ(f_.send(dhcp6("fe80::67", "fe80::aa", 2, 0xabcdee), 40 * kS), Verdict::kUnregistered);  // another xid
  auto cut = dhcp6("fe80::67", "fe80::aa", 2, 0xabcdef);  // a message cut after 2 bytes (its UDP length says so)
  cut.resize(cut.size() - 6);
  cut[14 + 4] = 0, cut[14 + 5] = 10;  // IPv6 payload length: the UDP header and 2 bytes
  cut[14 + 40 + 4] = 0, cut[14 + 40 + 5] = 10;
  EXPECT_EQ(f_.send(cut, 40 * kS), Verdict::kUnregistered);  // read no further than the frame
  EXPECT_EQ(f_.send(dhcp6("fe80::67", "fe80::aa", 2, 0xabcdef), 40 * kS), Verdict::kPass);          // ADVERTISE
  EXPECT_EQ(f_.worker->counters().dhcp_answers, 8u);
  // Without cluster.prefixes every inside source opens sessions, but not the unspecified
  // address: a DISCOVER from 0.0.0.0 is still the start of a DHCP transaction.
  std::string open = stakegate::testing::base_config();
  const size_t at = open.find("cluster:");
  open.erase(at, open.find('\n', at) + 1 - at);
  f_.load(open);
  ASSERT_TRUE(f_.snap->cluster().empty());
  f_.inside(dhcp4("0.0.0.0", "255.255.255.255", 1, 0x777), 0);
  EXPECT_EQ(f_.worker->counters().sessions_created, 0u);
  EXPECT_EQ(f_.send(dhcp4(server, "255.255.255.255", 2, 0x777), 1 * kMs), Verdict::kPass);
}

// ICMP errors come from anywhere on the Internet, ARP and neighbour discovery only from
// the link: an error flood (a client quoting its own session) leaves the link's budget alone.
TEST_F(SessionTest, IcmpErrorsHaveABudgetOfTheirOwn) {
  FrameSpec big = out("198.51.200.80", 443, 41000, 6);
  big.tcp_flags = 0x10;
  const auto sent = build_frame(big);
  f_.inside(sent, 0);
  const auto error = stakegate::testing::icmp_error_about(sent, *parse_ip("198.51.200.80"), 3, 4);
  int passed = 0;
  for (int i = 0; i < 300; ++i) passed += f_.send(error, 1 * kMs) == Verdict::kPass;
  EXPECT_EQ(passed, 100);  // icmp_errors_pps as infra.pps (1,000), 100 ms of burst
  const auto arp = stakegate::testing::build_arp(*parse_ip("198.18.254.1"), *parse_ip("198.18.255.1"));
  passed = 0;
  for (int i = 0; i < 300; ++i) passed += f_.send(arp, 1 * kMs) == Verdict::kPass;
  EXPECT_EQ(passed, 100);  // the link's budget is whole
  f_.load(stakegate::testing::base_config() + "infra: {pps: 500, icmp_errors_pps: 20}\n");
  f_.inside(sent, 0);
  passed = 0;
  for (int i = 0; i < 300; ++i) passed += f_.send(error, 1 * kMs) == Verdict::kPass;
  EXPECT_EQ(passed, 2);
  passed = 0;
  for (int i = 0; i < 300; ++i) passed += f_.send(arp, 1 * kMs) == Verdict::kPass;
  EXPECT_EQ(passed, 50);
}

// ARP and neighbour advertisements from the outside that claim a cluster address would
// point the nodes' entries for each other at an outside host (poisoning their own
// traffic): spoofed, as an IP source inside the cluster's prefixes is, even as an answer
// to a request the cluster sent.
TEST_F(SessionTest, NeighbourFramesClaimingAClusterAddressAreSpoofed) {
  const IpAddr node_a = *parse_ip("198.18.255.1"), node_b = *parse_ip("198.18.255.7"), router = *parse_ip("198.18.254.1");
  EXPECT_EQ(f_.send(stakegate::testing::build_arp(node_b, node_a), 0), Verdict::kSpoofed);     // a request
  f_.inside(stakegate::testing::build_arp(node_a, node_b), 0);                                  // A resolves B
  EXPECT_EQ(f_.send(stakegate::testing::build_arp(node_b, node_a, 2), 0), Verdict::kSpoofed);  // "B is here"
  EXPECT_EQ(f_.worker->counters().neighbour_answers, 0u);
  EXPECT_EQ(f_.send(stakegate::testing::build_arp(router, node_a), 0), Verdict::kPass);
  EXPECT_EQ(f_.send(stakegate::testing::build_arp(*parse_ip("0.0.0.0"), node_a), 0), Verdict::kPass);  // a probe
  // IPv6: an advertisement whose target is a cluster address; a solicitation for one is a
  // request (the router resolving the cluster), and passes.
  EXPECT_EQ(f_.send(neighbour_frame("fe80::66", "2001:2::ff", "2001:2::ff", 136), 0), Verdict::kSpoofed);
  EXPECT_EQ(f_.send(neighbour_frame("fe80::1", "2001:2::ff", "fe80::1", 136), 0), Verdict::kPass);
  EXPECT_EQ(f_.send(neighbour_frame("fe80::1", "ff02::1:ff00:ff", "2001:2::ff", 135), 0), Verdict::kPass);
  EXPECT_EQ(count(TrafficClass::kNone, Verdict::kSpoofed), 3u);
  // Without cluster.prefixes nothing is known to be the cluster's.
  std::string no_cluster = stakegate::testing::base_config();
  const size_t at = no_cluster.find("cluster:");
  no_cluster.erase(at, no_cluster.find('\n', at) - at + 1);
  f_.load(no_cluster);
  EXPECT_EQ(f_.send(stakegate::testing::build_arp(node_b, node_a), 0), Verdict::kPass);
  EXPECT_EQ(f_.send(neighbour_frame("fe80::66", "2001:2::ff", "2001:2::ff", 136), 0), Verdict::kPass);
}

// RA guard (infra.ra_guard, with infra.neighbours): router advertisements and redirects
// are infrastructure only from the listed MACs; another host's are judged as its other
// traffic. Off (the default), any on-link host's pass, listed neighbours or not: a router
// missing from the list must not leave the nodes without a default route.
TEST_F(SessionTest, WithTheRaGuardOnlyListedNeighboursMayAdvertiseARouteOrRedirect) {
  auto nd = [](uint8_t type, uint8_t mac) { return from_mac(neighbour_frame("fe80::1", "ff02::1", "::", type), mac); };
  EXPECT_EQ(f_.send(nd(134, 0x66), 0), Verdict::kPass);
  f_.load(stakegate::testing::base_config() + "infra: {neighbours: [\"02:00:00:00:00:01\"]}\n");
  EXPECT_EQ(f_.send(nd(134, 0x66), 0), Verdict::kPass);
  EXPECT_EQ(f_.send(nd(137, 0x66), 0), Verdict::kPass);
  f_.load(stakegate::testing::base_config() + "infra: {neighbours: [\"02:00:00:00:00:01\"], ra_guard: true}\n");
  EXPECT_EQ(f_.send(nd(134, 0x01), 0), Verdict::kPass);  // the router's
  EXPECT_EQ(f_.send(nd(137, 0x01), 0), Verdict::kPass);
  EXPECT_EQ(f_.send(nd(134, 0x66), 0), Verdict::kUnregistered);  // a rogue router advertisement
  EXPECT_EQ(f_.send(nd(137, 0x66), 0), Verdict::kUnregistered);  // a rogue redirect
  EXPECT_EQ(f_.send(nd(135, 0x66), 0), Verdict::kPass);  // solicitations are anyone's
  EXPECT_EQ(f_.send(nd(133, 0x66), 0), Verdict::kPass);
  EXPECT_EQ(count(TrafficClass::kInfra, Verdict::kPass), 4u);
}
