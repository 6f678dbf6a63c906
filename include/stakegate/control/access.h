#pragma once
// Who may use the control plane, and how they prove it (docs/api.md, "Security model"):
// bearer tokens for the TCP control listener (an admin token, and optionally a read-only
// one), bcrypt basic-auth users for /metrics. Secrets come from files that only their
// owner may read; they are re-read on SIGHUP.
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "stakegate/config/config.h"
#include "stakegate/control/http_server.h"

namespace stakegate {

// The first line of a secret file: a regular file, at most 4 KiB, readable by its owner
// only (mode 0600 or 0400), at least 16 characters. ConfigError names the file and key.
std::string read_secret_file(const std::string& path, const std::string& cfg_file, const std::string& key);

// The TCP control listener's tokens; replaced whole on SIGHUP.
struct ControlTokens {
  std::string admin, read;  // read empty: no read-only token
};
ControlTokens load_tokens(const ControlConfig& c, const std::string& cfg_file);

// Everything of the host the control plane's listeners need, checked before `run` touches
// a device, and by check-config: the token files (load_tokens, whose tokens it returns),
// the groups of the Unix sockets, the TLS files of the TCP listeners. Throws ConfigError
// naming the config file, the key and the problem.
ControlTokens check_control_files(const ControlConfig& c, const std::string& cfg_file);

// "Authorization: Bearer <token>": the admin token grants kAdmin, the read-only token
// kRead; compared in constant time. `tokens` is read at each request (it may be swapped).
HttpAuthenticator bearer_authenticator(std::shared_ptr<const ControlTokens>* tokens);

// bcrypt as libxcrypt implements it ($2b$): a hash for a password, and a check.
std::string bcrypt_hash(const std::string& password, unsigned cost = 12);
bool bcrypt_verify(const std::string& password, const std::string& hash);

// HTTP basic auth against bcrypt hashes (node_exporter's web config style). bcrypt is
// slow on purpose, so a credential that verified is remembered (as its SHA-256) for
// five minutes; failed ones are not, and the listener backs off their address.
class BasicAuth {
 public:
  explicit BasicAuth(std::vector<std::pair<std::string, std::string>> users) : users_(users.begin(), users.end()) {}
  bool empty() const { return users_.empty(); }
  bool check(const std::string& authorization);

 private:
  std::map<std::string, std::string> users_;
  std::map<std::string, std::pair<std::string, long long>> verified_;  // user -> (sha256 of password, until)
};

}  // namespace stakegate
