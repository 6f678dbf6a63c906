// The scenario's traffic, both directions: staked nodes on verified TCP connections to the
// cluster (honest ones within their rate, flooders over it), forged traffic with their
// addresses, unregistered clients and floods, sessions the cluster opens (DNS), ICMP
// errors and neighbour discovery, probes, blocklisted, ejected, spoofed, malformed and
// non-IP frames, some IPv6 and VLAN tagged; and expected.json, what was sent by kind.
//
// `run` on net_pcap devices reads outside.pcap and inside.pcap at full speed, not by
// timestamp, one burst of each per loop, the inside first. The captures are ordered so
// that this still gives the verdicts of the timestamps: every connection's SYN-ACK is
// among the first frames of inside.pcap, and its remote's first ACK comes after every SYN
// in outside.pcap (so after at least as many outside frames as there are SYN-ACKs).
#include <algorithm>
#include <array>
#include <cstdio>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>

#include "packet_builder.h"
#include "scenario.h"
#include "stakegate/report/pcap_io.h"
#include "tcp_flow.h"

namespace stakegate::scenario {
namespace {

using json = nlohmann::json;
using stakegate::testing::FrameSpec;
using stakegate::testing::TcpFlow;

constexpr uint64_t kUs = 1000;
constexpr uint64_t kAckEvery = 256 * 1024;  // the cluster acknowledges every 256 KiB received

struct Event {
  uint64_t ts;
  bool inside;  // sent by the cluster
  std::vector<uint8_t> frame;
  // Only in outside.pcap: a frame claiming a cluster source. In a capture of both
  // directions nothing tells it from the cluster's own packets (replay takes a cluster
  // source as the inside), so scenario.pcap leaves it out.
  bool outside_only = false;
};

class Generator {
 public:
  Generator(const Options& o, const LoadedPolicy& p) : o_(o), p_(p), rng_(o.seed) {}

  void run() {
    dur_ = static_cast<uint64_t>(o_.duration_ms * 1e6);
    staked_nodes();
    unregistered();
    cluster_sessions();
    odd_frames();
    write();
  }

 private:
  // Every sending staked node dials the cluster; honest ones then send at a fraction of
  // their rate, flooders (the first nodes of each role, up to flood_stake of its weight)
  // at flood_multiplier times it; others forge traffic with honest nodes' addresses.
  void staked_nodes() {
    std::array<double, kRoleCount> flood_weight{};
    for (size_t i = 0; i < p_.nodes.size(); ++i) {
      const NodeIdentity& n = p_.nodes[i];
      const SourcePlan& sp = p_.plan.sources[p_.plan.nodes[i].source];
      if (n.ips.empty() || i >= o_.senders) continue;  // silent table entries send nothing
      if (sp.blocked || sp.ejected) {
        spread(base(n.ips[0], 17, 3569), o_.per_source_extra);
        expect_[sp.blocked ? "blocklisted" : "ejected"] += o_.per_source_extra;
        continue;
      }
      const int r = static_cast<int>(n.role);
      const double rate = p_.plan.nodes[i].rate_pps;
      const bool flood = flood_weight[r] < o_.flood_stake * p_.plan.roles[r].total_weight - 1e-9;
      if (flood) flood_weight[r] += n.weight;
      TcpFlow flow = dial(n, sp);
      const uint64_t sent = connection(flow, rate * (flood ? o_.flood_multiplier : o_.honest_fraction));
      json row = {{"node_id", n.node_id}, {"sent", sent}, {"rate_pps", rate}, {"burst", p_.plan.nodes[i].burst_pkts}};
      (flood ? flooders_ : honest_).push_back(row);
      if (flood) continue;
      if (!sp.all_ports) probe_targets_.push_back(i);
      if (o_.spoof_multiplier > 0) forge(flow, rate * o_.spoof_multiplier);
    }
    // Port-denied: honest nodes of port-restricted roles to a port no role allows.
    for (unsigned k = 0; k < o_.port_denied && !probe_targets_.empty(); ++k) {
      add(uniform(), base(p_.nodes[probe_targets_[k % probe_targets_.size()]].ips[0], 6, 22));
      expect_["port_denied"]++;
    }
  }

