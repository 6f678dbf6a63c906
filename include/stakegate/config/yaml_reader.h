#pragma once
// Walks a YAML document while keeping the key path, so every refusal can say where.
#include <yaml-cpp/yaml.h>

#include <functional>
#include <initializer_list>
#include <string>

#include "stakegate/base/error.h"

namespace stakegate {

class YamlReader {
 public:
  YamlReader(YAML::Node node, std::string file, std::string path)
      : node_(std::move(node)), file_(std::move(file)), path_(std::move(path)) {}

  [[noreturn]] void fail(const std::string& problem) const;
  const YAML::Node& node() const { return node_; }
  const std::string& path() const { return path_; }
  const std::string& file() const { return file_; }

  // Refuses keys not in `allowed` (a typo must not silently become a default).
  void expect_map(std::initializer_list<const char*> allowed) const;
  void expect_seq() const;
  // Refuses a key or value anywhere below that is not valid UTF-8 (it would end up in
  // report.json and API answers, which must be UTF-8), naming where it is.
  void expect_utf8() const;
  bool has(const char* key) const { return node_.IsMap() && node_[key].IsDefined() && !node_[key].IsNull(); }
  // `key: null` (or `key: ~`), given to turn off what is on by default.
  bool is_null(const char* key) const { return node_.IsMap() && node_[key].IsDefined() && node_[key].IsNull(); }
  YamlReader child(const char* key) const;
  YamlReader item(size_t i) const;
  size_t size() const { return node_.size(); }

  double number(double min, double max) const;
  uint64_t integer(uint64_t min, uint64_t max) const;
  std::string string() const;
  bool boolean() const;
  uint16_t port() const;
  std::string node_id() const;  // lower-cased; refuses anything but 64 hex characters

 private:
  YAML::Node node_;
  std::string file_, path_;
};

}  // namespace stakegate
