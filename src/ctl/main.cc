// stakegatectl: command-line client of the stakegate control API (docs/api.md). Each
// command builds the generated request message, calls the RPC (binary protobuf), and
// prints the answer as a table, or as protobuf's JSON mapping with --json.
#include <google/protobuf/util/json_util.h>

#include <CLI/CLI.hpp>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>

#include "client.h"
#include "render.h"
#include "stakegate/base/files.h"
#include "stakegate/base/node_id.h"
#include "stakegate/control/access.h"

#include <termios.h>
#include <unistd.h>

namespace {

namespace pb = stakegate::v1;
using stakegate::ctl::Target;

std::string slurp(const std::string& path) { return stakegate::read_text_file(path, "stakegatectl", path); }

// A node as an operator gives it: its whole NodeID, or a unique start of it of at least
// 4 hex digits (the tables' short IDs, an evidence folder's 12), looked up in the running
// identity table (and, for unblock, the blocklist's nodes). Anything else is passed on as
// it is, for the gateway to explain.
std::string resolve_node(const Target& t, const std::string& given, bool blocklisted_too = false) {
  if (auto id = stakegate::NodeId::parse(given)) return id->str();
  if (given.size() < 4 || given.size() >= 64 ||
      given.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos)
    return given;
  std::string prefix = given;
  for (char& c : prefix) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  std::set<std::string> hits;
  pb::GetIdentitiesResponse ids;
  stakegate::ctl::call(t, "GetIdentities", pb::Empty{}, ids);
  for (const auto& n : ids.nodes())
    if (n.node_id().rfind(prefix, 0) == 0) hits.insert(n.node_id());
  if (blocklisted_too) {
    pb::ListBlocklistResponse bl;
    stakegate::ctl::call(t, "ListBlocklist", pb::Empty{}, bl);
    for (const auto& e : bl.entries())
      if (e.node_id().rfind(prefix, 0) == 0) hits.insert(e.node_id());
  }
  if (hits.size() == 1) return *hits.begin();
  if (hits.empty())
    throw std::runtime_error("no node of the running identity table" + std::string(blocklisted_too ? " or blocklist" : "") +
                             " has a NodeID starting with '" + given + "'");
  std::string list;
  for (const auto& h : hits) list += (list.empty() ? "" : ", ") + h.substr(0, 16) + "...";
  throw std::runtime_error("'" + given + "' starts " + std::to_string(hits.size()) + " NodeIDs (" + list +
                           "): give more of it");
}

// Hex digits alone name a node; anything else is a CIDR (the gateway explains a bad one).
bool names_node(const std::string& what) {
  return !what.empty() && what.find_first_not_of("0123456789abcdefABCDEF") == std::string::npos;
}

void fill_target(const Target& t, pb::BlockRequest& q, const std::string& what) {
  if (names_node(what)) q.set_node_id(resolve_node(t, what));
  else q.set_cidr(what);  // the gateway validates it and explains a bad one
}
void fill_target(const Target& t, pb::UnblockRequest& q, const std::string& what) {
  if (names_node(what)) q.set_node_id(resolve_node(t, what, true));
  else q.set_cidr(what);
}

// Calls `rpc` and prints the answer with `show`, or as JSON.
template <typename Resp, typename Show>
void run(const Target& t, bool json, const std::string& rpc, const google::protobuf::Message& req, Show show) {
  Resp r;
  stakegate::ctl::call(t, rpc, req, r);
  if (json) {
    google::protobuf::util::JsonPrintOptions o;
    o.add_whitespace = true;
    o.always_print_primitive_fields = true;
    o.preserve_proto_field_names = true;
    std::string out;
    google::protobuf::util::MessageToJsonString(r, &out, o);
    std::printf("%s", out.c_str());
  } else {
    show(r);
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"stakegatectl: talk to a running stakegate's control API (docs/api.md)", "stakegatectl"};
  app.set_version_flag("--version", "stakegatectl " STAKEGATE_VERSION);
  app.require_subcommand(1);
  app.fallthrough();  // global options may follow the command
  Target t;
  const char* env = std::getenv("STAKEGATE_SOCKET");
  t.socket = env ? env : "/run/stakegate/control.sock";
  std::string url, token_file;
  bool json = false;
  unsigned timeout_s = 30;
  app.add_option("--socket", t.socket, "control socket (default $STAKEGATE_SOCKET or /run/stakegate/control.sock)");
  app.add_option("--url", url, "a TCP control listener instead: https://HOST:PORT (or http:// on loopback)");
  app.add_option("--token-file", token_file, "bearer token for --url")->check(CLI::ExistingFile);
  app.add_option("--ca-file", t.ca_file, "CA certificate(s) the gateway's certificate must chain to (default: the system's)")
      ->check(CLI::ExistingFile);
  app.add_option("--cert", t.cert_file, "client certificate (PEM), when the listener asks for one")->check(CLI::ExistingFile);
  app.add_option("--key", t.key_file, "the client certificate's key (PEM; default: in --cert)")->check(CLI::ExistingFile);
  app.add_option("--timeout", timeout_s, "seconds to wait for the gateway (default 30)")->check(CLI::Range(1u, 3600u));
  app.add_flag("--json", json, "print the answer as JSON (protobuf's JSON mapping)");

  std::function<void()> action;
  auto cmd = [&](const char* name, const char* help) { return app.add_subcommand(name, help); };

  auto* status = cmd("status", "gateway status and totals");
  status->callback([&] { action = [&] { run<pb::StatusResponse>(t, json, "Status", pb::Empty{}, [](auto& r) { stakegate::ctl::print(r); }); }; });

  unsigned top_n = 10;
  auto* top = cmd("top", "drops by role and reason, and the N nodes dropped most");
  top->add_option("N", top_n, "how many nodes (default 10)");
  top->callback([&] {
    action = [&] {
      pb::TopRequest q;
      q.set_limit(top_n);
      run<pb::TopResponse>(t, json, "Top", q, [](auto& r) { stakegate::ctl::print(r); });
    };
  });

  auto* ids = cmd("identities", "the running identity table; `replace FILE` swaps in a new one");
  std::string table_file, stakes_file;
  auto* replace = ids->add_subcommand("replace", "swap in a node-infos.pub.json or protocol state snapshot");
  replace->add_option("FILE", table_file, "the Flow identity file")->required()->check(CLI::ExistingFile);
  replace->add_option("--stakes", stakes_file, "a JSON object NodeID -> stake")->check(CLI::ExistingFile);
  bool force = false;
  replace->add_flag("--force", force, "apply even if it removes more than identity.max_removed_fraction of the nodes");
  ids->callback([&] {
    if (*replace) {
      action = [&] {
        pb::ReplaceIdentitiesRequest q;
        std::string table = slurp(table_file);
        size_t first = table.find_first_not_of(" \t\r\n");
        if (first != std::string::npos && table[first] == '[') q.set_flow_node_infos_json(table);
        else q.set_flow_snapshot_json(table);
        if (!stakes_file.empty()) q.set_stake_json(slurp(stakes_file));
        q.set_force(force);
        run<pb::ReplaceIdentitiesResponse>(t, json, "ReplaceIdentities", q,
                                           [](auto& r) { stakegate::ctl::print_change(r.generation(), r.warnings()); });
      };
    } else {
      action = [&] { run<pb::GetIdentitiesResponse>(t, json, "GetIdentities", pb::Empty{}, [](auto& r) { stakegate::ctl::print(r); }); };
    }
  });

  std::string target, reason;
  uint64_t expires = 0;
  auto* block = cmd("block", "block a CIDR or a node (NodeID)");
  block->add_option("TARGET", target, "CIDR, or NodeID (or a unique start of it)")->required();
  block->add_option("--reason", reason, "why (shown in the blocklist and the log)");
  block->add_option("--expires", expires, "seconds until the block lifts (default: never)")
      ->check(CLI::Range(uint64_t{1}, uint64_t{10ull * 365 * 86400}));
  block->callback([&] {
    action = [&] {
      pb::BlockRequest q;
      fill_target(t, q, target);
      q.set_reason(reason);
      q.set_expires_in_s(expires);
      run<pb::BlockResponse>(t, json, "Block", q, [](auto& r) { stakegate::ctl::print_change(r.generation(), r.warnings()); });
    };
  });
  auto* unblock = cmd("unblock", "lift a block");
  unblock->add_option("TARGET", target, "CIDR, or NodeID (or a unique start of it)")->required();
  unblock->callback([&] {
    action = [&] {
      pb::UnblockRequest q;
      fill_target(t, q, target);
      run<pb::UnblockResponse>(t, json, "Unblock", q, [](auto& r) { stakegate::ctl::print_change(r.generation(), r.warnings()); });
    };
  });
  auto* blocklist = cmd("blocklist", "the running blocklist and where each entry came from");
  blocklist->callback([&] {
    action = [&] { run<pb::ListBlocklistResponse>(t, json, "ListBlocklist", pb::Empty{}, [](auto& r) { stakegate::ctl::print(r); }); };
  });

  std::string role, ports;
  std::optional<double> share, min_pps;
  std::optional<uint32_t> burst_ms;
  bool all_ports = false;
  auto* qos = cmd("qos", "show role QoS, or change one role's");
  qos->add_option("ROLE", role, "collection, consensus, execution, verification or access");
  qos->add_option("--share", share, "fraction of capacity (0-1)");
  qos->add_option("--min-pps", min_pps, "floor of each node's rate");
  qos->add_option("--burst-ms", burst_ms, "bucket depth as time at the node's rate");
  auto* ports_opt = qos->add_option("--ports", ports, "allowed destination ports, comma-separated");
  qos->add_flag("--all-ports", all_ports, "allow every port")->excludes(ports_opt);
  qos->callback([&] {
    if (!share && !min_pps && !burst_ms && ports.empty() && !all_ports) {
      action = [&] {
        pb::GetRoleQosRequest q;
        q.set_role(role);
        run<pb::GetRoleQosResponse>(t, json, "GetRoleQos", q, [](auto& r) { stakegate::ctl::print(r); });
      };
      return;
    }
    if (role.empty()) throw CLI::ValidationError("ROLE", "changing QoS needs the role");
    action = [&] {
      pb::SetRoleQosRequest q;
      q.set_role(role);
      if (share) q.set_share(*share);
      if (min_pps) q.set_min_pps(*min_pps);
      if (burst_ms) q.set_burst_ms(*burst_ms);
      std::stringstream ss(ports);
      for (std::string p; std::getline(ss, p, ',');) q.add_ports(static_cast<uint32_t>(std::stoul(p)));
      q.set_all_ports(all_ports);
      run<pb::SetRoleQosResponse>(t, json, "SetRoleQos", q, [](auto& r) { stakegate::ctl::print_change(r.generation(), r.warnings()); });
    };
  });

  std::string node_id;
  auto* node = cmd("node", "one node: rate, counters by reason, peer score");
  node->add_option("NODEID", node_id, "the node's ID, or a unique start of it (4 hex digits or more)")->required();
  node->callback([&] {
    action = [&] {
      pb::GetNodeRequest q;
      q.set_node_id(resolve_node(t, node_id));
      run<pb::GetNodeResponse>(t, json, "GetNode", q, [](auto& r) { stakegate::ctl::print(r); });
    };
  });
  bool graylisted = false;
  auto* nodes = cmd("nodes", "every node (or the graylisted ones), lowest score first");
  nodes->add_flag("--graylisted", graylisted, "only graylisted nodes");
  nodes->callback([&] {
    action = [&] {
      pb::ListNodesRequest q;
      q.set_graylisted_only(graylisted);
      q.set_limit(100000);
      run<pb::ListNodesResponse>(t, json, "ListNodes", q, [](auto& r) { stakegate::ctl::print(r); });
    };
  });
  auto* evidence = cmd("evidence", "evidence cases; with NODEID, open a case for that node");
  evidence->add_option("NODEID", node_id, "open a case (the node's ID or a unique start of it): sample the node's dropped packets, write a bundle");
  evidence->callback([&] {
    action = [&] {
      if (node_id.empty()) {
        run<pb::ListEvidenceResponse>(t, json, "ListEvidence", pb::Empty{}, [](auto& r) { stakegate::ctl::print(r); });
      } else {
        pb::OpenEvidenceRequest q;
        q.set_node_id(resolve_node(t, node_id));
        run<pb::EvidenceCase>(t, json, "OpenEvidence", q, [](auto& r) { stakegate::ctl::print(r); });
      }
    };
  });
  unsigned cost = 12;
  auto* hash = cmd("hash-password", "read a password on stdin, print its bcrypt hash (control.metrics_basic_auth)");
  hash->add_option("--cost", cost, "bcrypt cost (default 12)")->check(CLI::Range(4u, 16u));
  hash->callback([&] {
    action = [&] {
      termios old{};
      const bool tty = isatty(0) && tcgetattr(0, &old) == 0;
      if (tty) {
        std::fprintf(stderr, "password: ");
        termios quiet = old;
        quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
        tcsetattr(0, TCSANOW, &quiet);
      }
      std::string pw;
      std::getline(std::cin, pw);
      if (tty) {
        tcsetattr(0, TCSANOW, &old);
        std::fprintf(stderr, "\n");
      }
      if (pw.empty()) throw std::runtime_error("empty password");
      std::printf("%s\n", stakegate::bcrypt_hash(pw, cost).c_str());
    };
  });

  auto* reload = cmd("reload", "re-read the config file (as SIGHUP); exits 1 if it was refused");
  bool reload_force = false;
  reload->add_flag("--force", reload_force, "apply even if the new table removes more than identity.max_removed_fraction");
  reload->callback([&] {
    action = [&] {
      pb::ReloadRequest q;
      q.set_force(reload_force);
      run<pb::ReloadResponse>(t, json, "Reload", q, [](auto& r) { stakegate::ctl::print_change(r.generation(), r.warnings()); });
    };
  });

  if (argc == 1) {  // no command: what there is to run, rather than a one-line complaint
    std::fputs(app.help().c_str(), stderr);
    return 2;
  }
  try {
    app.parse(argc, argv);
    t.timeout = std::chrono::seconds(timeout_s);
    if (!url.empty()) {
      const bool https = url.rfind("https://", 0) == 0;
      if (!https && url.rfind("http://", 0) != 0) throw CLI::ValidationError("--url", "must be https://HOST:PORT or http://HOST:PORT");
      t.tls = https;
      std::string hp = url.substr(https ? 8 : 7);
      hp = hp.substr(0, hp.find('/'));
      auto colon = hp.rfind(':');
      if (colon == std::string::npos) throw CLI::ValidationError("--url", "must name a port");
      t.host = hp.substr(0, colon);
      t.port = hp.substr(colon + 1);
      t.socket.clear();
    }
    if (!token_file.empty()) {
      std::string tok = slurp(token_file);
      t.token = tok.substr(0, tok.find_first_of("\r\n"));
    }
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "stakegatectl: %s\n", e.what());
    return 2;
  }
  try {
    action();
    return 0;
  } catch (const stakegate::ctl::RpcError& e) {
    std::fprintf(stderr, "stakegatectl: %s: %s (HTTP %d)\n", e.code().c_str(), e.what(), e.status());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "stakegatectl: %s\n", e.what());
    return 1;
  }
}
