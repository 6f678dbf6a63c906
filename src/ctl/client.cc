#include <utility>  // before Boost.Asio (Boost 1.74 + C++20)

#include "client.h"

#include <openssl/ssl.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include <google/protobuf/util/json_util.h>

#include "control.pb.h"

namespace stakegate::ctl {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

template <typename Stream>
http::response<http::string_body> exchange(Stream& s, const http::request<http::string_body>& req,
                                           std::chrono::seconds timeout) {
  beast::get_lowest_layer(s).expires_after(timeout);
  http::write(s, req);
  beast::flat_buffer buf;
  http::response_parser<http::string_body> parser;
  parser.body_limit(1ull << 32);
  beast::get_lowest_layer(s).expires_after(timeout);
  http::read(s, buf, parser);
  return parser.release();
}

asio::ssl::context client_tls(const Target& t) {
  asio::ssl::context ctx(asio::ssl::context::tls_client);
  ctx.set_options(asio::ssl::context::no_sslv2 | asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                  asio::ssl::context::no_tlsv1_1);
  beast::error_code ec;
  if (t.ca_file.empty()) ctx.set_default_verify_paths(ec);
  else ctx.load_verify_file(t.ca_file, ec);
  if (ec) throw std::runtime_error("CA file " + t.ca_file + ": " + ec.message());
  if (!t.cert_file.empty()) {
    ctx.use_certificate_chain_file(t.cert_file, ec);
    if (!ec) ctx.use_private_key_file(t.key_file.empty() ? t.cert_file : t.key_file, asio::ssl::context::pem, ec);
    if (ec) throw std::runtime_error("client certificate " + t.cert_file + ": " + ec.message());
  }
  ctx.set_verify_mode(asio::ssl::verify_peer);
  return ctx;
}

}  // namespace

void call(const Target& t, const std::string& rpc, const google::protobuf::Message& request,
          google::protobuf::Message& response) {
  http::request<http::string_body> req{http::verb::post, "/v1/" + rpc, 11};
  req.set(http::field::host, t.host.empty() ? "localhost" : t.host);
  req.set(http::field::content_type, "application/x-protobuf");
  if (!t.token.empty()) req.set(http::field::authorization, "Bearer " + t.token);
  req.body() = request.SerializeAsString();
  req.prepare_payload();
  asio::io_context io;
  http::response<http::string_body> res;
  try {
    if (!t.socket.empty()) {
      beast::basic_stream<asio::local::stream_protocol> s(io);
      beast::error_code ec;
      s.socket().connect(asio::local::stream_protocol::endpoint(t.socket), ec);
      if (ec)
        throw std::runtime_error("cannot connect to " + t.socket + ": " + ec.message() + " (is stakegate running? --socket)");
      res = exchange(s, req, t.timeout);
    } else if (t.tls) {
      asio::ssl::context ctx = client_tls(t);
      beast::ssl_stream<beast::tcp_stream> s(io, ctx);
      asio::ip::tcp::resolver r(io);
      beast::get_lowest_layer(s).expires_after(t.timeout);
      beast::get_lowest_layer(s).connect(r.resolve(t.host, t.port));
      SSL_set_tlsext_host_name(s.native_handle(), t.host.c_str());  // SNI
      s.set_verify_callback(asio::ssl::host_name_verification(t.host));
      s.handshake(asio::ssl::stream_base::client);
      res = exchange(s, req, t.timeout);
    } else {
      beast::tcp_stream s(io);
      asio::ip::tcp::resolver r(io);
      s.expires_after(t.timeout);
      s.connect(r.resolve(t.host, t.port));
      res = exchange(s, req, t.timeout);
    }
  } catch (const beast::system_error& e) {
    if (e.code() == beast::error::timeout)
      throw std::runtime_error("no answer within " + std::to_string(t.timeout.count()) + " s (--timeout)");
    if (e.code().category() == asio::error::get_ssl_category())
      throw std::runtime_error("TLS with the gateway failed: " + e.code().message() + " (--ca-file, --cert)");
    throw std::runtime_error(std::string("talking to the gateway: ") + e.code().message());
  }
  if (res.result_int() != 200) {
    stakegate::v1::Error e;
    const bool binary = res[http::field::content_type].starts_with("application/x-protobuf");
    google::protobuf::util::JsonParseOptions lenient;
    lenient.ignore_unknown_fields = true;
    if (binary ? e.ParseFromString(res.body()) : google::protobuf::util::JsonStringToMessage(res.body(), &e, lenient).ok())
      throw RpcError(e.code(), e.message(), res.result_int());
    throw RpcError("error", res.body(), res.result_int());
  }
  if (!response.ParseFromString(res.body()))
    throw std::runtime_error("the gateway's answer is not a " + response.GetTypeName());
}

}  // namespace stakegate::ctl
