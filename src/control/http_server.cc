#include "stakegate/control/http_server.h"

#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>
#include <set>

namespace stakegate {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

bool constant_time_equal(const std::string& a, const std::string& b) {
  size_t n = std::max(a.size(), b.size());
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < n; ++i) {
    unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= static_cast<unsigned char>(x ^ y);
  }
  return diff == 0;
}

struct HttpServer::Impl : std::enable_shared_from_this<HttpServer::Impl> {
  asio::io_context& io;
  HttpLimits limits;
  size_t connections = 0;
  bool closed = false;
  std::vector<std::shared_ptr<asio::local::stream_protocol::acceptor>> unix_acceptors;
  std::vector<std::shared_ptr<asio::ip::tcp::acceptor>> tcp_acceptors;
  std::vector<std::string> unix_paths;

  Impl(asio::io_context& i, HttpLimits l) : io(i), limits(l) {}

  template <typename Stream>
  struct Session : std::enable_shared_from_this<Session<Stream>> {
    std::shared_ptr<Impl> server;
    beast::basic_stream<typename Stream::protocol_type, asio::any_io_executor, beast::unlimited_rate_policy> stream;
    beast::flat_buffer buffer;
    std::optional<http::request_parser<http::string_body>> parser;
    http::response<http::string_body> response;
    HttpHandler handler;
    std::optional<std::string> token;

    Session(std::shared_ptr<Impl> s, Stream sock, HttpHandler h, std::optional<std::string> t)
        : server(std::move(s)), stream(std::move(sock)), handler(std::move(h)), token(std::move(t)) {}
    ~Session() { server->connections--; }

    void start() { read(); }

    void read() {
      parser.emplace();
      parser->header_limit(static_cast<uint32_t>(server->limits.header_bytes));
      parser->body_limit(server->limits.body_bytes);
      // The whole request, headers and body, must arrive within the read timeout.
      stream.expires_after(std::chrono::seconds(server->limits.read_timeout_s));
      http::async_read(stream, buffer, *parser,
                       [self = this->shared_from_this()](beast::error_code ec, size_t) { self->on_read(ec); });
    }

    void on_read(beast::error_code ec) {
      if (ec == http::error::end_of_stream || ec == beast::error::timeout || ec == asio::error::operation_aborted) return close();
      if (ec == http::error::body_limit) return fail(413, "payload_too_large", "request body over " + std::to_string(server->limits.body_bytes) + " bytes");
      if (ec == http::error::header_limit) return fail(431, "header_too_large", "request headers over " + std::to_string(server->limits.header_bytes) + " bytes");
      if (ec) return fail(400, "bad_request", "malformed HTTP request: " + ec.message());
      auto& req = parser->get();
      HttpRequest r;
      r.method = std::string(req.method_string());
      r.target = std::string(req.target());
      r.content_type = std::string(req[http::field::content_type]);
      r.authorization = std::string(req[http::field::authorization]);
      r.body = std::move(req.body());
      if (token) {
        const std::string prefix = "Bearer ";
        bool ok = r.authorization.rfind(prefix, 0) == 0 && constant_time_equal(r.authorization.substr(prefix.size()), *token);
        if (!ok) return respond({401, "application/json", error_body("unauthenticated", "missing or wrong bearer token")},
                                req.keep_alive());
      }
      HttpResponse out;
      try {
        out = handler(r);
      } catch (const std::exception& e) {
        out = {500, "application/json", error_body("internal", e.what())};
      }
      respond(std::move(out), req.keep_alive());
    }

    static std::string error_body(const std::string& code, const std::string& message) {
      return nlohmann::json{{"code", code}, {"message", message}}.dump();
    }

    void fail(int status, const std::string& code, const std::string& message) {
      respond({status, "application/json", error_body(code, message)}, false);
    }

