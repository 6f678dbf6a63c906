#pragma once
// JSON as text for files and answers. nlohmann::json throws from dump() on a string that
// is not valid UTF-8; on the control thread that exception would end the gateway, and the
// nodes behind it with it. Input is checked where it comes in (config: YamlReader::
// expect_utf8; JSON files: the parser), so a replacement character here means a gap in
// those checks, not a lost report.
#include <nlohmann/json.hpp>

#include <string>

namespace stakegate {

inline std::string json_text(const nlohmann::json& j, int indent = -1) {
  return j.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace stakegate
