#include "stakegate/control/http_server.h"

#include <grp.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <spdlog/spdlog.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <chrono>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>

#include "stakegate/base/json_text.h"

namespace stakegate {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using Clock = std::chrono::steady_clock;

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

HttpHandler sync_handler(std::function<HttpResponse(const HttpRequest&)> f) {
  return [f = std::move(f)](const HttpRequest& r, HttpReply reply) { reply(f(r)); };
}

namespace {

std::string error_body(const std::string& code, const std::string& message) {
  return json_text(nlohmann::json{{"code", code}, {"message", message}});
}

std::shared_ptr<ssl::context> make_tls_context(const TlsFiles& f) {
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                   ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 | ssl::context::single_dh_use);
  auto step = [](const std::string& what, const std::string& file, auto&& fn) {
    if (::access(file.c_str(), R_OK) != 0) throw std::runtime_error(what + " " + file + ": " + std::strerror(errno));
    boost::system::error_code ec;
    fn(ec);
    if (!ec) return;
    // OpenSSL's own reason ("no start line", "key values mismatch"), not Asio's "asio.ssl error".
    const char* reason = ec.category() == asio::error::get_ssl_category()
                             ? ERR_reason_error_string(static_cast<unsigned long>(ec.value()))
                             : nullptr;
    throw std::runtime_error(what + " " + file + ": " + (reason ? std::string(reason) : ec.message()));
  };
  step("TLS certificate", f.cert, [&](auto& ec) { ctx->use_certificate_chain_file(f.cert, ec); });
  step("TLS key", f.key, [&](auto& ec) { ctx->use_private_key_file(f.key, ssl::context::pem, ec); });
  if (!f.client_ca.empty()) {
    step("TLS client CA", f.client_ca, [&](auto& ec) { ctx->load_verify_file(f.client_ca, ec); });
    ctx->set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
  }
  return ctx;
}

std::string user_name(uid_t uid) {
  struct passwd pw, *found = nullptr;
  char buf[1024];
  if (getpwuid_r(uid, &pw, buf, sizeof buf, &found) == 0 && found) return found->pw_name;
  return std::to_string(uid);
}

}  // namespace

struct HttpServer::Impl : std::enable_shared_from_this<HttpServer::Impl> {
  struct Peer {
    size_t connections = 0;
    unsigned failures = 0;
    Clock::time_point blocked_until{};
  };
  struct Listener {
    std::string name;
    HttpHandler handler;
    HttpAuthenticator auth;             // TCP
    std::optional<Access> fixed_access;  // Unix: the socket's permissions decide
    std::optional<TlsFiles> tls_files;
    std::shared_ptr<ssl::context> tls;  // null: plain
    size_t connections = 0;
    std::map<std::string, Peer> peers;
    std::unique_ptr<asio::steady_timer> retry;
    Clock::time_point last_fd_warning{};
    // An accept or its retry is pending. When starting one threw (memory exhausted), this
    // stays false and resume_accepting(), called on every tick, starts it again. An
    // exception inside Asio can also drop a pending accept unseen: restart_accepting()
    // then cancels whatever is pending, and completions of an older `round` are ignored.
    bool armed = false;
    uint64_t round = 0;
    std::function<void()> resume;
    std::function<void()> cancel;
  };

  asio::io_context& io;
  HttpLimits limits;
  bool closed = false;
  std::vector<std::shared_ptr<Listener>> listeners;
  std::vector<std::shared_ptr<asio::local::stream_protocol::acceptor>> unix_acceptors;
  std::vector<std::shared_ptr<asio::ip::tcp::acceptor>> tcp_acceptors;
  std::vector<std::pair<std::string, ino_t>> unix_paths;  // and the inode of the socket bound there

  Impl(asio::io_context& i, HttpLimits l) : io(i), limits(l) {}

  size_t open_connections() const {
    size_t n = 0;
    for (const auto& l : listeners) n += l->connections;
    return n;
  }

  // A failed authentication from `peer`: after a few, the address waits, doubling.
  void auth_failed(Listener& l, const std::string& peer) {
    auto it = l.peers.find(peer);
    if (it == l.peers.end()) return;
    Peer& p = it->second;
    if (++p.failures >= limits.auth_failures_before_backoff) {
      int s = std::min<int>(limits.max_backoff_s, 1 << std::min(6u, p.failures - limits.auth_failures_before_backoff));
      p.blocked_until = Clock::now() + std::chrono::seconds(s);
      spdlog::warn("control: {} failed to authenticate {} times on {}: its connections are refused for {} s", peer,
                   p.failures, l.name, s);
    }
  }

