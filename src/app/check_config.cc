#include <cstdio>

#include "commands.h"
#include "stakegate/policy/load.h"

namespace stakegate {

int cmd_check_config(const std::string& file) {
  try {
    LoadedPolicy p = load_policy(file);
    std::printf("%s: OK\n%s", file.c_str(), describe_plan(p).c_str());
    return 0;
  } catch (const ConfigError& e) {
    std::fprintf(stderr, "stakegate: %s\n", e.what());
    return 1;
  }
}

}  // namespace stakegate
