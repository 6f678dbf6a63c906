#include "stakegate/control/block_store.h"

#include <filesystem>
#include <nlohmann/json.hpp>

#include "stakegate/base/error.h"
#include "stakegate/base/files.h"
#include "stakegate/base/json_text.h"

namespace stakegate {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

std::string file_of(const std::string& dir) { return (fs::path(dir) / "blocks.json").string(); }

}  // namespace

void save_api_blocks(const std::string& state_dir, const std::vector<ActiveBlock>& blocks) {
  json list = json::array();
  for (const ActiveBlock& b : blocks) {
    if (b.origin != "api") continue;
    list.push_back({{"cidr", b.entry.cidr ? b.entry.cidr->to_string() : ""},
                    {"node_id", b.entry.node_id},
                    {"reason", b.entry.reason},
                    {"expires_at", b.expires_at},
                    {"created_by", b.created_by},
                    {"created_at", b.created_at}});
  }
  std::error_code ec;
  fs::create_directories(state_dir, ec);
  write_file_atomically(file_of(state_dir), json_text(json{{"version", 1}, {"blocks", list}}, 1) + "\n", 0640);
}

std::vector<ActiveBlock> load_api_blocks(const std::string& state_dir, int64_t now, std::vector<std::string>& warnings) {
  std::vector<ActiveBlock> out;
  const std::string path = file_of(state_dir);
  std::error_code ec;
  if (!fs::exists(path, ec)) return out;
  try {
    json j = json::parse(read_text_file(path, path, "blocks", 256u << 20));
    if (!j.is_object() || j.value("version", 0) != 1 || !j.contains("blocks") || !j["blocks"].is_array())
      throw std::runtime_error("not a stakegate blocks file (version 1)");
    for (const json& b : j["blocks"]) {
      ActiveBlock a;
      a.origin = "api";
      const std::string cidr = b.at("cidr").get<std::string>();
      if (!cidr.empty()) {
        auto c = parse_cidr(cidr);
        if (!c) throw std::runtime_error("bad CIDR '" + cidr + "'");
        // Made by a version that took it: the other blocks are restored, this one is not.
        if (auto refusal = block_refusal(*c); !refusal.empty()) {
          warnings.push_back(path + ": the block of " + cidr + " is not restored: " + refusal);
          continue;
        }
        a.entry.cidr = c;
      }
      a.entry.node_id = b.at("node_id").get<std::string>();
      if (cidr.empty() == a.entry.node_id.empty()) throw std::runtime_error("an entry needs exactly one of cidr and node_id");
      a.entry.reason = b.value("reason", "");
      a.expires_at = b.value("expires_at", int64_t{0});
      a.created_by = b.value("created_by", "");
      a.created_at = b.value("created_at", int64_t{0});
      if (a.expires_at != 0 && a.expires_at <= now) continue;  // expired while stopped
      out.push_back(std::move(a));
    }
  } catch (const std::exception& e) {
    const std::string aside = path + ".damaged";
    fs::rename(path, aside, ec);
    warnings.push_back(path + ": " + e.what() + "; no API blocks restored (the file is kept as " + aside + ")");
    out.clear();
  }
  return out;
}

}  // namespace stakegate
