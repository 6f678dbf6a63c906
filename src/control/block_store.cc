#include "stakegate/control/block_store.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "stakegate/base/error.h"
#include "stakegate/base/files.h"

namespace stakegate {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

std::string file_of(const std::string& dir) { return (fs::path(dir) / "blocks.json").string(); }

void write_all(int fd, const std::string& text, const std::string& path) {
  for (size_t done = 0; done < text.size();) {
    ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw std::runtime_error("writing " + path + ": " + std::strerror(errno));
    done += static_cast<size_t>(n);
  }
}

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
  const std::string path = file_of(state_dir), tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
  if (fd < 0) throw std::runtime_error("cannot write " + tmp + ": " + std::strerror(errno));
  try {
    write_all(fd, json{{"version", 1}, {"blocks", list}}.dump(1) + "\n", tmp);
    if (::fsync(fd) != 0) throw std::runtime_error("fsync " + tmp + ": " + std::strerror(errno));
  } catch (...) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    ::unlink(tmp.c_str());
    throw std::runtime_error("cannot replace " + path + ": " + std::strerror(errno));
  }
  // The rename itself reaches the disk with the directory.
  if (int dfd = ::open(state_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
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
