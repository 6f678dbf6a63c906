// The scenario's traffic: honest and flooding staked nodes, unregistered clients and
// floods, probes, blocklisted, ejected, malformed and non-IP frames, some IPv6 and VLAN
// tagged; and expected.json, what was sent by kind, for tests to compare.
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

namespace stakegate::scenario {
namespace {

using json = nlohmann::json;
using stakegate::testing::FrameSpec;

struct Event {
  uint64_t ts;
  std::vector<uint8_t> frame;
};

class Generator {
 public:
  Generator(const Options& o, const LoadedPolicy& p) : o_(o), p_(p), rng_(o.seed) {}

  void run() {
    const uint64_t dur = static_cast<uint64_t>(o_.duration_ms * 1e6);
    json honest = json::array(), flooders = json::array();
    // Flooders: in each role, the first nodes until flood_stake of the role's weight.
    std::array<double, kRoleCount> flood_weight{};
    uint16_t denied_port = 22;
    std::vector<size_t> honest_nodes;
    for (size_t i = 0; i < p_.nodes.size(); ++i) {
      const NodeIdentity& n = p_.nodes[i];
      const SourcePlan& sp = p_.plan.sources[p_.plan.nodes[i].source];
      if (n.ips.empty() || i >= o_.senders) continue;  // silent table entries send nothing
      if (sp.blocked) { spread(sp_frames(n, 17), o_.per_source_extra, dur); expect_["blocklisted"] += o_.per_source_extra; continue; }
      if (sp.ejected) { spread(sp_frames(n, 17), o_.per_source_extra, dur); expect_["ejected"] += o_.per_source_extra; continue; }
      int r = static_cast<int>(n.role);
      double rate = p_.plan.nodes[i].rate_pps;
      bool flood = flood_weight[r] < o_.flood_stake * p_.plan.roles[r].total_weight - 1e-9;
      if (flood) {
        flood_weight[r] += n.weight;
        uint64_t sent = every(sp_frames(n, 17), rate * o_.flood_multiplier, dur);
        flooders.push_back({{"node_id", n.node_id}, {"sent", sent}, {"rate_pps", rate},
                            {"burst", p_.plan.nodes[i].burst_pkts}});
      } else {
        uint64_t sent = every(sp_frames(n, 6), rate * o_.honest_fraction, dur);
        honest.push_back({{"node_id", n.node_id}, {"sent", sent}, {"rate_pps", rate}});
        if (!sp.all_ports) honest_nodes.push_back(i);
      }
    }
    // Port-denied: honest nodes of port-restricted roles to a port no role allows.
    for (unsigned k = 0; k < o_.port_denied && !honest_nodes.empty(); ++k) {
      const NodeIdentity& n = p_.nodes[honest_nodes[k % honest_nodes.size()]];
      FrameSpec f = base(n.ips[0], 6, denied_port);
      add(uniform(dur), f);
      expect_["port_denied"]++;
    }
    const auto& u = p_.cfg.unregistered;
    std::vector<uint16_t> pub = u.ports;
    // Unregistered clients within their per-source rate, and a flood from many sources.
    for (unsigned s = 0; s < o_.unreg_sources && !pub.empty(); ++s) {
      FrameSpec f = base(unreg_addr(s, s % 4 == 3), 6, pub[s % pub.size()]);
      unreg_public_ += every(f, u.per_source_pps * o_.unreg_fraction, dur);
    }
    if (o_.unreg_flood > 0 && !pub.empty()) {
      double per = o_.unreg_flood * p_.cfg.capacity_pps / o_.unreg_flood_sources;
      for (unsigned s = 0; s < o_.unreg_flood_sources; ++s)
        unreg_flood_ += every(base(unreg_addr(1000 + s, false), 17, pub[s % pub.size()]), per, dur);
    }
    for (unsigned k = 0; k < o_.unreg_private; ++k) {
      add(uniform(dur), base(unreg_addr(20000 + k % 64, k % 5 == 4), 6, 3569));
      expect_["unregistered"]++;
    }
    // Blocklisted range: the first IPv4 CIDR of the blocklist.
    for (const auto& b : p_.cfg.blocklist) {
      if (!b.cidr || !b.cidr->base.is_v4) continue;
      uint32_t hosts = b.cidr->prefix_len >= 32 ? 1 : std::min<uint32_t>(250, (1u << (32 - b.cidr->prefix_len)) - 1);
      for (unsigned k = 0; k < o_.blocklisted; ++k) {
        add(uniform(dur), base(IpAddr::from_v4(b.cidr->base.v4 + (hosts > 1 ? 1 + k % hosts : 0)), 6, 9000));
        expect_["blocklisted"]++;
      }
      break;
    }
    for (unsigned k = 0; k < o_.malformed; ++k) { events_.push_back({uniform(dur), malformed(k)}); expect_["malformed"]++; }
    for (unsigned k = 0; k < o_.non_ip; ++k) {
      events_.push_back({uniform(dur), k % 2 ? stakegate::testing::build_lldp()
                                             : stakegate::testing::build_arp(unreg_addr(1, false), node_addr(0, false))});
      l2_++;
    }
    std::stable_sort(events_.begin(), events_.end(), [](const Event& a, const Event& b) { return a.ts < b.ts; });

    PcapWriter w(o_.out_dir + "/scenario.pcap");
    const uint64_t t0 = 1'700'000'000ull * 1'000'000'000ull;
    for (const Event& e : events_) w.write(t0 + e.ts, e.frame.data(), static_cast<uint32_t>(e.frame.size()));

    json exp = {{"packets", events_.size()}, {"duration_ms", o_.duration_ms}, {"expected_drops", expect_},
                {"l2", l2_}, {"honest", honest}, {"flooders", flooders},
                {"unregistered_public_sent", unreg_public_}, {"unregistered_flood_sent", unreg_flood_},
                {"vlan_tagged", vlan_}, {"ipv6", ipv6_}};
    std::ofstream(o_.out_dir + "/expected.json") << exp.dump(2) << "\n";
    std::printf("%s/scenario.pcap: %zu packets over %.0f ms\n", o_.out_dir.c_str(), events_.size(), o_.duration_ms);
  }

