#pragma once
// Small text forms shared by logs and reports.
#include <string>

#include "stakegate/base/time_text.h"  // iso8601_utc

namespace stakegate {

std::string fixed(double v, int decimals = 1);  // "12.3"
std::string compact_utc(double unix_s);         // "20261126T110249Z" (case directory names)

}  // namespace stakegate