  template <typename Stream>
  struct Session : std::enable_shared_from_this<Session<Stream>> {
    std::shared_ptr<Impl> server;
    std::shared_ptr<Listener> listener;
    std::shared_ptr<ssl::context> tls;  // keeps the context of this connection alive
    Stream stream;
    std::string peer, caller, tls_subject;
    beast::flat_buffer buffer;
    std::optional<http::request_parser<http::string_body>> parser;
    http::response<http::string_body> response;
    Access access = Access::kRead;
    bool replied = false;

    Session(std::shared_ptr<Impl> s, std::shared_ptr<Listener> l, std::shared_ptr<ssl::context> t, Stream st,
            std::string p, std::string c)
        : server(std::move(s)), listener(std::move(l)), tls(std::move(t)), stream(std::move(st)), peer(std::move(p)),
          caller(std::move(c)) {}
    ~Session() {
      listener->connections--;
      auto it = listener->peers.find(peer);
      if (it != listener->peers.end() && it->second.connections > 0) it->second.connections--;
    }

    auto& lowest() { return beast::get_lowest_layer(stream); }

    void start() {
      if constexpr (std::is_same_v<Stream, beast::ssl_stream<beast::tcp_stream>>) {
        lowest().expires_after(std::chrono::seconds(server->limits.read_timeout_s));
        stream.async_handshake(ssl::stream_base::server, [self = this->shared_from_this()](beast::error_code ec) {
          if (ec) {
            spdlog::warn("control: TLS handshake with {} on {} failed: {}", self->peer, self->listener->name, ec.message());
            return self->close();
          }
          if (X509* cert = SSL_get1_peer_certificate(self->stream.native_handle())) {
            char buf[512];
            X509_NAME_oneline(X509_get_subject_name(cert), buf, sizeof buf);
            self->tls_subject = buf;
            X509_free(cert);
            self->caller += " (cert " + self->tls_subject + ")";
          }
          self->read();
        });
      } else {
        read();
      }
    }

    void read() {
      parser.emplace();
      parser->header_limit(static_cast<uint32_t>(server->limits.header_bytes));
      parser->body_limit(server->limits.body_bytes);
      replied = false;
      // The whole request, headers and body, must arrive within the read timeout.
      lowest().expires_after(std::chrono::seconds(server->limits.read_timeout_s));
      http::async_read_header(stream, buffer, *parser,
                              [self = this->shared_from_this()](beast::error_code ec, size_t) { self->on_header(ec); });
    }

    bool read_error(beast::error_code ec) {
      if (!ec) return false;
      if (ec == http::error::end_of_stream || ec == beast::error::timeout || ec == asio::error::operation_aborted ||
          ec == asio::error::eof || ec == asio::ssl::error::stream_truncated) {
        close();
      } else if (ec == http::error::body_limit) {
        fail(413, "payload_too_large", "request body over " + std::to_string(server->limits.body_bytes) + " bytes");
      } else if (ec == http::error::header_limit) {
        fail(431, "header_too_large", "request headers over " + std::to_string(server->limits.header_bytes) + " bytes");
      } else {
        fail(400, "bad_request", "malformed HTTP request: " + ec.message());
      }
      return true;
    }

    void on_header(beast::error_code ec) {
      if (read_error(ec)) return;
      auto& req = parser->get();
      // Refused on what it declares, before a byte of it is read.
      if (auto len = parser->content_length(); len && *len > server->limits.body_bytes)
        return fail(413, "payload_too_large", "request body over " + std::to_string(server->limits.body_bytes) + " bytes");
      if (listener->fixed_access) {
        access = *listener->fixed_access;
      } else {
        const std::string method(req.method_string()), target(req.target());
        const std::string authorization(req[http::field::authorization]);
        HttpAuthInput in{method, target, authorization, peer, tls_subject};
        auto granted = listener->auth(in);
        if (!granted) {
          server->auth_failed(*listener, peer);
          spdlog::warn("control: {} on {}: {} {} refused: not authenticated", caller, listener->name, method, target);
          HttpResponse out{401, "application/json", error_body("unauthenticated", "missing or wrong credentials")};
          return respond(std::move(out), false);
        }
        access = *granted;
        if (auto it = listener->peers.find(peer); it != listener->peers.end()) it->second.failures = 0;
      }
      if (parser->is_done()) return dispatch();
      http::async_read(stream, buffer, *parser, [self = this->shared_from_this()](beast::error_code e, size_t) {
        if (!self->read_error(e)) self->dispatch();
      });
    }

