#pragma once
// The subcommands of `stakegate` (main.cc parses the command line with CLI11).
#include <string>
#include <vector>

namespace stakegate {

struct RunOptions {
  std::string config;
  std::string report;        // optional: JSON report at exit
  double exit_on_idle_s = 0;  // 0: run until a signal
};
int cmd_run(const RunOptions& o);

struct ReplayOptions {
  std::string config, pcap;
  std::string out, report, evidence;  // optional
  // Source MACs of the frames that went out (the inside next hops): the direction is then
  // told by MAC, not by cluster.prefixes, so a frame forged with a cluster address is
  // judged as `run` judges it (spoofed).
  std::vector<std::string> inside_macs;
};
int cmd_replay(const ReplayOptions& o);

int cmd_check_config(const std::string& file);

}  // namespace stakegate
