#include "stakegate/report/evidence_bundle.h"

#include <cstdio>
#include <sstream>

#include "stakegate/net/parse.h"
#include "stakegate/report/text.h"

namespace stakegate {
namespace {

using json = nlohmann::json;

json node_json(const NodeIdentity& n) {
  return {{"node_id", n.node_id},          {"role", std::string(role_name(n.role))}, {"address", n.address},
          {"network_key", n.network_key},  {"staking_key", n.staking_key},          {"status", n.status},
          {"weight", n.weight}};
}

json counters_json(const SourceTotals& t) {
  return {{"verified", {{"passed", t.passed}, {"over_rate", t.over_rate}}},
          {"unverified", {{"passed", t.request_passed + t.session_passed}, {"request_over_rate", t.request_over_rate},
                          {"session_over_rate", t.session_over_rate},
                          {"port_denied", t.port_denied}, {"blocklisted", t.blocklisted}, {"ejected", t.ejected}}}};
}

json ports_json(const SampleTally& t) {
  json top = json::array();
  for (const auto& [pp, n] : t.top_ports) top.push_back({{"proto", pp.first}, {"port", pp.second}, {"samples", n}});
  return top;
}

const char* or_placeholder(const std::string& s, const char* placeholder) { return s.empty() ? placeholder : s.c_str(); }

uint64_t unverified_total(const SourceTotals& d) {
  return d.request_passed + d.request_over_rate + d.session_passed + d.session_over_rate + d.port_denied +
         d.blocklisted + d.ejected;
}
// Attributable traffic only: what the node sent on its verified connections.
double offered_pps(const CaseFacts& f) { return (f.delta.passed + f.delta.over_rate) / f.secs; }
bool verified_misbehaviour(const CaseFacts& f) { return f.delta.over_rate > 0 || f.verified.packets > 0; }

std::string tcp_flag_names(uint8_t f) {
  static constexpr std::pair<uint8_t, const char*> kNames[] = {{0x02, "SYN"}, {0x10, "ACK"}, {0x08, "PSH"}, {0x01, "FIN"},
                                                               {0x04, "RST"}, {0x20, "URG"}, {0x40, "ECE"}, {0x80, "CWR"}};
  std::string out;
  for (const auto& [bit, name] : kNames)
    if (f & bit) out.append(out.empty() ? "" : " ").append(name);
  return out.empty() ? "none" : out;
}

std::string endpoint(const PacketMeta& m, bool src) {
  IpAddr a = m.kind == L3Kind::kIpv4 ? IpAddr::from_v4(src ? m.src_v4 : m.dst_v4) : IpAddr::from_v6(src ? m.src_v6 : m.dst_v6);
  std::string text = a.to_string();
  if (!m.has_port) return text;
  return (a.is_v4 ? text : "[" + text + "]") + ":" + std::to_string(src ? m.src_port : m.dst_port);
}

}  // namespace

const char* const kAttributionMethod =
    "verified TCP connections: a packet counts as the node's only if it belongs to a TCP connection whose remote end "
    "acknowledged the cluster's initial sequence number (so it received the cluster's packets at this address) and "
    "lies within that connection's sequence and acknowledgement windows";
const char* const kUnverifiedCaveat =
    "Unverified packets carry the node's source address, but anyone can forge a source address: they may not have "
    "been sent by this node and are not evidence against it";

std::string sample_comment(const uint8_t* frame, uint32_t caplen, uint32_t orig_len, Verdict v, bool verified) {
  PacketMeta m;
  parse_captured_frame(frame, caplen, orig_len, m);
  std::string out = "stakegate: dropped " + std::string(verdict_name(v)) + "; " +
                    (verified ? "verified connection" : "unverified (the source address may be forged)");
  if (m.kind == L3Kind::kIpv4 || m.kind == L3Kind::kIpv6) {
    const char* proto = m.l4_proto == kProtoTcp ? "tcp" : m.l4_proto == kProtoUdp ? "udp" : nullptr;
    out += "; " + (proto ? std::string(proto) : "proto " + std::to_string(m.l4_proto)) + " " + endpoint(m, true) + " > " +
           endpoint(m, false);
    if (m.l4_proto == kProtoTcp && m.has_port) out += " [" + tcp_flag_names(m.tcp_flags) + "]";
    out += std::string("; ") + (m.kind == L3Kind::kIpv4 ? "ttl " : "hop limit ") + std::to_string(m.ttl);
  } else {
    char et[8];
    std::snprintf(et, sizeof et, "%04x", m.ethertype);
    out += std::string("; ethertype 0x") + et;
  }
  if (caplen >= 12) {
    char mac[18];
    std::snprintf(mac, sizeof mac, "%02x:%02x:%02x:%02x:%02x:%02x", frame[6], frame[7], frame[8], frame[9], frame[10],
                  frame[11]);
    out += std::string("; src mac ") + mac;
  }
  return out;
}


json case_report_json(const CaseFacts& f) {
  const SourceView& v = f.at_close;
  const ScoringConfig& sc = f.scoring;
  const OperatorConfig& op = f.reporter;
  const double offered = offered_pps(f);
  json errant_nodes = json::array();
  for (const auto& n : f.at_open.nodes) errant_nodes.push_back(node_json(n));
  return {
      {"case", f.id},
      {"reason", f.reason},
      {"generated_by", "stakegate " + f.version},
      {"errant", {{"source_addresses", f.at_open.addrs}, {"role", std::string(role_name(f.at_open.role))},
                  {"nodes", errant_nodes}, {"in_table_at_close", f.in_table_at_close}}},
      {"reporter", {{"name", op.name}, {"contact", op.contact}, {"node_id", op.node_id}, {"role", op.role},
                    {"address", op.address}, {"network_key", op.network_key}, {"staking_key", op.staking_key}}},
      {"window", {{"start", iso8601_utc(f.opened_unix)}, {"end", iso8601_utc(f.closed_unix)},
                  {"start_unix", f.opened_unix}, {"end_unix", f.closed_unix}, {"duration_s", f.secs}}},
      {"mode", mode_name(f.monitor)},
      {"attribution", {{"method", kAttributionMethod}, {"unverified", kUnverifiedCaveat},
                       {"verified_misbehaviour", verified_misbehaviour(f)}}},
      {"counters", counters_json(f.delta)},
      {"rate", {{"allowed_pps", v.rate_pps}, {"allowed_burst", v.burst},
                {"graylisted_pps", v.rate_pps * sc.penalty_factor}, {"offered_pps", offered},
                {"passed_pps", f.delta.passed / f.secs},
                {"offered_over_allowed", v.rate_pps > 0 ? offered / v.rate_pps : 0.0},
                {"unverified_pps", unverified_total(f.delta) / f.secs}}},
      {"score", {{"at_open", f.at_open.score}, {"at_close", v.score}, {"graylist_threshold", sc.graylist},
                 {"recover_threshold", sc.recover}, {"half_life_s", sc.half_life_s},
                 {"penalty_factor", sc.penalty_factor}, {"graylisted_at_close", f.in_table_at_close && v.graylisted}}},
      {"top_destination_ports", ports_json(f.verified)},
      {"top_destination_ports_unverified", ports_json(f.unverified)},
      {"sample", {{"file", "sample.pcapng"}, {"packets", f.verified.packets + f.unverified.packets},
                  {"verified", f.verified.packets}, {"unverified", f.unverified.packets},
                  {"max_packets", f.max_samples}, {"snaplen", f.snaplen},
                  {"by_reason", {{"verified", f.verified.by_reason}, {"unverified", f.unverified.by_reason}}}}},
  };
}

std::string case_flip_markdown(const CaseFacts& f) {
  const SourceView& v = f.at_close;
  const ScoringConfig& sc = f.scoring;
  const OperatorConfig& op = f.reporter;
  const SourceTotals& d = f.delta;
  const double offered = offered_pps(f);
  std::ostringstream md;
  md << "# Governance report (draft): errant Flow node " << f.node_id << "\n\n"
     << "Draft generated by stakegate " << f.version << " on " << iso8601_utc(f.closed_unix)
     << " from evidence case `" << f.id << "`.\nEvery field must be reviewed before the report is filed "
     << "(FLIP GOV-4: the reporting and the errant node's node ID, networking address, networking key and staking "
     << "key, and the evidence).\n\n"
     << "## Reporting node\n\n| field | value |\n|---|---|\n"
     << "| Operator | " << or_placeholder(op.name, "<operator name>") << " |\n"
     << "| Contact | " << or_placeholder(op.contact, "<contact>") << " |\n"
     << "| Node ID | " << or_placeholder(op.node_id, "<node ID: set operator.node_id>") << " |\n"
     << "| Role | " << or_placeholder(op.role, "<role>") << " |\n"
     << "| Networking address | " << or_placeholder(op.address, "<host:port>") << " |\n"
     << "| Networking key | " << or_placeholder(op.network_key, "<networking public key>") << " |\n"
     << "| Staking key | " << or_placeholder(op.staking_key, "<staking public key>") << " |\n\n"
     << "## Errant node\n\n";
  for (const auto& n : f.at_open.nodes)
    md << "| field | value |\n|---|---|\n| Node ID | " << n.node_id << " |\n| Role | " << role_name(n.role)
       << " |\n| Networking address | " << n.address << " |\n| Networking key | "
       << or_placeholder(n.network_key, "<not in the identity table>") << " |\n| Staking key | "
       << or_placeholder(n.staking_key, "<not in the identity table>") << " |\n| Source addresses seen | ";
  for (size_t i = 0; i < f.at_open.addrs.size(); ++i) md << (i ? ", " : "") << f.at_open.addrs[i];
  md << " |\n\n";
  if (f.at_open.nodes.size() > 1)
    md << "Several nodes share this source address; the gateway cannot tell their packets apart, so the evidence "
          "covers all of them.\n\n";
  md << "## Evidence summary\n\n";
  if (f.monitor)
    md << "The gateway ran in monitor mode for some or all of this window: the packets counted below as dropped "
          "were counted, and forwarded to the cluster all the same.\n\n";
  if (!verified_misbehaviour(f))
    md << "**No verified misbehaviour was observed in this window.** Everything counted below arrived with this node's "
          "source address but off its verified connections; it may have been forged and does not support a report "
          "against this operator.\n\n";
  md << "- Observation window: " << iso8601_utc(f.opened_unix) << " to " << iso8601_utc(f.closed_unix) << " ("
     << fixed(f.secs, 3) << " s), case opened on "
     << (f.reason == "graylist" ? "entering the graylist" : "the operator's request") << ".\n"
     << "- Attribution: " << kAttributionMethod << ".\n"
     << "- Allowed rate (stake-weighted): " << fixed(v.rate_pps) << " packets/s, burst " << fixed(v.burst, 0) << ".\n"
     << "- Verified traffic (attributable to this node): " << fixed(offered) << " packets/s offered ("
     << fixed(v.rate_pps > 0 ? offered / v.rate_pps : 0, 1) << " x the allowed rate); " << d.passed << " passed, "
     << d.over_rate << " dropped over_rate.\n"
     << "- Unverified traffic from its address: " << unverified_total(d) << " packets; " << d.request_passed
     << " passed the request channel and " << d.session_passed
     << " the sessions budget (replies on sessions the cluster opened), dropped: request_over_rate "
     << d.request_over_rate << ", session_over_rate " << d.session_over_rate << ", port_denied " << d.port_denied
     << ", blocklisted " << d.blocklisted << ", ejected " << d.ejected << ". " << kUnverifiedCaveat << ".\n"
     << "- Peer score (moved only by verified traffic): " << fixed(f.at_open.score) << " when the case opened, "
     << fixed(v.score) << " when it closed (graylist below " << fixed(sc.graylist) << ", recovery above "
     << fixed(sc.recover) << ", half-life " << fixed(sc.half_life_s) << " s).\n"
     << "- Top destination ports of the verified packets sampled:";
  if (f.verified.top_ports.empty()) md << " none recorded";
  for (size_t i = 0; i < f.verified.top_ports.size(); ++i)
    md << (i ? "," : "") << " " << f.verified.top_ports[i].first.second << "/" << f.verified.top_ports[i].first.first
       << " (" << f.verified.top_ports[i].second << ")";
  md << ".\n- Attached: `report.json` (machine-readable counters), `sample.pcapng` (dropped packets, the first "
     << f.snaplen << " bytes of each: " << f.verified.packets << " on verified connections, " << f.unverified.packets
     << " unverified; each packet's comment says which, with its 5-tuple, TCP flags, TTL and source MAC).\n\n"
     << "## Contact attempts\n\n"
     << "| date (UTC) | channel | contacted | outcome |\n|---|---|---|---|\n"
     << "| <date> | <e-mail, Discord, ...> | <who> | <outcome> |\n\n"
     << "## Co-signers\n\n| node ID | operator | signature |\n|---|---|---|\n| <node ID> | <operator> | <signature> |\n\n"
     << "## Requested action\n\n<what the reporting operator asks governance to do, and why>\n";
  return md.str();
}

}  // namespace stakegate
