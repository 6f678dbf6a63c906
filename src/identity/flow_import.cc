#include "stakegate/identity/flow_import.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <map>
#include <optional>
#include <nlohmann/json.hpp>

#include "stakegate/base/error.h"
#include "stakegate/base/node_id.h"

namespace stakegate {
namespace {

using json = nlohmann::json;

json parse_json(const std::string& text, const std::string& file) {
  try {
    return json::parse(text);
  } catch (const json::exception& e) {  // syntax errors, and numbers out of range (fuzz finding)
    throw ConfigError(file, "", std::string("not valid JSON: ") + e.what());
  }
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

const json& need(const json& obj, const char* key, const std::string& file, const std::string& path) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) throw ConfigError(file, path, std::string("missing key '") + key + "'");
  return *it;
}

std::string need_string(const json& obj, const char* key, const std::string& file, const std::string& path) {
  const json& v = need(obj, key, file, path);
  if (!v.is_string()) throw ConfigError(file, path + "." + key, "must be a string");
  return v.get<std::string>();
}

double need_weight(const json& obj, const char* key, const std::string& file, const std::string& path) {
  const json& v = need(obj, key, file, path);
  if (!v.is_number() || v.get<double>() < 0) throw ConfigError(file, path + "." + key, "must be a number >= 0");
  return v.get<double>();
}

void fill_common(NodeIdentity& n, const json& obj, const std::string& file, const std::string& path) {
  // One at a time: a missing key is reported in the order the fields are documented.
  std::string id = need_string(obj, "NodeID", file, path);
  std::string role = need_string(obj, "Role", file, path);
  std::string address = need_string(obj, "Address", file, path);
  set_node_fields(n, id, role, address, file, path, kFlowFieldNames);
}

std::string base64_to_hex(const std::string& b64, const std::string& file, const std::string& path) {
  static constexpr char kHex[] = "0123456789abcdef";
  auto val = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;
    if (c == '/' || c == '_') return 63;
    return -1;
  };
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : b64) {
    if (c == '=') break;
    int v = val(c);
    if (v < 0) throw ConfigError(file, path, "not valid base64");
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      uint8_t byte = static_cast<uint8_t>(acc >> bits);
      out += kHex[byte >> 4];
      out += kHex[byte & 15];
    }
  }
  return out;
}

}  // namespace

std::vector<NodeIdentity> parse_flow_node_infos(const std::string& text, const std::string& file) {
  json doc = parse_json(text, file);
  if (!doc.is_array()) throw ConfigError(file, "", "must be a JSON array of node infos");
  std::vector<NodeIdentity> out;
  for (size_t i = 0; i < doc.size(); ++i) {
    std::string path = "[" + std::to_string(i) + "]";
    const json& o = doc[i];
    if (!o.is_object()) throw ConfigError(file, path, "must be an object");
    NodeIdentity n;
    fill_common(n, o, file, path);
    // Older node-infos files (before the 2022 renaming) call the weight "Stake".
    n.weight = need_weight(o, o.contains("Weight") || !o.contains("Stake") ? "Weight" : "Stake", file, path);
    if (o.contains("NetworkPubKey") && o["NetworkPubKey"].is_string()) n.network_key = lower(o["NetworkPubKey"].get<std::string>());
    if (o.contains("StakingPubKey") && o["StakingPubKey"].is_string()) n.staking_key = lower(o["StakingPubKey"].get<std::string>());
    out.push_back(std::move(n));
  }
  return out;
}

