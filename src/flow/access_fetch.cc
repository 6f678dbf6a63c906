#include "stakegate/flow/access_fetch.h"

#include <grpcpp/grpcpp.h>

#include <chrono>

#include "access.grpc.pb.h"
#include "stakegate/base/error.h"
#include "stakegate/base/files.h"
#include "stakegate/identity/table.h"

namespace stakegate {
namespace {

std::shared_ptr<grpc::Channel> channel_to(const std::string& endpoint, const AccessApiConfig& cfg) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(static_cast<int>(std::min<uint64_t>(cfg.max_bytes, INT32_MAX)));
  std::shared_ptr<grpc::ChannelCredentials> creds;
  if (cfg.tls) {
    grpc::SslCredentialsOptions o;
    if (!cfg.ca_file.empty()) o.pem_root_certs = read_text_file(cfg.ca_file, "identity.access_api", "ca_file", 1u << 20);
    creds = grpc::SslCredentials(o);
  } else {
    creds = grpc::InsecureChannelCredentials();
  }
  return grpc::CreateCustomChannel(endpoint, creds, args);
}

std::chrono::system_clock::time_point deadline(double seconds) {
  return std::chrono::system_clock::now() +
         std::chrono::duration_cast<std::chrono::system_clock::duration>(std::chrono::duration<double>(seconds));
}

std::string describe(const grpc::Status& s) {
  static const char* kNames[] = {"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
                                 "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
                                 "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
                                 "UNAUTHENTICATED"};
  const int c = static_cast<int>(s.error_code());
  std::string name = c >= 0 && c < 17 ? kNames[c] : std::to_string(c);
  return name + (s.error_message().empty() ? "" : ": " + s.error_message());
}

}  // namespace

std::string stakes_script(const std::string& contract) {
  return "import FlowIDTableStaking from " + contract + R"(

// NodeID -> tokens staked, with delegators, for every node staked in the current epoch.
access(all) fun main(): {String: UFix64} {
    let stakes: {String: UFix64} = {}
    for id in FlowIDTableStaking.getStakedNodeIDs() {
        stakes[id] = FlowIDTableStaking.NodeInfo(nodeID: id).totalStakedWithDelegators()
    }
    return stakes
}
)";
}

AccessFetch fetch_identity(const IdentityConfig& id) {
  const AccessApiConfig& cfg = id.access_api;
  AccessFetch out;
  for (const auto& endpoint : cfg.endpoints) {
    out.endpoint = endpoint;
    const std::string source = "access API " + endpoint;
    try {
      auto stub = flow::access::AccessAPI::NewStub(channel_to(endpoint, cfg));
      grpc::ClientContext ctx;
      ctx.set_deadline(deadline(cfg.timeout_s));
      flow::access::GetLatestProtocolStateSnapshotRequest req;
      flow::access::ProtocolStateSnapshotResponse resp;
      grpc::Status st = stub->GetLatestProtocolStateSnapshot(&ctx, req, &resp);
      if (!st.ok()) throw ConfigError(source, "", "GetLatestProtocolStateSnapshot: " + describe(st));
      if (resp.serializedsnapshot().empty()) throw ConfigError(source, "", "the snapshot is empty");
      FlowEpoch epoch;
      std::vector<NodeIdentity> nodes = parse_flow_snapshot(resp.serializedsnapshot(), source + " (snapshot)", &epoch);
      check_identity_table(nodes, source);
      std::vector<std::string> warnings;
      bool stakes_missing = false;
      if (!cfg.stakes_contract.empty()) {
        // Stakes are a refinement: a failing script does not fail the fetch (the caller
        // keeps the running stakes of the nodes it knows).
        try {
          grpc::ClientContext sctx;
          sctx.set_deadline(deadline(cfg.timeout_s));
          flow::access::ExecuteScriptAtLatestBlockRequest sreq;
          sreq.set_script(stakes_script(cfg.stakes_contract));
          flow::access::ExecuteScriptResponse sresp;
          grpc::Status ss = stub->ExecuteScriptAtLatestBlock(&sctx, sreq, &sresp);
          if (!ss.ok()) throw ConfigError(source, "", "ExecuteScriptAtLatestBlock (stakes): " + describe(ss));
          apply_stakes(nodes, parse_cadence_stakes(sresp.value(), source + " (stakes script)"), source + " (stakes)",
                       &warnings);
        } catch (const ConfigError& e) {
          warnings.push_back(std::string(e.what()) + "; the running stakes are kept (a new node gets its protocol weight)");
          stakes_missing = true;
        }
      } else if (!id.stake_file.empty()) {
        apply_stakes(nodes, parse_stake_file(read_text_file(id.stake_file, source, "identity.stake_file"), id.stake_file),
                     id.stake_file, &warnings);
      }
      out.ok = true;
      out.error.clear();
      out.nodes = std::move(nodes);
      out.epoch = epoch;
      out.warnings = std::move(warnings);
      out.stakes_missing = stakes_missing;
      return out;
    } catch (const std::exception& e) {
      out.error += (out.error.empty() ? "" : "; ") + std::string(e.what());
    }
  }
  return out;
}

}  // namespace stakegate