    void dispatch() {
      auto& req = parser->get();
      HttpRequest r;
      r.method = std::string(req.method_string());
      r.target = std::string(req.target());
      r.content_type = std::string(req[http::field::content_type]);
      r.authorization = std::string(req[http::field::authorization]);
      r.body = std::move(req.body());
      r.access = access;
      r.caller = caller;
      const bool keep_alive = req.keep_alive();
      // The deadline is off while the handler works (a reload may take a while).
      lowest().expires_never();
      auto self = this->shared_from_this();
      HttpReply reply = [self, keep_alive](HttpResponse out) {
        if (self->replied) return;
        self->replied = true;
        self->respond(std::move(out), keep_alive);
      };
      try {
        listener->handler(r, reply);
      } catch (const std::exception& e) {
        reply({500, "application/json", error_body("internal", e.what())});
      }
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
      lowest().expires_after(std::chrono::seconds(server->limits.read_timeout_s));
      http::async_write(stream, response, [self = this->shared_from_this()](beast::error_code ec, size_t) {
        if (ec || !self->response.keep_alive()) return self->close();
        self->read();
      });
    }

    void close() {
      beast::error_code ec;
      lowest().socket().shutdown(asio::socket_base::shutdown_both, ec);
      lowest().socket().close(ec);
    }
  };

  // Accept errors: out of descriptors pauses accepting (logged at most every 10 s);
  // anything else is retried at once. An accept that cannot be started is started by the
  // next tick (resume_accepting).
  template <typename Acceptor, typename Socket, typename Start>
  void accept(std::shared_ptr<Listener> l, std::shared_ptr<Acceptor> acc, Start start) {
    if (!l->resume) {
      l->resume = [weak = weak_from_this(), wl = std::weak_ptr<Listener>(l), wacc = std::weak_ptr<Acceptor>(acc), start] {
        auto self = weak.lock();
        auto l = wl.lock();
        auto acc = wacc.lock();
        if (self && l && acc && !self->closed) self->accept<Acceptor, Socket>(l, acc, start);
      };
      l->cancel = [wacc = std::weak_ptr<Acceptor>(acc)] {
        beast::error_code ignore;
        if (auto acc = wacc.lock()) acc->cancel(ignore);
      };
    }
    l->armed = false;
    const uint64_t round = ++l->round;
    try {
      acc->async_accept([self = shared_from_this(), l, acc, start, round](beast::error_code ec, Socket sock) {
        if (round != l->round) return;  // cancelled by restart_accepting(): a newer accept is pending
        l->armed = false;
        if (self->closed || ec == asio::error::operation_aborted) return;
        if (ec == asio::error::no_descriptors || ec.value() == ENFILE || ec == asio::error::no_buffer_space ||
            ec == asio::error::no_memory) {
          if (Clock::now() - l->last_fd_warning > std::chrono::seconds(10)) {
            spdlog::warn("control: {} cannot accept connections: {}; pausing 200 ms", l->name, ec.message());
            l->last_fd_warning = Clock::now();
          }
          l->retry->expires_after(std::chrono::milliseconds(200));
          l->retry->async_wait([self, l, acc, start, round](beast::error_code e) {
            if (round != l->round) return;
            l->armed = false;
            if (!e && !self->closed) self->accept<Acceptor, Socket>(l, acc, start);
          });
          l->armed = true;
          return;
        }
        if (!ec) {
          try {
            start(std::move(sock));
          } catch (const std::exception& e) {  // the connection is lost, not the listener
            spdlog::error("control: {}: cannot serve a connection: {}", l->name, e.what());
          }
        }
        self->accept<Acceptor, Socket>(l, acc, start);
      });
      l->armed = true;
    } catch (const std::exception& e) {  // tried again on every tick: logged at most every 10 s
      if (Clock::now() - l->last_fd_warning > std::chrono::seconds(10)) {
        spdlog::error("control: {} cannot accept connections: {}; trying again on the next tick", l->name, e.what());
        l->last_fd_warning = Clock::now();
      }
    }
  }
};

