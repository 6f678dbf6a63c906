// stakegatectl: command-line client of the stakegate control API (docs/api.md).
#include <utility>  // before Boost.Asio (Boost 1.74 + C++20)

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "stakegate/identity/flow_import.h"
#include "stakegate/net/address.h"

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using json = nlohmann::json;

namespace {

const char* kUsage =
    "usage: stakegatectl [--socket PATH | --url http://HOST:PORT [--token-file FILE]] [--json] COMMAND\n"
    "commands:\n"
    "  status                                    gateway status and totals\n"
    "  top [N]                                   drops by role and reason, and the N nodes dropped most\n"
    "  identities                                the running identity table\n"
    "  identities replace FILE [--stakes FILE]   swap in a node-infos.pub.json or protocol snapshot\n"
    "  block CIDR|NODEID [--reason TEXT] [--expires SECONDS]\n"
    "  unblock CIDR|NODEID\n"
    "  blocklist\n"
    "  qos [ROLE]                                show role QoS\n"
    "  qos ROLE [--share X] [--min-pps N] [--burst-ms N] [--ports P,P | --all-ports]\n"
    "  node NODEID                               one node: rate, counters by reason, peer score\n"
    "  nodes [--graylisted]                      every node (or the graylisted ones), lowest score first\n"
    "  evidence                                  evidence cases (open and written)\n"
    "  evidence NODEID                           open a case: sample the node's dropped packets, write a bundle\n"
    "  reload                                    re-read the config file (as SIGHUP)\n"
    "The socket defaults to $STAKEGATE_SOCKET or /run/stakegate/control.sock.\n";

struct Target {
  std::string socket, host, port, token;
};

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

template <typename Stream>
http::response<http::string_body> round_trip(Stream& s, const http::request<http::string_body>& req) {
  http::write(s, req);
  beast::flat_buffer buf;
  http::response_parser<http::string_body> parser;
  parser.body_limit(1ull << 32);
  http::read(s, buf, parser);
  return parser.release();
}

// Calls an RPC; returns (HTTP status, body).
std::pair<int, std::string> call(const Target& t, const std::string& rpc, const std::string& body) {
  http::request<http::string_body> req{http::verb::post, "/v1/" + rpc, 11};
  req.set(http::field::host, t.host.empty() ? "localhost" : t.host);
  req.set(http::field::content_type, "application/json");
  if (!t.token.empty()) req.set(http::field::authorization, "Bearer " + t.token);
  req.body() = body;
  req.prepare_payload();
  asio::io_context io;
  http::response<http::string_body> res;
  if (!t.socket.empty()) {
    asio::local::stream_protocol::socket s(io);
    beast::error_code ec;
    s.connect(asio::local::stream_protocol::endpoint(t.socket), ec);
    if (ec) throw std::runtime_error("cannot connect to " + t.socket + ": " + ec.message() + " (is stakegate running? --socket)");
    res = round_trip(s, req);
  } else {
    asio::ip::tcp::resolver r(io);
    asio::ip::tcp::socket s(io);
    asio::connect(s, r.resolve(t.host, t.port));
    res = round_trip(s, req);
  }
  return {res.result_int(), res.body()};
}

std::string u(const json& j, const char* k) {
  if (!j.contains(k)) return "0";
  return j[k].is_string() ? j[k].get<std::string>() : j[k].dump();
}

void print_table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> w;
  for (const auto& r : rows)
    for (size_t i = 0; i < r.size(); ++i) {
      if (w.size() <= i) w.push_back(0);
      w[i] = std::max(w[i], r[i].size());
    }
  for (const auto& r : rows) {
    std::string line;
    for (size_t i = 0; i < r.size(); ++i) {
      std::string cell = r[i];
      cell.resize(w[i], ' ');
      line += (i ? "  " : "") + cell;
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    std::printf("%s\n", line.c_str());
  }
}

void render(const std::string& cmd, const json& j, const std::vector<std::string>& args) {
  if (cmd == "status") {
    std::printf("stakegate %s, up %.0f s, config %s\n", u(j, "version").c_str(), j.value("uptime_s", 0.0),
                u(j, "config_file").c_str());
    std::printf("identity: generation %s, %s nodes in %s sources (capacity %s), from %s\n", u(j, "identity_generation").c_str(),
                u(j, "nodes").c_str(), u(j, "sources").c_str(), u(j, "source_capacity").c_str(), u(j, "identity_source").c_str());
    std::printf("outside: %s packets, %s passed; inside: %s packets; blocklist: %s entries\n", u(j, "outside_packets").c_str(),
                u(j, "outside_passed").c_str(), u(j, "inside_packets").c_str(), u(j, "blocklist_entries").c_str());
    std::vector<std::vector<std::string>> rows{{"reason", "dropped"}};
    for (auto& [k, v] : j["drops_by_reason"].items()) rows.push_back({k, v.is_string() ? v.get<std::string>() : v.dump()});
    print_table(rows);
  } else if (cmd == "top") {
    std::vector<std::string> reasons = {"malformed", "blocklisted", "ejected", "port_denied", "over_rate", "unregistered", "unregistered_over_rate"};
    std::vector<std::vector<std::string>> rows{{"role", "passed"}};
    rows[0].insert(rows[0].end(), reasons.begin(), reasons.end());
    for (const auto& r : j["roles"]) {
      std::vector<std::string> row{u(r, "role"), u(r, "passed")};
      for (const auto& reason : reasons) row.push_back(r["dropped"].contains(reason) ? u(r["dropped"], reason.c_str()) : "0");
      rows.push_back(row);
    }
    print_table(rows);
    if (!j["nodes"].empty()) {
      std::printf("\n");
      std::vector<std::vector<std::string>> top{{"node_id", "role", "address", "dropped", "passed", "over_rate", "port_denied", "blocklisted", "ejected"}};
      for (const auto& n : j["nodes"])
        top.push_back({u(n, "node_id"), u(n, "role"), u(n, "address"), u(n, "dropped"), u(n["counters"], "passed"),
                       u(n["counters"], "over_rate"), u(n["counters"], "port_denied"), u(n["counters"], "blocklisted"),
                       u(n["counters"], "ejected")});
      print_table(top);
    }
  } else if (cmd == "identities" && args.empty()) {
    std::printf("generation %s, from %s\n", u(j, "generation").c_str(), u(j, "source").c_str());
    std::vector<std::vector<std::string>> rows{{"node_id", "role", "address", "ips", "weight", "status"}};
    for (const auto& n : j["nodes"]) {
      std::string ips;
      for (const auto& ip : n["ips"]) ips += (ips.empty() ? "" : ",") + ip.get<std::string>();
      rows.push_back({u(n, "node_id"), u(n, "role"), u(n, "address"), ips, u(n, "weight"), u(n, "status")});
    }
    print_table(rows);
  } else if (cmd == "blocklist") {
    std::vector<std::vector<std::string>> rows{{"what", "origin", "expires_at", "reason"}};
    for (const auto& e : j["entries"])
      rows.push_back({e.value("cidr", "").empty() ? u(e, "node_id") : u(e, "cidr"), u(e, "origin"),
                      u(e, "expires_at_unix") == "\"0\"" || u(e, "expires_at_unix") == "0" ? "never" : u(e, "expires_at_unix"),
                      u(e, "reason")});
    print_table(rows);
  } else if (cmd == "qos" && j.contains("roles")) {
    std::vector<std::vector<std::string>> rows{{"role", "share", "role_pps", "min_pps", "burst_ms", "nodes", "ports"}};
    for (const auto& r : j["roles"]) {
      std::string ports;
      for (const auto& p : r["ports"]) ports += (ports.empty() ? "" : ",") + p.dump();
      rows.push_back({u(r, "role"), u(r, "share"), u(r, "role_pps"), u(r, "min_pps"), u(r, "burst_ms"), u(r, "nodes"),
                      ports.empty() ? "any" : ports});
    }
    print_table(rows);
  } else if (cmd == "node") {
    const json& n = j["node"];
    std::printf("node %s (%s) at %s, status %s%s\n", u(n, "node_id").c_str(), u(n, "role").c_str(), u(n, "address").c_str(),
                u(n, "status").c_str(), j.value("blocklisted", false) ? ", BLOCKLISTED" : "");
    std::printf("rate %.1f pps, burst %.1f packets, weight %s\n", j.value("rate_pps", 0.0), j.value("burst", 0.0), u(n, "weight").c_str());
    std::vector<std::vector<std::string>> rows{{"passed", "over_rate", "port_denied", "blocklisted", "ejected"}};
    const json& c = j["counters"];
    rows.push_back({u(c, "passed"), u(c, "over_rate"), u(c, "port_denied"), u(c, "blocklisted"), u(c, "ejected")});
    print_table(rows);
    std::printf("score %.2f%s\n", j.value("score", 0.0), j.value("graylisted", false) ? ", GRAYLISTED" : "");
  } else if (cmd == "nodes") {
    std::vector<std::vector<std::string>> rows{{"node_id", "role", "address", "rate_pps", "score", "graylisted", "passed", "over_rate"}};
    for (const auto& n : j.value("nodes", json::array())) {
      char rate[32], score[32];
      std::snprintf(rate, sizeof rate, "%.1f", n.value("rate_pps", 0.0));
      std::snprintf(score, sizeof score, "%.2f", n.value("score", 0.0));
      const json& c = n.contains("counters") ? n["counters"] : json::object();
      rows.push_back({u(n, "node_id"), u(n, "role"), u(n, "address"), rate, score,
                      n.value("graylisted", false) ? "yes" : "no", u(c, "passed"), u(c, "over_rate")});
    }
    print_table(rows);
    std::printf("%s graylisted now; %s entries and %s exits since start\n", u(j, "graylisted").c_str(),
                u(j, "graylist_entries").c_str(), u(j, "graylist_exits").c_str());
  } else if (cmd == "evidence" && j.contains("cases")) {
    std::vector<std::vector<std::string>> rows{{"case", "reason", "state", "samples", "node_id", "error"}};
    for (const auto& c : j["cases"])
      rows.push_back({u(c, "id"), u(c, "reason"), c.value("open", false) ? "open" : "written", u(c, "samples"),
                      u(c, "node_id"), u(c, "error")});
    print_table(rows);
    std::printf("%s cases opened, %s errors; bundles under %s\n", u(j, "opened").c_str(), u(j, "errors").c_str(),
                u(j, "dir").c_str());
  } else if (cmd == "evidence") {
    std::printf("evidence case %s opened for %s: %s (written when its window ends)\n", u(j, "id").c_str(),
                u(j, "node_id").c_str(), u(j, "dir").c_str());
    if (!u(j, "error").empty()) std::printf("error: %s\n", u(j, "error").c_str());
  } else {
    std::printf("ok: generation %s\n", u(j, "generation").c_str());
    if (j.contains("warnings"))
      for (const auto& w : j["warnings"]) std::printf("warning: %s\n", w.get<std::string>().c_str());
  }
}

json block_target(const std::string& what) {
  std::string id = what;
  std::transform(id.begin(), id.end(), id.begin(), ::tolower);
  if (stakegate::valid_node_id(id)) return {{"node_id", id}};
  return {{"cidr", what}};  // the server validates it and explains a bad one
}

}  // namespace