    void respond(HttpResponse out, bool keep_alive) {
      response = {};
      response.result(static_cast<http::status>(out.status));
      response.version(11);
      response.set(http::field::server, "stakegate");
      response.set(http::field::content_type, out.content_type);
      response.keep_alive(keep_alive && !server->closed);
      response.body() = std::move(out.body);
      response.prepare_payload();
      stream.expires_after(std::chrono::seconds(server->limits.read_timeout_s));
      http::async_write(stream, response, [self = this->shared_from_this()](beast::error_code ec, size_t) {
        if (ec || !self->response.keep_alive()) return self->close();
        self->read();
      });
    }

    void close() {
      beast::error_code ec;
      stream.socket().shutdown(Stream::shutdown_both, ec);
      stream.socket().close(ec);
    }
  };

  template <typename Acceptor, typename Stream>
  void accept(std::shared_ptr<Acceptor> acc, HttpHandler handler, std::optional<std::string> token) {
    acc->async_accept([self = shared_from_this(), acc, handler, token](beast::error_code ec, Stream sock) {
      if (self->closed || ec == asio::error::operation_aborted) return;
      if (!ec) {
        if (self->connections >= self->limits.max_connections) {
          beast::error_code ignore;
          sock.close(ignore);  // over the limit: refuse rather than queue
        } else {
          self->connections++;
          std::make_shared<Session<Stream>>(self, std::move(sock), handler, token)->start();
        }
      }
      self->accept<Acceptor, Stream>(acc, handler, token);
    });
  }
};

HttpServer::HttpServer(asio::io_context& io, HttpLimits limits) : impl_(std::make_shared<Impl>(io, limits)) {}
HttpServer::~HttpServer() { close(); }

void HttpServer::listen_unix(const std::string& path, unsigned mode, HttpHandler handler) {
  using proto = asio::local::stream_protocol;
  ::unlink(path.c_str());  // a stale socket from a previous run
  auto acc = std::make_shared<proto::acceptor>(impl_->io);
  beast::error_code ec;
  acc->open(proto(), ec);
  if (!ec) acc->bind(proto::endpoint(path), ec);
  if (!ec) acc->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) throw std::runtime_error("control socket " + path + ": " + ec.message());
  if (::chmod(path.c_str(), mode) != 0) throw std::runtime_error("control socket " + path + ": chmod failed");
  impl_->unix_acceptors.push_back(acc);
  impl_->unix_paths.push_back(path);
  impl_->accept<proto::acceptor, proto::socket>(acc, std::move(handler), std::nullopt);
}

void HttpServer::listen_tcp(const std::string& host_port, HttpHandler handler, std::optional<std::string> token) {
  auto colon = host_port.rfind(':');
  if (colon == std::string::npos) throw std::runtime_error("listener '" + host_port + "': expected host:port");
  std::string host = host_port.substr(0, colon);
  if (host.size() > 1 && host.front() == '[') host = host.substr(1, host.size() - 2);
  beast::error_code ec;
  auto addr = asio::ip::make_address(host, ec);
  if (ec) throw std::runtime_error("listener '" + host_port + "': not an IP address");
  unsigned port = static_cast<unsigned>(std::stoul(host_port.substr(colon + 1)));
  auto acc = std::make_shared<asio::ip::tcp::acceptor>(impl_->io);
  asio::ip::tcp::endpoint ep(addr, static_cast<uint16_t>(port));
  acc->open(ep.protocol(), ec);
  if (!ec) acc->set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acc->bind(ep, ec);
  if (!ec) acc->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) throw std::runtime_error("listener " + host_port + ": " + ec.message());
  impl_->tcp_acceptors.push_back(acc);
  impl_->accept<asio::ip::tcp::acceptor, asio::ip::tcp::socket>(acc, std::move(handler), std::move(token));
}

void HttpServer::close() {
  if (!impl_ || impl_->closed) return;
  impl_->closed = true;
  beast::error_code ec;
  for (auto& a : impl_->unix_acceptors) a->close(ec);
  for (auto& a : impl_->tcp_acceptors) a->close(ec);
  for (auto& p : impl_->unix_paths) ::unlink(p.c_str());
}

size_t HttpServer::open_connections() const { return impl_->connections; }

}  // namespace stakegate