void check_tls_files(const TlsFiles& f) { make_tls_context(f); }

std::optional<unsigned> group_id(const std::string& name) {
  struct group gr, *found = nullptr;
  char buf[4096];
  if (getgrnam_r(name.c_str(), &gr, buf, sizeof buf, &found) != 0 || !found) return std::nullopt;
  return found->gr_gid;
}

bool unix_socket_answers(const std::string& path) {
  struct stat st {};
  sockaddr_un addr{};
  if (::lstat(path.c_str(), &st) != 0 || !S_ISSOCK(st.st_mode) || path.size() >= sizeof addr.sun_path) return false;
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size());
  // Non-blocking: a listener whose backlog is full (a hung process) must not hang the start;
  // it is still a listener (EAGAIN). A stale socket refuses at once.
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  const bool answers = ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0 || errno == EAGAIN;
  ::close(fd);
  return answers;
}

HttpServer::HttpServer(asio::io_context& io, HttpLimits limits) : impl_(std::make_shared<Impl>(io, limits)) {}
HttpServer::~HttpServer() { close(); }

void HttpServer::listen_unix(const std::string& path, unsigned mode, const std::string& group, Access access,
                             HttpHandler handler) {
  using proto = asio::local::stream_protocol;
  if (unix_socket_answers(path))
    throw std::runtime_error("control socket " + path + ": another process serves it (a gateway already running on "
                             "this config?): stop it, or give this one its own control socket");
  ::unlink(path.c_str());  // a stale socket from a previous run
  auto acc = std::make_shared<proto::acceptor>(impl_->io);
  beast::error_code ec;
  acc->open(proto(), ec);
  if (!ec) acc->bind(proto::endpoint(path), ec);
  if (!ec) acc->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) throw std::runtime_error("control socket " + path + ": " + ec.message());
  if (!group.empty()) {
    const std::optional<unsigned> gid = group_id(group);
    if (!gid) throw std::runtime_error("control socket " + path + ": no group named '" + group + "'");
    if (::chown(path.c_str(), static_cast<uid_t>(-1), static_cast<gid_t>(*gid)) != 0)
      throw std::runtime_error("control socket " + path + ": cannot give it to group '" + group + "': " + std::strerror(errno));
  }
  if (::chmod(path.c_str(), mode) != 0) throw std::runtime_error("control socket " + path + ": chmod failed");
  auto l = std::make_shared<Impl::Listener>();
  l->name = "unix:" + path;
  l->handler = std::move(handler);
  l->fixed_access = access;
  l->retry = std::make_unique<asio::steady_timer>(impl_->io);
  impl_->listeners.push_back(l);
  impl_->unix_acceptors.push_back(acc);
  struct stat st {};
  impl_->unix_paths.push_back({path, ::lstat(path.c_str(), &st) == 0 ? st.st_ino : 0});
  using Stream = beast::basic_stream<proto, asio::any_io_executor, beast::unlimited_rate_policy>;
  std::weak_ptr<Impl> weak = impl_;
  impl_->accept<proto::acceptor, proto::socket>(l, acc, [weak, l](proto::socket sock) {
    auto self = weak.lock();
    if (!self) return;
    if (l->connections >= self->limits.max_connections) {
      beast::error_code ignore;
      sock.close(ignore);  // over the limit: refuse rather than queue
      return;
    }
    // Who is calling, from the kernel (SO_PEERCRED): the audit log names them.
    std::string caller = "unix";
    ucred cred{};
    socklen_t len = sizeof cred;
    if (getsockopt(sock.native_handle(), SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0)
      caller = "unix uid " + std::to_string(cred.uid) + " (" + user_name(cred.uid) + ") pid " + std::to_string(cred.pid);
    l->connections++;
    std::make_shared<Impl::Session<Stream>>(self, l, nullptr, Stream(std::move(sock)), "unix", caller)->start();
  });
}