  TcpFlow dial(const NodeIdentity& n, const SourcePlan& sp) {
    TcpFlow f;
    f.remote = n.ips[0];
    f.local = cluster_addr(!n.ips[0].is_v4);
    f.rport = static_cast<uint16_t>(32768 + rng_() % 28000);
    f.lport = sp.all_ports || sp.ports.empty() || std::count(sp.ports.begin(), sp.ports.end(), 3569) ? 3569 : sp.ports[0];
    f.remote_seq = static_cast<uint32_t>(rng_());
    f.local_seq = static_cast<uint32_t>(rng_());
    f.frame_size = std::max(o_.frame_size, 60u);
    return f;
  }

  // The handshake near the start (SYN, the cluster's SYN-ACK, the remote's first ACK),
  // then `rate` data segments a second. Returns the data segments sent after the SYN.
  uint64_t connection(TcpFlow& f, double rate) {
    const uint64_t syn = uniform(100 * kUs);
    add(syn, f.remote_syn());
    inside(syn + 200 * kUs, f.local_syn_ack());
    ++handshakes_;
    if (rate <= 0) return 0;
    const double gap = 1e9 / rate;
    uint64_t n = 0, unacked = 0;
    for (double t = 400e3 + std::uniform_real_distribution<double>(0, gap)(rng_); t < static_cast<double>(dur_); t += gap) {
      const uint32_t before = f.remote_seq;
      add(static_cast<uint64_t>(t), f.remote, f.remote_data());
      ++n;
      if ((unacked += f.remote_seq - before) >= kAckEvery) {  // the cluster acknowledges what it received
        inside(static_cast<uint64_t>(t) + 50 * kUs, f.local_data());
        unacked = 0;
      }
    }
    return n;
  }

  // What anyone can send with an honest node's address: UDP to its port, and TCP on its
  // very 4-tuple with guessed sequence numbers. None of it may cost the node anything.
  void forge(const TcpFlow& f, double rate) {
    FrameSpec udp = base(f.remote, 17, f.lport);
    uint64_t sent = every(udp, rate / 2);
    const double gap = 2e9 / rate;
    for (double t = std::uniform_real_distribution<double>(0, gap)(rng_); t < static_cast<double>(dur_); t += gap, ++sent)
      add(static_cast<uint64_t>(t), f.remote, f.forged(static_cast<uint32_t>(rng_()), static_cast<uint32_t>(rng_())));
    forged_ += sent;
  }

  void unregistered() {
    const auto& u = p_.cfg.unregistered;
    const std::vector<uint16_t>& pub = u.ports;
    // Clients within their per-source rate, and a flood from many sources.
    for (unsigned s = 0; s < o_.unreg_sources && !pub.empty(); ++s)
      unreg_public_ += every(base(unreg_addr(s, s % 4 == 3), 6, pub[s % pub.size()]), u.per_source_pps * o_.unreg_fraction);
    if (o_.unreg_flood > 0 && !pub.empty()) {
      const double per = o_.unreg_flood * p_.cfg.capacity_pps / o_.unreg_flood_sources;
      for (unsigned s = 0; s < o_.unreg_flood_sources; ++s)
        unreg_flood_ += every(base(unreg_addr(1000 + s, false), o_.unreg_flood_tcp ? 6 : 17, pub[s % pub.size()]), per);
    }
    for (unsigned k = 0; k < o_.unreg_private; ++k) {
      add(uniform(), base(unreg_addr(20000 + k % 64, k % 5 == 4), 6, 3569));
      expect_["unregistered"]++;
    }
    // The blocklisted range: the first IPv4 CIDR of the blocklist.
    for (const auto& b : p_.cfg.blocklist) {
      if (!b.cidr || !b.cidr->base.is_v4) continue;
      const uint32_t hosts = b.cidr->prefix_len >= 32 ? 1 : std::min<uint32_t>(250, (1u << (32 - b.cidr->prefix_len)) - 1);
      for (unsigned k = 0; k < o_.blocklisted; ++k) {
        add(uniform(), base(IpAddr::from_v4(b.cidr->base.v4 + (hosts > 1 ? 1 + k % hosts : 0)), 6, 9000));
        expect_["blocklisted"]++;
      }
      break;
    }
  }

