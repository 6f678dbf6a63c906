#pragma once
// Small text forms shared by logs and reports.
#include <cstdint>
#include <string>

#include "stakegate/base/time_text.h"  // iso8601_utc

namespace stakegate {

std::string fixed(double v, int decimals = 1);  // "12.3"
std::string compact_utc(double unix_s);         // "20261126T110249Z" (case directory names)
// A port's link: "up, 10 Gbps full-duplex", "up" (speed not reported: 0), "down".
std::string link_text(bool up, uint32_t speed_mbps, bool full_duplex);

}  // namespace stakegate
