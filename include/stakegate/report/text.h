#pragma once
// Small text forms shared by logs and reports.
#include <string>

namespace stakegate {

std::string fixed(double v, int decimals = 1);  // "12.3"
std::string iso8601_utc(double unix_s);         // "2026-11-26T11:02:49.123Z"
std::string compact_utc(double unix_s);         // "20261126T110249Z" (case directory names)

}  // namespace stakegate
