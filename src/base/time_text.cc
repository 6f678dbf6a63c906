#include "stakegate/base/time_text.h"

#include <cmath>
#include <cstdio>
#include <ctime>

namespace stakegate {

std::string iso8601_utc(double unix_s) {
  std::time_t t = static_cast<std::time_t>(std::floor(unix_s));
  std::tm tm{};
  gmtime_r(&t, &tm);
  char b[40];
  std::strftime(b, sizeof b, "%Y-%m-%dT%H:%M:%S", &tm);
  char ms[8];
  std::snprintf(ms, sizeof ms, ".%03dZ", static_cast<int>((unix_s - std::floor(unix_s)) * 1000));
  return std::string(b) + ms;
}

}  // namespace stakegate