std::vector<NodeIdentity> parse_flow_snapshot(const std::string& text, const std::string& file, FlowEpoch* epoch) {
  json doc = parse_json(text, file);
  const std::string base = "SealingSegment.ProtocolStateEntries";
  if (!doc.is_object() || !doc.contains("SealingSegment") || !doc["SealingSegment"].is_object() ||
      !doc["SealingSegment"].contains("ProtocolStateEntries") ||
      !doc["SealingSegment"]["ProtocolStateEntries"].is_object())
    throw ConfigError(file, base, "missing: not a Flow protocol state snapshot");
  const json& entries = doc["SealingSegment"]["ProtocolStateEntries"];
  if (entries.empty()) throw ConfigError(file, base, "is empty");

  // With several entries, the newest block of the sealing segment names the current one.
  std::string id;
  if (entries.size() == 1) {
    id = entries.begin().key();
  } else {
    const json& seg = doc["SealingSegment"];
    if (seg.contains("Blocks") && seg["Blocks"].is_array() && !seg["Blocks"].empty()) {
      // Up to flow-go v0.42 the segment's blocks are blocks; from v0.43 they are proposals
      // that wrap one ({"Block": {..., "Payload": ...}, "ProposerSigData": ...}).
      const json& newest = seg["Blocks"].back();
      const json& last = newest.contains("Block") && newest["Block"].is_object() ? newest["Block"] : newest;
      if (last.contains("Payload") && last["Payload"].is_object() && last["Payload"].contains("ProtocolStateID") &&
          last["Payload"]["ProtocolStateID"].is_string())
        id = last["Payload"]["ProtocolStateID"].get<std::string>();
    }
    if (id.empty() || !entries.contains(id))
      throw ConfigError(file, base, "holds several entries and the newest block does not name one of them");
  }
  std::string path = base + "." + id + ".EpochEntry.CurrentEpochIdentityTable";
  const json& entry = entries[id];
  if (!entry.contains("EpochEntry") || !entry["EpochEntry"].contains("CurrentEpochIdentityTable"))
    throw ConfigError(file, path, "missing");
  const json& table = entry["EpochEntry"]["CurrentEpochIdentityTable"];
  if (!table.is_array()) throw ConfigError(file, path, "must be an array");
  if (epoch) {
    const json& ee = entry["EpochEntry"];
    *epoch = {};
    if (ee.contains("CurrentEpochSetup") && ee["CurrentEpochSetup"].is_object() &&
        ee["CurrentEpochSetup"].contains("Counter") && ee["CurrentEpochSetup"]["Counter"].is_number_unsigned())
      epoch->counter = ee["CurrentEpochSetup"]["Counter"].get<uint64_t>();
    // The next epoch appears at its setup and gets a commit ID once committed.
    const bool fallback = ee.contains("EpochFallbackTriggered") && ee["EpochFallbackTriggered"].is_boolean() &&
                          ee["EpochFallbackTriggered"].get<bool>();
    const json* next = ee.contains("NextEpoch") && ee["NextEpoch"].is_object() ? &ee["NextEpoch"] : nullptr;
    auto committed = [](const json& e) {
      if (!e.contains("CommitID") || !e["CommitID"].is_string()) return false;
      const std::string c = e["CommitID"].get<std::string>();
      return !c.empty() && c.find_first_not_of('0') != std::string::npos;
    };
    epoch->phase = fallback ? "fallback" : !next ? "staking" : committed(*next) ? "committed" : "setup";
  }

  std::vector<NodeIdentity> out;
  for (size_t i = 0; i < table.size(); ++i) {
    std::string p = path + "[" + std::to_string(i) + "]";
    const json& row = table[i];
    if (!row.is_object()) throw ConfigError(file, p, "must be an object");
    const json& sk = need(row, "EncodableIdentitySkeleton", file, p);
    std::string skp = p + ".EncodableIdentitySkeleton";
    if (!sk.is_object()) throw ConfigError(file, skp, "must be an object");
    NodeIdentity n;
    fill_common(n, sk, file, skp);
    n.weight = need_weight(sk, "InitialWeight", file, skp);
    if (sk.contains("NetworkPubKey") && sk["NetworkPubKey"].is_string())
      n.network_key = base64_to_hex(sk["NetworkPubKey"].get<std::string>(), file, skp + ".NetworkPubKey");
    if (sk.contains("StakingPubKey") && sk["StakingPubKey"].is_string())
      n.staking_key = base64_to_hex(sk["StakingPubKey"].get<std::string>(), file, skp + ".StakingPubKey");
    std::string status = need_string(row, "ParticipationStatus", file, p);
    static const std::map<std::string, std::string> kStatus = {
        {"EpochParticipationStatusJoining", "joining"}, {"EpochParticipationStatusActive", "active"},
        {"EpochParticipationStatusLeaving", "leaving"}, {"EpochParticipationStatusEjected", "ejected"}};
    auto it = kStatus.find(status);
    if (it == kStatus.end())
      throw ConfigError(file, p + ".ParticipationStatus", "unknown status '" + status + "' (node " + n.node_id + ")");
    set_node_status(n, it->second);
    out.push_back(std::move(n));
  }
  return out;
}

