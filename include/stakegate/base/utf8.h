#pragma once
// UTF-8 validation for text that ends up in JSON files and answers (report.json, the
// control API): nlohmann::json refuses to dump invalid UTF-8 with an exception, so text
// from outside is checked where it comes in and the dumps replace what slips through.
#include <cstddef>
#include <optional>
#include <string_view>

namespace stakegate {

// Offset of the first byte that does not start a well-formed UTF-8 sequence (RFC 3629:
// no overlong forms, no surrogates, nothing above U+10FFFF), or nullopt if all of it is.
std::optional<size_t> invalid_utf8_at(std::string_view s);

}  // namespace stakegate