void HttpServer::listen_tcp(const std::string& host_port, HttpHandler handler, HttpAuthenticator auth,
                            std::optional<TlsFiles> tls) {
  auto colon = host_port.rfind(':');
  if (colon == std::string::npos) throw std::runtime_error("listener '" + host_port + "': expected host:port");
  std::string host = host_port.substr(0, colon);
  if (host.size() > 1 && host.front() == '[') host = host.substr(1, host.size() - 2);
  beast::error_code ec;
  auto addr = asio::ip::make_address(host, ec);
  if (ec) throw std::runtime_error("listener '" + host_port + "': not an IP address");
  unsigned port = static_cast<unsigned>(std::stoul(host_port.substr(colon + 1)));
  auto l = std::make_shared<Impl::Listener>();
  l->name = (tls ? "tls:" : "tcp:") + host_port;
  l->handler = std::move(handler);
  l->auth = std::move(auth);
  l->retry = std::make_unique<asio::steady_timer>(impl_->io);
  if (tls) {
    l->tls_files = tls;
    l->tls = make_tls_context(*tls);  // throws naming the file
  }
  auto acc = std::make_shared<asio::ip::tcp::acceptor>(impl_->io);
  asio::ip::tcp::endpoint ep(addr, static_cast<uint16_t>(port));
  acc->open(ep.protocol(), ec);
  if (!ec) acc->set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acc->bind(ep, ec);
  if (!ec) acc->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) throw std::runtime_error("listener " + host_port + ": " + ec.message());
  impl_->listeners.push_back(l);
  impl_->tcp_acceptors.push_back(acc);
  std::weak_ptr<Impl> weak = impl_;
  impl_->accept<asio::ip::tcp::acceptor, asio::ip::tcp::socket>(l, acc, [weak, l](asio::ip::tcp::socket sock) {
    auto self = weak.lock();
    if (!self) return;
    beast::error_code e;
    auto remote = sock.remote_endpoint(e);
    const std::string peer = e ? std::string("unknown") : remote.address().to_string();
    auto& p = l->peers[peer];
    const bool backing_off = Clock::now() < p.blocked_until;
    if (l->connections >= self->limits.max_connections || p.connections >= self->limits.max_per_peer || backing_off) {
      beast::error_code ignore;
      sock.close(ignore);
      return;
    }
    // Forget quiet peers so the map stays small.
    if (l->peers.size() > 4096)
      for (auto it = l->peers.begin(); it != l->peers.end();)
        it = (it->second.connections == 0 && Clock::now() >= it->second.blocked_until && it->first != peer)
                 ? l->peers.erase(it)
                 : std::next(it);
    l->connections++;
    l->peers[peer].connections++;
    const std::string caller = "tcp " + peer;
    if (l->tls) {
      using Stream = beast::ssl_stream<beast::tcp_stream>;
      std::make_shared<Impl::Session<Stream>>(self, l, l->tls, Stream(beast::tcp_stream(std::move(sock)), *l->tls), peer,
                                              caller)
          ->start();
    } else {
      std::make_shared<Impl::Session<beast::tcp_stream>>(self, l, nullptr, beast::tcp_stream(std::move(sock)), peer, caller)
          ->start();
    }
  });
}

std::string HttpServer::reload_tls() {
  std::string problems;
  for (auto& l : impl_->listeners) {
    if (!l->tls_files) continue;
    try {
      l->tls = make_tls_context(*l->tls_files);
    } catch (const std::exception& e) {
      problems += (problems.empty() ? "" : "; ") + l->name + ": " + e.what() + " (the previous certificate stays)";
    }
  }
  return problems;
}

void HttpServer::resume_accepting() {
  if (impl_->closed) return;
  for (auto& l : impl_->listeners)
    if (!l->armed && l->resume) l->resume();
}

void HttpServer::restart_accepting() {
  if (impl_->closed) return;
  for (auto& l : impl_->listeners) {
    ++l->round;  // what is still pending completes unheard
    l->armed = false;
    l->retry->cancel();
    if (l->cancel) l->cancel();
  }
}

void HttpServer::close() {
  if (!impl_ || impl_->closed) return;
  impl_->closed = true;
  beast::error_code ec;
  for (auto& a : impl_->unix_acceptors) a->close(ec);
  for (auto& a : impl_->tcp_acceptors) a->close(ec);
  for (auto& l : impl_->listeners) {
    l->retry->cancel();
    l->resume = nullptr;  // it holds the listener (through the start handler): no cycle left
    l->cancel = nullptr;
  }
  // Only our own socket: a path another process has bound since (replacing ours) stays its.
  for (const auto& [path, ino] : impl_->unix_paths) {
    struct stat st {};
    if (ino != 0 && ::lstat(path.c_str(), &st) == 0 && st.st_ino == ino) ::unlink(path.c_str());
  }
}

size_t HttpServer::open_connections() const { return impl_->open_connections(); }

}  // namespace stakegate