  // The cluster resolves names: each query (inside) gets its reply (outside) on the
  // cluster's ephemeral port, which no role lists. Routers tell it about its packets
  // (fragmentation needed, quoting one of its queries) and solicit its neighbours.
  void cluster_sessions() {
    const IpAddr resolver = IpAddr::from_v4(0xC633C835);  // 198.51.200.53
    for (unsigned k = 0; k < o_.cluster_queries; ++k) {
      FrameSpec q;
      q.src = cluster_addr(false);
      q.dst = resolver;
      q.src_port = static_cast<uint16_t>(40000 + k);
      q.dst_port = 53;
      q.proto = 17;
      q.frame_size = 80;
      const uint64_t t = uniform();
      inside_late(t, build_frame(q));
      FrameSpec a = q;
      std::swap(a.src, a.dst);
      std::swap(a.src_port, a.dst_port);
      a.frame_size = 200;
      add(t + 300 * kUs, a, false);
      passes_["session_replies"]++;
      if (k < o_.infra / 2) {  // a router on the way says the query was too big
        add(t + 200 * kUs, IpAddr{}, stakegate::testing::icmp_error_about(build_frame(q), IpAddr::from_v4(0xC6336401), 3, 4));
        passes_["infra"]++;
      }
    }
    for (unsigned k = 0; k < o_.infra - std::min(o_.infra / 2, o_.cluster_queries); ++k) {
      FrameSpec ns;  // neighbour solicitation from the upstream router
      ns.src = *parse_ip("fe80::1");
      ns.dst = *parse_ip("ff02::1:ff00:1");
      ns.proto = 58;
      ns.icmp_type = 135;
      ns.ttl = 255;
      ns.frame_size = 86;
      add(uniform(), IpAddr{}, build_frame(ns));
      passes_["infra"]++;
    }
  }

  void odd_frames() {
    for (unsigned k = 0; k < o_.spoofed; ++k) {  // claiming the cluster's own addresses
      FrameSpec f = base(cluster_addr(k % 3 == 2), 17, 9000);
      f.src = cluster_addr(k % 3 == 2);
      if (f.src.is_v4) f.src.v4 += 7;
      else f.src.v6.bytes[15] = 7;
      add(uniform(), f);
      events_.back().outside_only = true;
      spoofed_++;
    }
    for (unsigned k = 0; k < o_.malformed; ++k) {
      events_.push_back({uniform(), false, malformed(k)});
      expect_["malformed"]++;
    }
    for (unsigned k = 0; k < o_.non_ip; ++k) {
      if (k % 2) {
        events_.push_back({uniform(), false, stakegate::testing::build_lldp()});
        expect_["l2_denied"]++;
      } else {
        events_.push_back({uniform(), false, stakegate::testing::build_arp(unreg_addr(1, false), node_addr(0, false))});
        l2_++;
      }
    }
  }

  void write() {
    std::stable_sort(events_.begin(), events_.end(), [](const Event& a, const Event& b) { return a.ts < b.ts; });
    PcapWriter both(o_.out_dir + "/scenario.pcap"), out(o_.out_dir + "/outside.pcap"), in(o_.out_dir + "/inside.pcap");
    const uint64_t t0 = 1'700'000'000ull * 1'000'000'000ull;
    uint64_t outside = 0, insides = 0;
    for (const Event& e : events_) {
      if (!e.outside_only) both.write(t0 + e.ts, e.frame.data(), static_cast<uint32_t>(e.frame.size()));
      (e.inside ? in : out).write(t0 + e.ts, e.frame.data(), static_cast<uint32_t>(e.frame.size()));
      (e.inside ? insides : outside) += !e.outside_only;
    }
    // packets: the outside frames of scenario.pcap; outside.pcap has the spoofed ones too.
    json exp = {{"packets", outside},           {"inside_packets", insides},     {"duration_ms", o_.duration_ms},
                {"expected_drops", expect_},    {"expected_passes", passes_},    {"l2", l2_},                     {"honest", honest_},
                {"flooders", flooders_},        {"handshakes", handshakes_},     {"forged", forged_},
                {"unregistered_public_sent", unreg_public_},                     {"unregistered_flood_sent", unreg_flood_},
                {"vlan_tagged", vlan_},         {"ipv6", ipv6_},
                {"spoofed_outside_only", spoofed_}, {"outside_pcap_packets", outside + spoofed_}};
    std::ofstream(o_.out_dir + "/expected.json") << exp.dump(2) << "\n";
    std::printf("%s/scenario.pcap: %llu packets from the outside and %llu from the cluster over %.0f ms\n",
                o_.out_dir.c_str(), static_cast<unsigned long long>(outside), static_cast<unsigned long long>(insides),
                o_.duration_ms);
  }

  FrameSpec base(const IpAddr& src, uint8_t proto, uint16_t dport) {
    FrameSpec f;
    f.src = src;
    f.dst = cluster_addr(!src.is_v4);  // a protected node
    f.proto = proto;
    f.dst_port = dport;
    f.src_port = static_cast<uint16_t>(32768 + rng_() % 28000);
    f.frame_size = std::max(o_.frame_size, 60u);
    return f;
  }
  uint64_t uniform(uint64_t span = 0) { return rng_() % std::max<uint64_t>(span ? span : dur_, 1); }

