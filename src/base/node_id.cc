#include "stakegate/base/node_id.h"

namespace stakegate {
namespace {
int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}
}  // namespace

std::optional<NodeId> NodeId::parse(std::string_view text) {
  if (text.size() != kHexChars) return std::nullopt;
  std::string out(text);
  for (char& c : out) {
    if (hex_digit(c) < 0) return std::nullopt;
    if (c >= 'A' && c <= 'F') c = static_cast<char>(c - 'A' + 'a');
  }
  return NodeId(std::move(out));
}

bool is_node_id(std::string_view text) {
  if (text.size() != NodeId::kHexChars) return false;
  for (char c : text)
    if (hex_digit(c) < 0 || (c >= 'A' && c <= 'F')) return false;
  return true;
}

}  // namespace stakegate
