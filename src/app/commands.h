#pragma once
#include <string>
#include <vector>

namespace stakegate {

int cmd_run(const std::vector<std::string>& args);
int cmd_replay(const std::vector<std::string>& args);
int cmd_check_config(const std::vector<std::string>& args);

}  // namespace stakegate