  // An outside frame (tagged with VLANs now and then, like the rest of the outside).
  void add(uint64_t ts, FrameSpec f, bool tag = true) {
    double r = std::uniform_real_distribution<double>(0, 1)(rng_);
    if (tag && r < o_.vlan_fraction) {
      f.vlans = r < o_.vlan_fraction / 4 ? std::vector<uint16_t>{200, 100} : std::vector<uint16_t>{100};
      vlan_++;
    }
    add(ts, f.src, stakegate::testing::build_frame(f));
  }
  void add(uint64_t ts, const IpAddr& src, std::vector<uint8_t> frame) {
    if (!src.is_v4) ipv6_++;
    events_.push_back({ts, false, std::move(frame)});
  }
  void add(uint64_t ts, std::vector<uint8_t> frame) { add(ts, IpAddr{}, std::move(frame)); }
  void inside(uint64_t ts, std::vector<uint8_t> frame) { events_.push_back({ts, true, std::move(frame)}); }
  // A cluster packet after the handshakes: it must not come before a SYN-ACK in inside.pcap.
  void inside_late(uint64_t ts, std::vector<uint8_t> frame) { inside(std::max<uint64_t>(ts, 300 * kUs), std::move(frame)); }

  // `rate` packets per second, evenly spaced with a random phase. Returns how many.
  uint64_t every(const FrameSpec& f, double rate) {
    if (rate <= 0) return 0;
    double gap = 1e9 / rate;
    double t = std::uniform_real_distribution<double>(0, gap)(rng_);
    uint64_t n = 0;
    for (; t < static_cast<double>(dur_); t += gap, ++n) add(static_cast<uint64_t>(t), f);
    return n;
  }
  void spread(const FrameSpec& f, unsigned count) {
    for (unsigned k = 0; k < count; ++k) add(uniform(), f);
  }
  // A catalogue of broken headers, each of which the gateway must drop as malformed.
  std::vector<uint8_t> malformed(unsigned k) {
    FrameSpec f = base(unreg_addr(300, false), 6, 9000);
    std::vector<uint8_t> b = stakegate::testing::build_frame(f);
    switch (k % 8) {
      case 0: b.resize(10); break;                   // shorter than an Ethernet header
      case 1: b[14] = 0x55; break;                   // IPv4 version 5
      case 2: b[14] = 0x44; break;                   // IHL 4 (< 20 bytes)
      case 3: b[16] = 0x40; b[17] = 0; break;        // total length 16384 beyond the frame
      case 4: b.resize(14 + 20 + 10); b[16] = 0; b[17] = 30; break;  // TCP header cut short
      case 5: { FrameSpec v = base(unreg_addr(301, true), 6, 9000);   // IPv6 extension chain past the frame
                v.ipv6_ext = {{0, {6, 200, 0, 0, 0, 0, 0, 0}}};
                b = stakegate::testing::build_frame(v); break; }
      case 6: b.resize(16); b[12] = 0x81; b[13] = 0x00; break;       // VLAN TPID, tag cut off
      case 7: b[14] = 0x4f; break;                   // IHL 60 beyond total length
    }
    return b;
  }

  const Options& o_;
  const LoadedPolicy& p_;
  std::mt19937_64 rng_;
  uint64_t dur_ = 0;
  std::vector<Event> events_;
  std::vector<size_t> probe_targets_;
  json honest_ = json::array(), flooders_ = json::array();
  std::map<std::string, uint64_t> expect_ = {{"malformed", 0}, {"blocklisted", 0},  {"ejected", 0},        {"port_denied", 0},
                                             {"unregistered", 0}, {"l2_denied", 0}};
  // Traffic that must pass: ICMP errors and neighbour discovery (class infra), replies on
  // the cluster's sessions (class unregistered), ARP (class l2).
  std::map<std::string, uint64_t> passes_ = {{"infra", 0}, {"session_replies", 0}};
  uint64_t l2_ = 0, unreg_public_ = 0, unreg_flood_ = 0, vlan_ = 0, ipv6_ = 0, handshakes_ = 0, forged_ = 0, spoofed_ = 0;
};

}  // namespace

void generate_traffic(const Options& o, const LoadedPolicy& p) { Generator(o, p).run(); }

}  // namespace stakegate::scenario