int main(int argc, char** argv) {
  Target t;
  const char* env = std::getenv("STAKEGATE_SOCKET");
  t.socket = env ? env : "/run/stakegate/control.sock";
  bool raw = false;
  std::vector<std::string> words;
  try {
    for (int i = 1; i < argc; ++i) {
      std::string a = argv[i];
      auto value = [&]() -> std::string {
        if (i + 1 >= argc) throw std::runtime_error(a + " needs a value");
        return argv[++i];
      };
      if (a == "--socket") t.socket = value();
      else if (a == "--url") {
        std::string url = value();
        if (url.rfind("http://", 0) != 0) throw std::runtime_error("--url must be http://HOST:PORT");
        std::string hp = url.substr(7);
        hp = hp.substr(0, hp.find('/'));
        auto colon = hp.rfind(':');
        if (colon == std::string::npos) throw std::runtime_error("--url must name a port");
        t.host = hp.substr(0, colon);
        t.port = hp.substr(colon + 1);
        t.socket.clear();
      } else if (a == "--token-file") {
        std::string tok = slurp(value());
        while (!tok.empty() && (tok.back() == '\n' || tok.back() == '\r' || tok.back() == ' ')) tok.pop_back();
        t.token = tok;
      } else if (a == "--json") raw = true;
      else if (a == "-h" || a == "--help") { std::printf("%s", kUsage); return 0; }
      else words.push_back(a);
    }
    if (words.empty()) throw std::runtime_error("no command");
    std::string cmd = words[0];
    std::vector<std::string> args(words.begin() + 1, words.end());
    auto opt = [&](const std::string& name) -> std::optional<std::string> {
      for (size_t i = 0; i + 1 < args.size(); ++i)
        if (args[i] == name) return args[i + 1];
      return std::nullopt;
    };
    auto has = [&](const std::string& name) { return std::find(args.begin(), args.end(), name) != args.end(); };

    std::string rpc, body;
    if (cmd == "status") rpc = "Status";
    else if (cmd == "top") { rpc = "Top"; body = json{{"limit", args.empty() ? 10 : std::stoi(args[0])}}.dump(); }
    else if (cmd == "identities" && args.empty()) rpc = "GetIdentities";
    else if (cmd == "identities" && args[0] == "replace" && args.size() >= 2) {
      rpc = "ReplaceIdentities";
      std::string table = slurp(args[1]);
      if (auto s = opt("--stakes")) {
        size_t first = table.find_first_not_of(" \t\r\n");
        json q{{"stake_json", slurp(*s)}};
        q[first != std::string::npos && table[first] == '[' ? "flow_node_infos_json" : "flow_snapshot_json"] = table;
        body = q.dump();
      } else {
        body = table;  // the server recognises both Flow formats as they are
      }
    } else if (cmd == "block" && !args.empty()) {
      rpc = "Block";
      json q = block_target(args[0]);
      if (auto r = opt("--reason")) q["reason"] = *r;
      if (auto e = opt("--expires")) q["expires_in_s"] = std::stoull(*e);
      body = q.dump();
    } else if (cmd == "unblock" && args.size() == 1) {
      rpc = "Unblock";
      body = block_target(args[0]).dump();
    } else if (cmd == "blocklist") rpc = "ListBlocklist";
    else if (cmd == "qos" && args.size() <= 1) {
      rpc = "GetRoleQos";
      body = json{{"role", args.empty() ? "" : args[0]}}.dump();
    } else if (cmd == "qos") {
      rpc = "SetRoleQos";
      json q{{"role", args[0]}};
      if (auto v = opt("--share")) q["share"] = std::stod(*v);
      if (auto v = opt("--min-pps")) q["min_pps"] = std::stod(*v);
      if (auto v = opt("--burst-ms")) q["burst_ms"] = std::stoul(*v);
      if (auto v = opt("--ports")) {
        json ports = json::array();
        std::stringstream ss(*v);
        for (std::string p; std::getline(ss, p, ',');) ports.push_back(std::stoul(p));
        q["ports"] = ports;
      }
      if (has("--all-ports")) q["all_ports"] = true;
      body = q.dump();
    } else if (cmd == "node" && args.size() == 1) {
      rpc = "GetNode";
      body = json{{"node_id", args[0]}}.dump();
    } else if (cmd == "reload") rpc = "Reload";
    else if (cmd == "nodes" && (args.empty() || (args.size() == 1 && args[0] == "--graylisted"))) {
      rpc = "ListNodes";
      body = json{{"graylisted_only", !args.empty()}, {"limit", 100000}}.dump();
    } else if (cmd == "evidence" && args.empty()) rpc = "ListEvidence";
    else if (cmd == "evidence" && args.size() == 1) {
      rpc = "OpenEvidence";
      body = json{{"node_id", args[0]}}.dump();
    }
    else throw std::runtime_error("unknown command or arguments: " + cmd);

    auto [status, out] = call(t, rpc, body);
    if (status != 200) {
      json e = json::parse(out, nullptr, false);
      std::fprintf(stderr, "stakegatectl: %s: %s (HTTP %d)\n", e.is_object() ? e.value("code", "error").c_str() : "error",
                   e.is_object() ? e.value("message", out).c_str() : out.c_str(), status);
      return 1;
    }
    if (raw) {
      std::printf("%s\n", out.c_str());
      return 0;
    }
    render(cmd, json::parse(out), args);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "stakegatectl: %s\n%s", e.what(), kUsage);
    return 2;
  }
}
