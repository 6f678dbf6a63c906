#pragma once
// Minimal "--flag VALUE" parsing shared by the subcommands.
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

namespace stakegate {

class UsageError : public std::runtime_error {
  using std::runtime_error::runtime_error;
};

inline std::map<std::string, std::string> parse_flags(const std::vector<std::string>& args,
                                                      const std::set<std::string>& known) {
  std::map<std::string, std::string> out;
  for (size_t i = 0; i < args.size(); ++i) {
    if (!known.count(args[i])) throw UsageError("unknown argument '" + args[i] + "'");
    if (i + 1 >= args.size()) throw UsageError(args[i] + " needs a value");
    out[args[i]] = args[i + 1];
    ++i;
  }
  return out;
}

}  // namespace stakegate
