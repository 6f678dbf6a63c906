#pragma once
// stakegatectl's side of the control API: one RPC over HTTP/1.1 (Unix socket or TCP),
// binary protobuf both ways, with a deadline on every exchange.
#include <google/protobuf/message.h>

#include <chrono>
#include <stdexcept>
#include <string>

namespace stakegate::ctl {

struct Target {
  std::string socket;       // Unix socket path, or empty for TCP
  std::string host, port;   // TCP
  bool tls = false;         // https: the server's certificate is verified (ca_file, else the system's CAs)
  std::string ca_file, cert_file, key_file;  // cert/key: a client certificate, when the listener asks for one
  std::string token;        // bearer token (TCP)
  std::chrono::seconds timeout{30};
};

// A refusal from the gateway: its error code and message, and the HTTP status.
class RpcError : public std::runtime_error {
 public:
  RpcError(std::string code, const std::string& message, int status)
      : std::runtime_error(message), code_(std::move(code)), status_(status) {}
  const std::string& code() const { return code_; }
  int status() const { return status_; }

 private:
  std::string code_;
  int status_;
};

// Calls /v1/<rpc>; fills `response`. Throws RpcError (a refusal) or std::runtime_error
// (cannot connect, timeout, an answer that is not the expected message).
void call(const Target& t, const std::string& rpc, const google::protobuf::Message& request,
          google::protobuf::Message& response);

}  // namespace stakegate::ctl
