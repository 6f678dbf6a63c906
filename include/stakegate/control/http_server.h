#pragma once
// HTTP/1.1 listeners on one Boost.Asio io_context (the main lcore's): a Unix socket
// and, when configured, TCP with a bearer token, for the control API; a separate
// read-only listener for /metrics. Requests are bounded in header size, body size,
// read time and concurrent connections (docs/api.md lists the limits).
#include <utility>  // before Boost.Asio: Boost 1.74 + C++20 (see DESIGN.md pitfalls)
#include <boost/asio/io_context.hpp>
#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace stakegate {

struct HttpRequest {
  std::string method, target, content_type, authorization, body;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
};

struct HttpLimits {
  size_t header_bytes = 8 * 1024;
  size_t body_bytes = 64 * 1024 * 1024;  // an identity table of about 100k nodes in Flow JSON
  int read_timeout_s = 10;
  size_t max_connections = 64;
};

using HttpHandler = std::function<HttpResponse(const HttpRequest&)>;

// Compares two secrets in time that depends only on their lengths.
bool constant_time_equal(const std::string& a, const std::string& b);

class HttpServer {
 public:
  HttpServer(boost::asio::io_context& io, HttpLimits limits);
  ~HttpServer();
  // Throws std::runtime_error naming the path or address on failure.
  void listen_unix(const std::string& path, unsigned mode, HttpHandler handler);
  // With a token, every request needs "Authorization: Bearer <token>".
  void listen_tcp(const std::string& host_port, HttpHandler handler, std::optional<std::string> token);
  void close();
  size_t open_connections() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace stakegate
