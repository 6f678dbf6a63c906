#include <cstdio>

#include "commands.h"
#include "stakegate/control/access.h"
#include "stakegate/policy/load.h"
#include "vdev_ports.h"

namespace stakegate {

// As `run` will: the config, its identity files, and the host's files and groups the
// control plane needs. A net_pcap input that `run` would refuse is a warning here (a
// demo's or a test's captures are often made after the config is checked).
int cmd_check_config(const std::string& file) {
  try {
    LoadedPolicy p = load_policy(file);
    check_control_files(p.cfg.control, p.cfg.file);
    try {
      check_pcap_inputs(p.cfg);
    } catch (const ConfigError& e) {
      p.warnings.push_back(std::string(e.what()) + " (run refuses to start so)");
    }
    std::printf("%s: OK\n%s", file.c_str(), describe_plan(p).c_str());
    return 0;
  } catch (const ConfigError& e) {
    std::fprintf(stderr, "stakegate: %s\n", e.what());
    return 1;
  }
}

}  // namespace stakegate
