#include "stakegate/control/access.h"

#include <crypt.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <tuple>

#include "stakegate/base/clock.h"
#include "stakegate/base/error.h"
#include "stakegate/base/files.h"

namespace stakegate {

std::string read_secret_file(const std::string& path, const std::string& cfg_file, const std::string& key) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) throw ConfigError(cfg_file, key, "cannot read '" + path + "': " + std::strerror(errno));
  if (S_ISREG(st.st_mode) && (st.st_mode & 077))
    throw ConfigError(cfg_file, key, "'" + path + "' may be read by its group or others (mode " +
                                         [&] {
                                           char b[8];
                                           std::snprintf(b, sizeof b, "%04o", st.st_mode & 07777);
                                           return std::string(b);
                                         }() +
                                         "): chmod 600 it");
  std::string text = read_text_file(path, cfg_file, key, 4096);  // regular files only, bounded
  text = text.substr(0, text.find('\n'));
  while (!text.empty() && (text.back() == '\r' || text.back() == ' ')) text.pop_back();
  if (text.size() < 16) throw ConfigError(cfg_file, key, "'" + path + "' holds a token shorter than 16 characters");
  return text;
}

ControlTokens load_tokens(const ControlConfig& c, const std::string& cfg_file) {
  ControlTokens t;
  if (c.tcp.empty()) return t;
  t.admin = read_secret_file(c.token_file, cfg_file, "control.token_file");
  if (!c.readonly_token_file.empty()) {
    t.read = read_secret_file(c.readonly_token_file, cfg_file, "control.readonly_token_file");
    if (t.read == t.admin) throw ConfigError(cfg_file, "control.readonly_token_file", "must differ from the admin token");
  }
  return t;
}

ControlTokens check_control_files(const ControlConfig& c, const std::string& cfg_file) {
  ControlTokens t = load_tokens(c, cfg_file);
  for (const auto& [key, socket, group] : {std::tuple{"control.socket_group", &c.socket, &c.socket_group},
                                           std::tuple{"control.readonly_group", &c.readonly_socket, &c.readonly_group}}) {
    if (!socket->empty() && !group->empty() && !group_id(*group))
      throw ConfigError(cfg_file, key, "no group named '" + *group + "' on this host");
  }
  for (const auto& [key, socket] : {std::pair{"control.socket", &c.socket}, std::pair{"control.readonly_socket", &c.readonly_socket}}) {
    if (socket->empty()) continue;
    const std::string folder = std::filesystem::path(*socket).parent_path().string();
    if (std::string problem = folder_problem(folder.empty() ? "." : folder); !problem.empty())
      throw ConfigError(cfg_file, key, "cannot make the socket " + *socket + ": " + problem);
  }
  for (const auto& [key, listener, tls] : {std::tuple{"control.tls", &c.tcp, &c.tls},
                                           std::tuple{"control.metrics_tls", &c.metrics, &c.metrics_tls}}) {
    if (listener->empty() || !tls->on()) continue;
    try {
      check_tls_files({tls->cert, tls->key, tls->client_ca});
    } catch (const std::exception& e) {
      throw ConfigError(cfg_file, key, e.what());
    }
  }
  return t;
}

HttpAuthenticator bearer_authenticator(std::shared_ptr<const ControlTokens>* tokens) {
  return [tokens](const HttpAuthInput& in) -> std::optional<Access> {
    const std::string prefix = "Bearer ";
    if (in.authorization.rfind(prefix, 0) != 0) return std::nullopt;
    const std::string given = in.authorization.substr(prefix.size());
    std::shared_ptr<const ControlTokens> t = *tokens;
    // Both compared every time: the answer's timing says nothing about which matched.
    const bool admin = !t->admin.empty() && constant_time_equal(given, t->admin);
    const bool read = !t->read.empty() && constant_time_equal(given, t->read);
    if (admin) return Access::kAdmin;
    if (read) return Access::kRead;
    return std::nullopt;
  };
}

std::string bcrypt_hash(const std::string& password, unsigned cost) {
  unsigned char rnd[16];
  if (RAND_bytes(rnd, sizeof rnd) != 1) throw std::runtime_error("no random bytes for a salt");
  char setting[CRYPT_GENSALT_OUTPUT_SIZE];
  if (!crypt_gensalt_rn("$2b$", cost, reinterpret_cast<const char*>(rnd), sizeof rnd, setting, sizeof setting))
    throw std::runtime_error(std::string("bcrypt salt: ") + std::strerror(errno));
  crypt_data data{};
  const char* h = crypt_r(password.c_str(), setting, &data);
  if (!h || h[0] == '*') throw std::runtime_error("bcrypt is not available in this libcrypt");
  return h;
}

bool bcrypt_verify(const std::string& password, const std::string& hash) {
  crypt_data data{};
  const char* h = crypt_r(password.c_str(), hash.c_str(), &data);
  return h && h[0] != '*' && constant_time_equal(h, hash);
}

namespace {
std::string sha256(const std::string& s) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  EVP_Digest(s.data(), s.size(), md, &len, EVP_sha256(), nullptr);
  return std::string(reinterpret_cast<char*>(md), len);
}
long long now_s() { return steady_seconds(); }
}  // namespace

bool BasicAuth::check(const std::string& authorization) {
  const std::string prefix = "Basic ";
  if (authorization.rfind(prefix, 0) != 0 || authorization.size() > 1024) return false;
  const std::string b64 = authorization.substr(prefix.size());
  std::string raw(b64.size(), '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(raw.data()), reinterpret_cast<const unsigned char*>(b64.data()),
                          static_cast<int>(b64.size()));
  if (n < 0) return false;
  // EVP_DecodeBlock writes the padding's bytes too: drop one per '='.
  size_t pad = 0;
  for (size_t i = b64.size(); i > 0 && b64[i - 1] == '=' && pad < 2; --i) ++pad;
  if (static_cast<size_t>(n) < pad) return false;
  raw.resize(static_cast<size_t>(n) - pad);
  auto colon = raw.find(':');
  if (colon == std::string::npos) return false;
  const std::string user = raw.substr(0, colon), password = raw.substr(colon + 1);
  auto u = users_.find(user);
  if (u == users_.end()) {
    bcrypt_verify(password, "$2b$12$C6UzMDM.H6dfI/f/IKxGhuIaRdzDN5kMWQ7X/OXJmSd4UL/2WzQrG");  // same time as a user
    return false;
  }
  const std::string digest = sha256(password);
  auto v = verified_.find(user);
  if (v != verified_.end() && v->second.second > now_s() && constant_time_equal(v->second.first, digest)) return true;
  if (!bcrypt_verify(password, u->second)) return false;
  verified_[user] = {digest, now_s() + 300};
  return true;
}

}  // namespace stakegate
