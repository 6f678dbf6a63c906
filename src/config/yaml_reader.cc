#include "stakegate/config/yaml_reader.h"

#include <charconv>
#include <cmath>
#include <cstdio>
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

namespace {

void check_utf8(const YamlReader& at, const std::string& text, const char* what) {
  if (auto i = invalid_utf8_at(text)) {
    char hex[8];
    std::snprintf(hex, sizeof hex, "0x%02x", static_cast<unsigned>(static_cast<unsigned char>(text[*i])));
    at.fail(std::string(what) + " is not valid UTF-8 (byte " + hex + " at position " + std::to_string(*i + 1) +
            "); a config file is UTF-8 text");
  }
}

// An alias is the node it names, so a list or mapping seen before (by its place in the
// file) is not walked again: `&x [*x]` would recurse for ever, and nested aliases
// ("billion laughs") would be walked exponentially often.
void walk_utf8(const YamlReader& r, std::set<size_t>& seen) {
  const YAML::Node& n = r.node();
  if (n.IsScalar()) return check_utf8(r, n.Scalar(), "the value");
  if (!n.IsSequence() && !n.IsMap()) return;
  if (n.Mark().pos >= 0 && !seen.insert(static_cast<size_t>(n.Mark().pos)).second) return;
  if (n.IsSequence()) {
    for (size_t i = 0; i < n.size(); ++i) walk_utf8(r.item(i), seen);
    return;
  }
  const std::string& path = r.path();
  for (const auto& kv : n) {
    if (kv.first.IsScalar()) {
      // Not named by its own bytes: they are what is wrong.
      check_utf8(YamlReader(kv.first, r.file(), path), kv.first.Scalar(), "a key");
      const std::string key = kv.first.Scalar();
      walk_utf8(YamlReader(kv.second, r.file(), path.empty() ? key : path + "." + key), seen);
    } else {
      walk_utf8(YamlReader(kv.first, r.file(), path), seen);
      walk_utf8(YamlReader(kv.second, r.file(), path), seen);
    }
  }
}

}  // namespace

void YamlReader::expect_utf8() const {
  std::set<size_t> seen;
  walk_utf8(*this, seen);
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