std::map<std::string, double> parse_cadence_stakes(const std::string& text, const std::string& source) {
  json doc = parse_json(text, source);
  if (!doc.is_object() || doc.value("type", "") != "Dictionary" || !doc.contains("value") || !doc["value"].is_array())
    throw ConfigError(source, "", "expected a JSON-Cadence Dictionary {String: UFix64} of NodeID to stake");
  std::map<std::string, double> out;
  for (size_t i = 0; i < doc["value"].size(); ++i) {
    const json& kv = doc["value"][i];
    const std::string p = "value[" + std::to_string(i) + "]";
    if (!kv.is_object() || !kv.contains("key") || !kv.contains("value") || !kv["key"].is_object() || !kv["value"].is_object())
      throw ConfigError(source, p, "expected {key, value}");
    const json& k = kv["key"];
    const json& v = kv["value"];
    if (k.value("type", "") != "String" || !k.contains("value") || !k["value"].is_string())
      throw ConfigError(source, p + ".key", "must be a String (a NodeID)");
    auto id = NodeId::parse(k["value"].get<std::string>());
    if (!id) throw ConfigError(source, p + ".key", "not a NodeID (64 hex characters)");
    if (v.value("type", "") != "UFix64" || !v.contains("value") || !v["value"].is_string())
      throw ConfigError(source, p + ".value", "must be a UFix64");
    const std::string num = v["value"].get<std::string>();
    char* end = nullptr;
    const double stake = std::strtod(num.c_str(), &end);
    if (num.empty() || *end != '\0' || !(stake >= 0) || stake > 1.9e11)  // UFix64 tops at ~1.8e11
      throw ConfigError(source, p + ".value", "not a UFix64: '" + num + "'");
    if (!out.emplace(id->str(), stake).second) throw ConfigError(source, p, "NodeID listed twice");
  }
  return out;
}

namespace {
// Digits with at most one decimal point ("100", "1250000.00000000"); nothing else.
std::optional<double> decimal_text(const std::string& t) {
  bool digit = false, point = false;
  for (char c : t) {
    if (c >= '0' && c <= '9') digit = true;
    else if (c == '.' && !point) point = true;
    else return std::nullopt;
  }
  if (!digit) return std::nullopt;
  const double v = std::strtod(t.c_str(), nullptr);
  if (!std::isfinite(v)) return std::nullopt;
  return v;
}
}  // namespace

std::map<std::string, double> parse_stake_file(const std::string& text, const std::string& file) {
  json doc = parse_json(text, file);
  if (!doc.is_object()) throw ConfigError(file, "", "must be a JSON object of NodeID to stake");
  std::map<std::string, double> out;
  for (auto it = doc.begin(); it != doc.end(); ++it) {
    auto id = NodeId::parse(it.key());
    if (!id) throw ConfigError(file, it.key(), "key must be a NodeID (64 hex characters)");
    // A number, as partner-weights.json has it, or a decimal string, as UFix64 amounts are
    // written when copied out of a Cadence script's result ("1250000.00000000").
    std::optional<double> stake;
    if (it->is_number()) stake = it->get<double>();
    else if (it->is_string()) stake = decimal_text(it->get<std::string>());
    if (!stake || *stake < 0)
      throw ConfigError(file, it.key(), "stake must be a number >= 0 (or a decimal string such as \"1250000.0\")");
    if (!out.emplace(id->str(), *stake).second) throw ConfigError(file, it.key(), "NodeID listed twice");
  }
  return out;
}

}  // namespace stakegate
