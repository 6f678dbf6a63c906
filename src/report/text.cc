#include "stakegate/report/text.h"

#include <cmath>
#include <cstdio>
#include <ctime>
#include <sstream>

namespace stakegate {

std::string fixed(double v, int decimals) {
  std::ostringstream o;
  o.setf(std::ios::fixed);
  o.precision(decimals);
  o << v;
  return o.str();
}

std::string compact_utc(double unix_s) {
  std::time_t t = static_cast<std::time_t>(unix_s);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char b[24];
  std::strftime(b, sizeof b, "%Y%m%dT%H%M%SZ", &tm);
  return b;
}

std::string link_text(bool up, uint32_t speed_mbps, bool full_duplex) {
  if (!up) return "down";
  if (speed_mbps == 0) return "up";
  const std::string speed = speed_mbps % 1000 == 0 ? std::to_string(speed_mbps / 1000) + " Gbps"
                                                   : std::to_string(speed_mbps) + " Mbps";
  return "up, " + speed + (full_duplex ? " full-duplex" : " half-duplex");
}

}  // namespace stakegate
