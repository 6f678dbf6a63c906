#include <cstdio>

#include "commands.h"
#include "stakegate/config/policy.h"

namespace stakegate {

int cmd_check_config(const std::vector<std::string>& args) {
  if (args.size() != 1) {
    std::fprintf(stderr, "usage: stakegate check-config FILE\n");
    return 2;
  }
  try {
    LoadedPolicy p = load_policy(args[0]);
    std::printf("%s: OK\n%s", args[0].c_str(), describe_plan(p).c_str());
    return 0;
  } catch (const ConfigError& e) {
    std::fprintf(stderr, "stakegate: %s\n", e.what());
    return 1;
  }
}

}  // namespace stakegate
