#pragma once
// Blocks made through the API, kept in `<state_dir>/blocks.json` so a restart does not
// silently unblock what an operator blocked during an incident. Written atomically
// (a temporary file, fsync, rename) after every change; read at start.
#include <string>
#include <vector>

#include "stakegate/control/policy_state.h"

namespace stakegate {

// Writes the API blocks (origin "api") of `blocks`. Throws std::runtime_error naming the file.
void save_api_blocks(const std::string& state_dir, const std::vector<ActiveBlock>& blocks);

// The blocks saved before, expired ones dropped (`now`: Unix seconds). A missing file is
// no blocks; a damaged one is moved aside (blocks.json.damaged) and reported in `warnings`.
std::vector<ActiveBlock> load_api_blocks(const std::string& state_dir, int64_t now, std::vector<std::string>& warnings);

}  // namespace stakegate
