#include "stakegate/config/yaml_reader.h"

#include <charconv>
#include <cstdio>
#include <cmath>
#include <set>
#include <sstream>

#include "stakegate/base/node_id.h"
#include "stakegate/base/utf8.h"

namespace stakegate {

void YamlReader::fail(const std::string& problem) const {
  std::string where;
  if (node_.IsDefined() && node_.Mark().line >= 0) where = " (line " + std::to_string(node_.Mark().line + 1) + ")";
  throw ConfigError(file_, path_, problem + where);
}

void YamlReader::expect_map(std::initializer_list<const char*> allowed) const {
  if (!node_.IsMap()) fail("must be a mapping");
  std::set<std::string> seen;
  for (const auto& kv : node_) {
    // A key that is itself a list or mapping (fuzz finding: it threw yaml-cpp's BadConversion).
    if (!kv.first.IsScalar()) YamlReader(kv.first, file_, path_).fail("keys must be plain names, not lists or mappings");
    std::string key = kv.first.Scalar();
    // yaml-cpp keeps one of two equal keys silently; a repeated key is almost always a mistake.
    if (!seen.insert(key).second)
      YamlReader(kv.first, file_, path_.empty() ? key : path_ + "." + key).fail("key given twice");
    bool ok = false;
    for (const char* a : allowed) ok = ok || key == a;
    if (!ok) {
      std::string list;
      for (const char* a : allowed) list += std::string(list.empty() ? "" : ", ") + a;
      YamlReader(kv.first, file_, path_.empty() ? key : path_ + "." + key)
          .fail("unknown key (expected one of: " + list + ")");
    }
  }
}

void YamlReader::expect_seq() const {
  if (!node_.IsSequence()) fail("must be a list");
}

void YamlReader::expect_utf8() const {
  auto check = [](const YamlReader& at, const std::string& text, const char* what) {
    if (auto i = invalid_utf8_at(text)) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "0x%02x", static_cast<unsigned>(static_cast<unsigned char>(text[*i])));
      at.fail(std::string(what) + " is not valid UTF-8 (byte " + hex + " at position " + std::to_string(*i + 1) +
              "); a config file is UTF-8 text");
    }
  };
  if (node_.IsScalar()) {
    check(*this, node_.Scalar(), "the value");
  } else if (node_.IsSequence()) {
    for (size_t i = 0; i < node_.size(); ++i) item(i).expect_utf8();
  } else if (node_.IsMap()) {
    for (const auto& kv : node_) {
      if (kv.first.IsScalar()) {
        // Not named by its own bytes: they are what is wrong.
        check(YamlReader(kv.first, file_, path_), kv.first.Scalar(), "a key");
        const std::string key = kv.first.Scalar();
        YamlReader(kv.second, file_, path_.empty() ? key : path_ + "." + key).expect_utf8();
      } else {
        YamlReader(kv.first, file_, path_).expect_utf8();
        YamlReader(kv.second, file_, path_).expect_utf8();
      }
    }
  }
}

YamlReader YamlReader::child(const char* key) const {
  return YamlReader(node_[key], file_, path_.empty() ? key : path_ + "." + key);
}

YamlReader YamlReader::item(size_t i) const {
  return YamlReader(node_[i], file_, path_ + "[" + std::to_string(i) + "]");
}

static std::string show(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

double YamlReader::number(double min, double max) const {
  if (!node_.IsScalar()) fail("must be a number");
  const std::string& s = node_.Scalar();
  double v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc{} || end != s.data() + s.size() || !std::isfinite(v))
    fail("must be a number, got '" + s + "'");
  if (v < min || v > max) fail("must be between " + show(min) + " and " + show(max) + ", got " + s);
  return v;
}

uint64_t YamlReader::integer(uint64_t min, uint64_t max) const {
  if (!node_.IsScalar()) fail("must be a whole number");
  const std::string& s = node_.Scalar();
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc{} || end != s.data() + s.size()) fail("must be a whole number, got '" + s + "'");
  if (v < min || v > max)
    fail("must be between " + std::to_string(min) + " and " + std::to_string(max) + ", got " + s);
  return v;
}

std::string YamlReader::string() const {
  if (!node_.IsScalar()) fail("must be a string");
  return node_.Scalar();
}

bool YamlReader::boolean() const {
  if (!node_.IsScalar()) fail("must be true or false");
  const std::string& s = node_.Scalar();
  if (s == "true") return true;
  if (s == "false") return false;
  fail("must be true or false, got '" + s + "'");
}

uint16_t YamlReader::port() const {
  if (!node_.IsScalar()) fail("must be a port number");
  const std::string& s = node_.Scalar();
  unsigned v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc{} || end != s.data() + s.size() || v < 1 || v > 65535)
    fail("must be a port number between 1 and 65535, got '" + s + "'");
  return static_cast<uint16_t>(v);
}

std::string YamlReader::node_id() const {
  auto id = NodeId::parse(string());
  if (!id) fail("must be 64 hex characters, got '" + node_.Scalar() + "'");
  return id->str();
}

}  // namespace stakegate
