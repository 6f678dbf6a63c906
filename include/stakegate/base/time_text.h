#pragma once
// Timestamps as text, for logs, reports and warnings.
#include <string>

namespace stakegate {

std::string iso8601_utc(double unix_s);  // "2026-11-26T11:02:49.123Z"

}  // namespace stakegate
