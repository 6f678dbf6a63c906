// `stakegate replay`: the worker pipeline over a capture, packet timestamps as the clock.
// The policy goes through the same operations layer as in `run` (one worker, bound
// directly), and peer score and evidence through the same EvidenceService.
#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <optional>
#include <stdexcept>
#include <vector>

#include <rte_ether.h>

#include "commands.h"
#include "stakegate/base/json_text.h"
#include "stakegate/control/evidence_service.h"
#include "stakegate/control/policy_state.h"
#include "stakegate/net/parse.h"
#include "stakegate/pipeline/worker.h"
#include "stakegate/report/counters.h"
#include "stakegate/report/pcap_io.h"

namespace stakegate {
namespace {

// Replay's one worker runs on this thread: a snapshot is adopted as it is published.
class BindNow : public Publisher {
 public:
  void publish(std::shared_ptr<const PolicySnapshot> snap) override {
    current = std::move(snap);
    if (worker) worker->bind(current.get());
  }
  bool wait_applied() override { return true; }
  std::shared_ptr<const PolicySnapshot> current;
  Worker* worker = nullptr;
};

using Mac = std::array<uint8_t, 6>;

// "aa:bb:cc:dd:ee:ff" (DPDK's parser), or an error naming the option and the value.
Mac parse_mac(const std::string& text) {
  rte_ether_addr a{};
  if (rte_ether_unformat_addr(text.c_str(), &a) != 0)
    throw std::invalid_argument("--inside-mac: '" + text + "' is not a MAC address (aa:bb:cc:dd:ee:ff)");
  Mac mac;
  std::memcpy(mac.data(), a.addr_bytes, mac.size());
  return mac;
}

bool from_cluster(const ClusterPrefixes& cluster, const PacketView& p) {
  PacketMeta m;
  parse_view(p, m);
  // A DHCP client's message: a node asking for an address, from 0.0.0.0 or its link-local
  // address (the cluster runs no DHCP server for the outside).
  if (dhcp_ports(m, false)) return true;
  if (m.kind == L3Kind::kIpv4) return cluster.contains_v4(m.src_v4);
  if (m.kind == L3Kind::kIpv6) return cluster.contains_v6(m.src_v6);
  // ARP: its sender's address (the cluster's own requests must reach process_inside,
  // which lets their answers through a flood).
  Arp4 a;
  return parse_arp4(p.data, p.len, m, a) && cluster.contains_v4(a.sender);
}

nlohmann::json graylist_json(const GraylistTracker& gray) {
  nlohmann::json events = nlohmann::json::array();
  for (const auto& e : gray.history())
    events.push_back({{"node_ids", e.node_ids}, {"entered_unix", e.since_ns / 1e9}, {"score_at_entry", e.score},
                      {"recovered_unix", e.until_ns ? nlohmann::json(e.until_ns / 1e9) : nlohmann::json(nullptr)}});
  return {{"entries", gray.entered()}, {"exits", gray.exited()}, {"graylisted_at_end", gray.entries().size()},
          {"events", events}};
}

nlohmann::json cases_json(const std::vector<CaseSummary>& cases) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& c : cases)
    out.push_back({{"id", c.id}, {"dir", c.dir}, {"reason", c.reason}, {"node_id", c.node_id}, {"samples", c.samples},
                   {"error", c.error}});
  return out;
}

}  // namespace

