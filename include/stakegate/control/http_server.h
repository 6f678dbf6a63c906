#pragma once
// HTTP/1.1 listeners on one Boost.Asio io_context (the main lcore's): Unix sockets and
// TCP (optionally TLS) for the control API, and a separate listener for /metrics.
//
// Nothing is read past the request headers until the caller is authenticated: the
// listener's authenticator sees the headers, the peer and its TLS certificate, and
// either grants an access level or the connection gets a 401 and is closed. Each
// listener has its own connection limit (a flood on TCP cannot lock the operator out of
// the Unix socket), a per-address limit, and an address that keeps failing
// authentication is refused for a while (back-off doubling up to a minute). Header
// size, body size and read time are bounded; a declared body over the limit is refused
// from its Content-Length. Running out of file descriptors pauses accepting instead of
// spinning. docs/api.md, "Security model", lists the limits.
#include <utility>  // before Boost.Asio: Boost 1.74 + C++20 (see DESIGN.md pitfalls)
#include <boost/asio/io_context.hpp>
#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace stakegate {

// What a caller may do: read (status, counters, lists) or also change the policy.
enum class Access { kRead, kAdmin };

struct HttpRequest {
  std::string method, target, content_type, authorization, body;
  Access access = Access::kRead;
  std::string caller;  // who, for the audit log: "unix uid 0 (root) pid 1234", "tcp 192.0.2.7 (cert CN=ops)"
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
};

// What an authenticator sees: the request line and headers, never the body.
struct HttpAuthInput {
  const std::string& method;
  const std::string& target;
  const std::string& authorization;
  const std::string& peer;          // "192.0.2.7" or "unix"
  const std::string& tls_subject;   // the client certificate's subject, or empty
};
// An access level, or nullopt: 401 and the connection is closed.
using HttpAuthenticator = std::function<std::optional<Access>(const HttpAuthInput&)>;

struct HttpLimits {
  size_t header_bytes = 8 * 1024;
  size_t body_bytes = 64 * 1024 * 1024;  // an identity table of about 100k nodes in Flow JSON
  int read_timeout_s = 10;
  size_t max_connections = 32;    // per listener
  size_t max_per_peer = 8;        // per remote address (TCP)
  unsigned auth_failures_before_backoff = 5;
  int max_backoff_s = 60;
};

// The handler answers through the reply callback, now or later (an RPC that waits for a
// helper thread); it is called on the io_context's thread.
using HttpReply = std::function<void(HttpResponse)>;
using HttpHandler = std::function<void(const HttpRequest&, HttpReply)>;
// A handler that answers at once.
HttpHandler sync_handler(std::function<HttpResponse(const HttpRequest&)> f);

// Compares two secrets in time that depends only on their lengths.
bool constant_time_equal(const std::string& a, const std::string& b);

// TLS settings of a TCP listener: certificate chain and key (PEM files), and optionally
// the CA that client certificates must chain to (then a client without one is refused).
struct TlsFiles {
  std::string cert, key, client_ca;
};
// Loads them as a listener would; throws std::runtime_error naming the file that failed.
void check_tls_files(const TlsFiles& f);
// The id of the group named `name`, as a Unix listener gives its socket to it.
std::optional<unsigned> group_id(const std::string& name);
// True when a process accepts connections on the Unix socket at `path` (another gateway
// serving its control API there); false for no file, a stale socket, or anything else.
bool unix_socket_answers(const std::string& path);

class HttpServer {
 public:
  HttpServer(boost::asio::io_context& io, HttpLimits limits);
  ~HttpServer();
  // A Unix socket whose callers all get `access` (the socket's mode and group decide who
  // may connect); `group` empty keeps the process's group. A stale socket at `path` is
  // replaced; one that another process still serves is not (refused: two gateways on one
  // config). Throws std::runtime_error naming the path on failure. close() removes the
  // socket only while `path` is still this one.
  void listen_unix(const std::string& path, unsigned mode, const std::string& group, Access access, HttpHandler handler);
  // TCP, in TLS when `tls` is given; every request is authenticated by `auth`.
  void listen_tcp(const std::string& host_port, HttpHandler handler, HttpAuthenticator auth,
                  std::optional<TlsFiles> tls = std::nullopt);
  // Re-reads the TLS files of every TLS listener (SIGHUP); the old ones stay on failure.
  // Returns the problems, empty when all were reloaded.
  std::string reload_tls();
  // Starts accepting again on a listener whose accept could not be started (memory
  // exhausted); the control loop calls it on every tick.
  void resume_accepting();
  // After an exception in the control loop: a pending accept may have been lost inside
  // Asio, so every listener's is cancelled and started again by resume_accepting().
  void restart_accepting();
  void close();
  size_t open_connections() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace stakegate
