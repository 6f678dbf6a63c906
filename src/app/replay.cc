// `stakegate replay`: the worker pipeline over a capture, packet timestamps as the clock.
#include <cstdio>
#include <fstream>
#include <memory>
#include <optional>

#include "args.h"
#include "commands.h"
#include "stakegate/config/policy.h"
#include "stakegate/pipeline/worker.h"
#include "stakegate/report/counters.h"
#include "stakegate/report/evidence.h"
#include "stakegate/report/pcap_io.h"

namespace stakegate {

int cmd_replay(const std::vector<std::string>& args) {
  try {
    auto flags = parse_flags(args, {"--config", "--pcap", "--out", "--report", "--evidence"});
    if (!flags.count("--config") || !flags.count("--pcap"))
      throw UsageError("replay needs --config FILE and --pcap IN");
    LoadedPolicy p = load_policy(flags["--config"]);
    for (const auto& w : p.warnings) std::fprintf(stderr, "warning: %s\n", w.c_str());
    if (flags.count("--evidence")) p.cfg.evidence.dir = flags["--evidence"];

    auto snap = PolicySnapshot::build(p.cfg, p.plan, 1);
    Worker worker(p.cfg.unregistered.table_size, snap->source_count());
    worker.bind(snap.get());
    PcapReader in(flags["--pcap"]);
    std::optional<PcapWriter> out;
    if (flags.count("--out")) out.emplace(flags["--out"]);

    // Peer score and evidence exactly as `run` does them, on the capture's clock (its
    // timestamps are Unix time): bundles land in evidence.dir (or --evidence DIR).
    auto log = [](bool warning, const std::string& m) { std::fprintf(stderr, "%s%s\n", warning ? "warning: " : "", m.c_str()); };
    SourceDirectory dir;
    dir.reset({&worker}, &p.nodes, &p.plan, p.cfg.scoring);
    GraylistTracker gray(log);
    EvidenceRecorder rec(p.cfg.evidence, p.cfg.operator_info, p.cfg.scoring, STAKEGATE_VERSION,
                         [](uint64_t ns) { return ns; }, log);

    uint64_t ts = 0, last = 0, packets = 0, last_drain = 0;
    const uint8_t* data = nullptr;
    uint32_t len = 0;
    while (in.next(ts, data, len)) {
      PacketView view{data, len};
      Verdict v;
      worker.process_outside(&view, 1, ts, &v);
      if (out && v == Verdict::kPass) out->write(ts, data, len);
      last = std::max(last, ts);
      // As often as the ring needs (1,024 records) and `run` polls (every 50 ms).
      if (++packets % 256 == 0 || ts >= last_drain + 50'000'000) {
        drain_evidence({&worker}, dir, gray, rec);
        last_drain = last;
      }
    }
    drain_evidence({&worker}, dir, gray, rec);
    rec.tick(dir, last, true);  // the capture ends: cases still open are written now

    Totals t;
    t.add(worker);
    std::printf("%s", role_table(t).c_str());
    if (flags.count("--report")) {
      std::ofstream r(flags["--report"]);
      if (!r) throw std::runtime_error(flags["--report"] + ": cannot write report");
      auto report = make_report(t, p.nodes, p.plan);
      nlohmann::json hist = nlohmann::json::array();
      for (const auto& e : gray.history())
        hist.push_back({{"node_ids", e.node_ids}, {"entered_unix", e.since_ns / 1e9}, {"score_at_entry", e.score},
                        {"recovered_unix", e.until_ns ? nlohmann::json(e.until_ns / 1e9) : nlohmann::json(nullptr)}});
      report["graylist"] = {{"entries", gray.entered()}, {"exits", gray.exited()},
                            {"graylisted_at_end", gray.entries().size()}, {"events", hist}};
      nlohmann::json cases = nlohmann::json::array();
      for (const auto& c : rec.cases())
        cases.push_back({{"id", c.id}, {"dir", c.dir}, {"reason", c.reason}, {"node_id", c.node_id},
                         {"samples", c.samples}, {"error", c.error}});
      report["evidence"] = cases;
      r << report.dump(2) << "\n";
    }
    return 0;
  } catch (const UsageError& e) {
    std::fprintf(stderr, "stakegate replay: %s\nusage: stakegate replay --config FILE --pcap IN [--out PASS.pcap] [--report R.json] [--evidence DIR]\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "stakegate: %s\n", e.what());
    return 1;
  }
}

}  // namespace stakegate
