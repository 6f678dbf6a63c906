#pragma once
#include <stdexcept>
#include <string>

namespace stakegate {

// A refused configuration or identity file. what() reads "FILE: KEY.PATH: problem".
class ConfigError : public std::runtime_error {
 public:
  ConfigError(const std::string& file, const std::string& key_path, const std::string& problem)
      : std::runtime_error(file + ": " + (key_path.empty() ? "" : key_path + ": ") + problem),
        file_(file), key_(key_path), problem_(problem) {}
  const std::string& file() const { return file_; }
  const std::string& key() const { return key_; }
  const std::string& problem() const { return problem_; }

 private:
  std::string file_, key_, problem_;
};

}  // namespace stakegate