 private:
  FrameSpec base(const IpAddr& src, uint8_t proto, uint16_t dport) {
    FrameSpec f;
    f.src = src;
    f.dst = src.is_v4 ? IpAddr::from_v4(0xC612FF01) : node_addr(0xfffff, true);  // a protected node
    f.proto = proto;
    f.dst_port = dport;
    f.src_port = static_cast<uint16_t>(32768 + rng_() % 28000);
    f.frame_size = std::max(o_.frame_size, 60u);
    return f;
  }
  FrameSpec sp_frames(const NodeIdentity& n, uint8_t proto) {
    const SourcePlan& sp = p_.plan.sources[p_.plan.nodes[&n - p_.nodes.data()].source];
    uint16_t port = sp.all_ports || sp.ports.empty() ? 3569 : (std::count(sp.ports.begin(), sp.ports.end(), 3569) ? 3569 : sp.ports[0]);
    return base(n.ips[0], proto, port);
  }
  uint64_t uniform(uint64_t dur) { return rng_() % std::max<uint64_t>(dur, 1); }

  void add(uint64_t ts, FrameSpec f) {
    double r = std::uniform_real_distribution<double>(0, 1)(rng_);
    if (r < o_.vlan_fraction) {
      f.vlans = r < o_.vlan_fraction / 4 ? std::vector<uint16_t>{200, 100} : std::vector<uint16_t>{100};
      vlan_++;
    }
    if (!f.src.is_v4) ipv6_++;
    events_.push_back({ts, stakegate::testing::build_frame(f)});
  }
  // `rate` packets per second, evenly spaced with a random phase. Returns how many.
  uint64_t every(const FrameSpec& f, double rate, uint64_t dur) {
    if (rate <= 0) return 0;
    double gap = 1e9 / rate;
    double t = std::uniform_real_distribution<double>(0, gap)(rng_);
    uint64_t n = 0;
    for (; t < static_cast<double>(dur); t += gap, ++n) add(static_cast<uint64_t>(t), f);
    return n;
  }
  void spread(const FrameSpec& f, unsigned count, uint64_t dur) {
    for (unsigned k = 0; k < count; ++k) add(uniform(dur), f);
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
  std::vector<Event> events_;
  std::map<std::string, uint64_t> expect_ = {
      {"malformed", 0}, {"blocklisted", 0}, {"ejected", 0}, {"port_denied", 0}, {"unregistered", 0}};
  uint64_t l2_ = 0, unreg_public_ = 0, unreg_flood_ = 0, vlan_ = 0, ipv6_ = 0;
};

}  // namespace

void generate_traffic(const Options& o, const LoadedPolicy& p) { Generator(o, p).run(); }

}  // namespace stakegate::scenario