int cmd_replay(const ReplayOptions& o) {
  try {
    std::vector<Mac> inside_macs;
    for (const auto& m : o.inside_macs) inside_macs.push_back(parse_mac(m));
    LoadedPolicy p = load_policy(o.config);
    for (const auto& w : p.warnings) std::fprintf(stderr, "warning: %s\n", w.c_str());
    if (!o.evidence.empty()) p.cfg.evidence.dir = o.evidence;
    Worker::Sizes sizes;
    sizes.sources = std::max<size_t>(1, p.plan.sources.size());
    sizes.unregistered = p.cfg.unregistered.table_size;
    sizes.sessions = p.cfg.limits_sessions;

    BindNow publisher;
    PolicyState state(std::move(p), 1, sizes.sources, &publisher, 1);
    Worker worker(sizes);
    publisher.worker = &worker;
    worker.bind(publisher.current.get());

    PcapReader in(o.pcap);
    std::optional<PcapWriter> out;
    if (!o.out.empty()) out.emplace(o.out);
    // Capture timestamps are Unix time: bundles land in evidence.dir (or --evidence DIR).
    auto log = [](bool warning, const std::string& m) { std::fprintf(stderr, "%s%s\n", warning ? "warning: " : "", m.c_str()); };
    EvidenceService evidence(state, {&worker}, [](uint64_t ns) { return ns; }, STAKEGATE_VERSION, log);

    uint64_t ts = 0, last = 0, packets = 0, last_drain = 0;
    const uint8_t* data = nullptr;
    uint32_t len = 0, wire = 0;
    // A capture taken at a span port holds both directions: a frame whose source is one of
    // the cluster's prefixes went out (inside -> outside) and opens or refreshes a session;
    // every other frame came in from the outside and is decided. A capture taken with a
    // snap length holds only the first bytes of long frames: they are judged as `run`
    // judges a frame in chained mbufs, by the headers captured and their whole length.
    // With --inside-mac the direction is the frame's source MAC instead: a capture at the
    // outside link tells the inside next hops from the router, whatever addresses a frame
    // claims, so a frame forged with a cluster source is judged (spoofed), as `run` would.
    const ClusterPrefixes& cluster = state.snapshot()->cluster();
    auto went_out = [&](const PacketView& v) {
      if (inside_macs.empty()) return !cluster.empty() && from_cluster(cluster, v);
      if (v.len < 14) return false;
      Mac src;
      std::memcpy(src.data(), v.data + 6, 6);
      return std::find(inside_macs.begin(), inside_macs.end(), src) != inside_macs.end();
    };
    // Fragments ahead of their first are held as `run` holds them (Worker::kHold): kept
    // here, given back once their first passed or their time is up (passed ones are
    // written then), and at the end of the capture decided at their time.
    struct HeldFrame {
      std::vector<uint8_t> bytes;
      uint32_t wire;
    };
    std::vector<HeldFrame> held;
    worker.set_holding(true);
    // What `run` forwards: passed frames, and in monitor mode every decided one (counted).
    const bool monitor = state.snapshot()->monitor;
    uint64_t monitor_forwarded = 0;
    auto forwarded = [&](Verdict v) {
      if (v == Verdict::kPass) return true;
      monitor_forwarded += monitor;
      return monitor;
    };
    auto release = [&](uint64_t now) {
      std::vector<PacketView> views;
      for (const HeldFrame& h : held) views.push_back({h.bytes.data(), static_cast<uint32_t>(h.bytes.size()), h.wire});
      std::vector<Verdict> verdicts(views.size());
      worker.process_held(views.data(), static_cast<uint16_t>(views.size()), now, verdicts.data());
      std::vector<HeldFrame> kept;
      for (size_t i = 0; i < held.size(); ++i) {
        if (verdicts[i] == Worker::kHold) kept.push_back(std::move(held[i]));
        else if (forwarded(verdicts[i]) && out) out->write(now, held[i].bytes.data(), views[i].len, held[i].wire);
      }
      held = std::move(kept);
    };
    while (in.next(ts, data, len, &wire)) {
      PacketView view{data, len, wire};
      if (worker.held_due(ts)) release(ts);
      if (went_out(view)) {
        worker.process_inside(&view, 1, ts);
      } else {
        Verdict v;
        worker.process_outside(&view, 1, ts, &v);
        if (v == Worker::kHold) held.push_back({std::vector<uint8_t>(data, data + len), wire});
        else if (forwarded(v) && out) out->write(ts, data, len, wire);
        if (worker.held_due(ts)) release(ts);
      }
      last = std::max(last, ts);
      // As often as the ring needs (1,024 records) and `run` polls (every 50 ms).
      if (++packets % 256 == 0 || ts >= last_drain + 50'000'000) {
        evidence.tick();
        last_drain = last;
      }
    }
    if (!held.empty()) release(last + Worker::kHoldNs);
    evidence.tick(true);  // the capture ends: cases still open are written now
    // A capture cut short (its writer killed mid-frame) is judged up to the cut: warned,
    // not thrown away.
    if (!in.damage().empty()) std::fprintf(stderr, "warning: %s\n", in.damage().c_str());

    Totals t;
    t.add(worker, worker.snapshot().source_count());
    std::printf("%s", role_table(t).c_str());
    if (!o.report.empty()) {
      std::ofstream r(o.report);
      if (!r) throw std::runtime_error(o.report + ": cannot write report");
      auto report = make_report(t, state.nodes(), state.plan());
      report["graylist"] = graylist_json(evidence.graylist());
      report["evidence"] = cases_json(evidence.cases());
      report["mode"] = mode_name(monitor);
      report["monitor_forwarded"] = monitor_forwarded;
      r << json_text(report, 2) << "\n";
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "stakegate: %s\n", e.what());
    return 1;
  }
}

}  // namespace stakegate
