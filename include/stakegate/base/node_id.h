#pragma once
// A Flow NodeID: 32 bytes, written as 64 hex characters. Tables, configs, the API and
// stakegatectl all accept either case; the one parser below lower-cases and validates,
// so every NodeID the gateway stores or compares is in the same form.
#include <optional>
#include <string>
#include <string_view>

namespace stakegate {

class NodeId {
 public:
  static constexpr size_t kHexChars = 64;
  // The lower-case form of `text`, or nullopt unless it is exactly 64 hex characters.
  static std::optional<NodeId> parse(std::string_view text);
  const std::string& str() const { return hex_; }
  friend bool operator==(const NodeId&, const NodeId&) = default;
  friend auto operator<=>(const NodeId&, const NodeId&) = default;

 private:
  explicit NodeId(std::string hex) : hex_(std::move(hex)) {}
  std::string hex_;
};

// True when `text` is already a NodeID in its stored (lower-case) form.
bool is_node_id(std::string_view text);

}  // namespace stakegate
