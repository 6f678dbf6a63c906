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
#include "stakegate/report/pcap_io.h"

namespace stakegate {

int cmd_replay(const std::vector<std::string>& args) {
  try {
    auto flags = parse_flags(args, {"--config", "--pcap", "--out", "--report"});
    if (!flags.count("--config") || !flags.count("--pcap"))
      throw UsageError("replay needs --config FILE and --pcap IN");
    LoadedPolicy p = load_policy(flags["--config"]);
    for (const auto& w : p.warnings) std::fprintf(stderr, "warning: %s\n", w.c_str());

    auto snap = PolicySnapshot::build(p.cfg, p.plan, 1);
    Worker worker(p.cfg.unregistered.table_size, snap->source_count());
    worker.bind(snap.get());
    PcapReader in(flags["--pcap"]);
    std::optional<PcapWriter> out;
    if (flags.count("--out")) out.emplace(flags["--out"]);

    uint64_t ts = 0;
    const uint8_t* data = nullptr;
    uint32_t len = 0;
    while (in.next(ts, data, len)) {
      PacketView view{data, len};
      Verdict v;
      worker.process_outside(&view, 1, ts, &v);
      if (out && v == Verdict::kPass) out->write(ts, data, len);
    }

    Totals t;
    t.add(worker);
    std::printf("%s", role_table(t).c_str());
    if (flags.count("--report")) {
      std::ofstream r(flags["--report"]);
      if (!r) throw std::runtime_error(flags["--report"] + ": cannot write report");
      r << make_report(t, p.nodes, p.plan).dump(2) << "\n";
    }
    return 0;
  } catch (const UsageError& e) {
    std::fprintf(stderr, "stakegate replay: %s\nusage: stakegate replay --config FILE --pcap IN [--out PASS.pcap] [--report R.json]\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "stakegate: %s\n", e.what());
    return 1;
  }
}

}  // namespace stakegate
