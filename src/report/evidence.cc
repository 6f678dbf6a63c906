#include "stakegate/report/evidence.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>

namespace stakegate {

namespace fs = std::filesystem;
using json = nlohmann::json;

// ---------------------------------------------------------------------------- pcapng

namespace {

void put32(std::string& b, uint32_t v) { b.append(reinterpret_cast<const char*>(&v), 4); }
void put16(std::string& b, uint16_t v) { b.append(reinterpret_cast<const char*>(&v), 2); }
void pad4(std::string& b) { b.append((4 - b.size() % 4) % 4, '\0'); }

// A block: type, total length, body, total length (the body already padded to 4).
std::string block(uint32_t type, const std::string& body) {
  std::string b;
  uint32_t len = static_cast<uint32_t>(12 + body.size());
  put32(b, type);
  put32(b, len);
  b += body;
  put32(b, len);
  return b;
}

void option(std::string& b, uint16_t code, const std::string& value) {
  put16(b, code);
  put16(b, static_cast<uint16_t>(value.size()));
  b += value;
  pad4(b);
}

}  // namespace

bool PcapngWriter::open(const std::string& path, uint32_t snaplen) {
  f_ = std::fopen(path.c_str(), "wb");
  if (!f_) return false;
  ok_ = true;
  bytes_ = 0;
  std::string shb;
  put32(shb, 0x1A2B3C4D);  // byte-order magic
  put16(shb, 1);
  put16(shb, 0);
  put32(shb, 0xFFFFFFFF);  // section length: unknown
  put32(shb, 0xFFFFFFFF);
  option(shb, 4, "stakegate");  // shb_userappl
  put32(shb, 0);                // opt_endofopt
  std::string idb;
  put16(idb, 1);  // LINKTYPE_ETHERNET
  put16(idb, 0);
  put32(idb, snaplen);
  option(idb, 2, "outside");               // if_name
  option(idb, 9, std::string(1, '\x09'));  // if_tsresol: nanoseconds
  put32(idb, 0);
  std::string out = block(0x0A0D0D0A, shb) + block(1, idb);
  ok_ = std::fwrite(out.data(), 1, out.size(), f_) == out.size();
  bytes_ += out.size();
  return ok_;
}

bool PcapngWriter::write(uint64_t unix_ns, const uint8_t* data, uint32_t caplen, uint32_t orig_len,
                         const std::string& comment) {
  if (!f_ || !ok_) return false;
  std::string epb;
  put32(epb, 0);  // interface 0
  put32(epb, static_cast<uint32_t>(unix_ns >> 32));
  put32(epb, static_cast<uint32_t>(unix_ns));
  put32(epb, caplen);
  put32(epb, orig_len);
  epb.append(reinterpret_cast<const char*>(data), caplen);
  pad4(epb);
  option(epb, 1, comment);  // opt_comment
  put32(epb, 0);
  std::string out = block(6, epb);
  ok_ = std::fwrite(out.data(), 1, out.size(), f_) == out.size();
  bytes_ += out.size();
  return ok_;
}

bool PcapngWriter::close() {
  if (!f_) return ok_;
  bool flushed = std::fflush(f_) == 0;
  bool closed = std::fclose(f_) == 0;
  f_ = nullptr;
  ok_ = ok_ && flushed && closed;
  return ok_;
}

// ------------------------------------------------------------------- source directory

void SourceDirectory::reset(const std::vector<const Worker*>& workers, const std::vector<NodeIdentity>* nodes,
                            const StakePlan* plan, const ScoringConfig& scoring, unsigned shards) {
  workers_ = workers;
  shards_ = shards ? shards : std::max<unsigned>(1, static_cast<unsigned>(workers.size()));
  nodes_ = nodes;
  plan_ = plan;
  scoring_ = scoring;
  by_slot_.clear();
  for (size_t i = 0; i < plan->sources.size(); ++i) by_slot_[plan->sources[i].slot] = i;
}

uint64_t SourceDirectory::now() const {
  uint64_t t = 0;
  for (const Worker* w : workers_) t = std::max(t, w->clock_ns());
  return t;
}

std::optional<SourceView> SourceDirectory::make(size_t index) const {
  const SourcePlan& sp = plan_->sources[index];
  SourceView v;
  v.slot = sp.slot;
  v.epoch = sp.slot_epoch;
  for (size_t i : sp.nodes) v.nodes.push_back((*nodes_)[i]);
  for (const IpAddr& a : sp.addrs) v.addrs.push_back(a.to_string());
  v.role = sp.role;
  v.rate_pps = sp.rate_pps;
  v.burst = sp.burst_pkts;
  const double workers = shards_;
  for (const Worker* w : workers_) {
    if (sp.slot >= w->source_capacity()) continue;
    const NodeMeter& m = w->meter(sp.slot);
    const NodeMeterCold& c = w->meter_cold(sp.slot);
    if (m.epoch != sp.slot_epoch) continue;  // this worker has not adopted the slot's source yet
    v.counters.passed += m.passed;
    v.counters.over_rate += m.dropped_over_rate;
    v.counters.blocklisted += c.dropped_blocklisted;
    v.counters.ejected += c.dropped_ejected;
    v.counters.port_denied += c.dropped_port_denied;
    double s = Worker::decayed(c.score, c.score_ns, w->clock_ns(), scoring_.half_life_s * 1e9);
    v.score += s;
    if ((m.flags & SourcePolicy::kGraylisted) && scoring_.enabled && s <= scoring_.recover / workers) v.graylisted = true;
  }
  return v;
}

std::optional<SourceView> SourceDirectory::by_slot(uint32_t slot) const {
  auto it = by_slot_.find(slot);
  if (!plan_ || it == by_slot_.end()) return std::nullopt;
  return make(it->second);
}

std::optional<SourceView> SourceDirectory::by_node(const std::string& node_id) const {
  if (!plan_) return std::nullopt;
  for (size_t i = 0; i < nodes_->size(); ++i)
    if ((*nodes_)[i].node_id == node_id) return make(plan_->nodes[i].source);
  return std::nullopt;
}

// ------------------------------------------------------------------------- graylist

namespace {
std::string describe(const SourceView& s) {
  std::string out;
  for (const auto& n : s.nodes) out += (out.empty() ? "" : ", ") + n.node_id + " (" + std::string(role_name(n.role)) + ")";
  out += " at ";
  for (size_t i = 0; i < s.addrs.size(); ++i) out += (i ? "," : "") + s.addrs[i];
  return out;
}
std::string fmt(double v, int prec = 1) {
  std::ostringstream o;
  o.setf(std::ios::fixed);
  o.precision(prec);
  o << v;
  return o.str();
}
}  // namespace

bool GraylistTracker::enter(const SourceView& s, uint64_t now_ns) {
  if (graylisted_.count(s.slot)) return false;
  GraylistEntry e{s.slot, s.epoch, now_ns, 0, s.score, {}};
  for (const auto& n : s.nodes) e.node_ids.push_back(n.node_id);
  history_.push_back(e);
  if (history_.size() > 1000) history_.erase(history_.begin());
  graylisted_[s.slot] = std::move(e);
  entered_++;
  log_(true, "graylisted: " + describe(s) + ", score " + fmt(s.score) + "; its rates are reduced until the score recovers");
  return true;
}

void GraylistTracker::refresh(const SourceDirectory& dir) {
  const uint64_t now_ns = dir.now();
  for (auto it = graylisted_.begin(); it != graylisted_.end();) {
    auto v = dir.by_slot(it->first);
    if (v && v->epoch == it->second.epoch && v->graylisted) {
      ++it;
      continue;
    }
    exited_++;
    for (auto h = history_.rbegin(); h != history_.rend(); ++h)
      if (h->slot == it->first && h->since_ns == it->second.since_ns) {
        h->until_ns = now_ns;
        break;
      }
    double s = (now_ns > it->second.since_ns ? now_ns - it->second.since_ns : 0) / 1e9;
    log_(false, (v && v->epoch == it->second.epoch ? "recovered from the graylist: " + describe(*v) + ", score " + fmt(v->score)
                                                   : "left the graylist with the identity table: " + it->second.node_ids.front()) +
                    " after " + fmt(s) + " s");
    it = graylisted_.erase(it);
  }
}

// ------------------------------------------------------------------------- evidence

struct EvidenceRecorder::Case {
  CaseSummary summary;
  uint32_t slot = 0, epoch = 0;
  uint64_t opened_ns = 0, window_ns = 0;
  SourceView at_open;
  PcapngWriter pcap;
  bool failed = false;
  uint64_t sample_bytes = 0;
  std::map<std::string, uint64_t> sample_reasons;
  std::map<std::pair<std::string, uint16_t>, uint64_t> ports;  // (proto, port) -> samples
};

namespace {

std::string iso(double unix_s) {
  std::time_t t = static_cast<std::time_t>(std::floor(unix_s));
  std::tm tm{};
  gmtime_r(&t, &tm);
  char b[40];
  std::strftime(b, sizeof b, "%Y-%m-%dT%H:%M:%S", &tm);
  char ms[8];
  std::snprintf(ms, sizeof ms, ".%03dZ", static_cast<int>((unix_s - std::floor(unix_s)) * 1000));
  return std::string(b) + ms;
}

std::string compact_time(double unix_s) {
  std::time_t t = static_cast<std::time_t>(unix_s);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char b[24];
  std::strftime(b, sizeof b, "%Y%m%dT%H%M%SZ", &tm);
  return b;
}

// Protocol and destination port of a sampled frame (Ethernet, VLAN tags, IPv4 or IPv6
// without extension headers); nullopt for anything else or a frame cut before the port.
std::optional<std::pair<std::string, uint16_t>> dst_port(const uint8_t* d, uint32_t n) {
  uint32_t off = 12;
  auto be16 = [&](uint32_t o) { return static_cast<uint16_t>(d[o] << 8 | d[o + 1]); };
  if (n < off + 2) return std::nullopt;
  uint16_t type = be16(off);
  while ((type == 0x8100 || type == 0x88a8) && n >= off + 6) {
    off += 4;
    type = be16(off);
  }
  off += 2;
  uint8_t proto = 0;
  uint32_t l4 = 0;
  if (type == 0x0800 && n >= off + 20) {
    if ((be16(off + 6) & 0x1fff) != 0) return std::nullopt;  // a later fragment has no ports
    proto = d[off + 9];
    l4 = off + (d[off] & 0x0f) * 4;
  } else if (type == 0x86dd && n >= off + 40) {
    proto = d[off + 6];
    l4 = off + 40;
  } else {
    return std::nullopt;
  }
  if ((proto != 6 && proto != 17) || n < l4 + 4) return std::nullopt;
  return std::make_pair(std::string(proto == 6 ? "tcp" : "udp"), be16(l4 + 2));
}

json node_json(const NodeIdentity& n) {
  return {{"node_id", n.node_id},          {"role", std::string(role_name(n.role))}, {"address", n.address},
          {"network_key", n.network_key},  {"staking_key", n.staking_key},          {"status", n.status},
          {"weight", n.weight}};
}

json counters_json(const SourceTotals& t) {
  return {{"passed", t.passed},
          {"dropped", {{"over_rate", t.over_rate}, {"port_denied", t.port_denied}, {"blocklisted", t.blocklisted},
                       {"ejected", t.ejected}}}};
}

SourceTotals minus(const SourceTotals& a, const SourceTotals& b) {
  auto d = [](uint64_t x, uint64_t y) { return x >= y ? x - y : 0; };
  return {d(a.passed, b.passed), d(a.blocklisted, b.blocklisted), d(a.ejected, b.ejected), d(a.port_denied, b.port_denied),
          d(a.over_rate, b.over_rate)};
}

uint64_t dir_bytes(const fs::path& p) {
  uint64_t total = 0;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(p, ec); !ec && it != fs::recursive_directory_iterator(); it.increment(ec))
    if (it->is_regular_file(ec)) total += it->file_size(ec);
  return total;
}

const char* or_placeholder(const std::string& s, const char* placeholder) { return s.empty() ? placeholder : s.c_str(); }

}  // namespace

EvidenceRecorder::EvidenceRecorder(EvidenceConfig cfg, OperatorConfig op, ScoringConfig scoring, std::string version,
                                   UnixTime clock, Log log)
    : cfg_(std::move(cfg)), op_(std::move(op)), scoring_(scoring), version_(std::move(version)), clock_(std::move(clock)),
      log_(std::move(log)) {}

EvidenceRecorder::~EvidenceRecorder() = default;

void EvidenceRecorder::reconfigure(const EvidenceConfig& cfg, const OperatorConfig& op, const ScoringConfig& scoring) {
  cfg_ = cfg;
  op_ = op;
  scoring_ = scoring;
}

void EvidenceRecorder::fail(Case& c, const std::string& what) {
  if (c.failed) return;
  c.failed = true;
  c.summary.error = what;
  errors_++;
  log_(true, "evidence case " + c.summary.id + ": " + what + " (the data path is not affected)");
}

CaseSummary EvidenceRecorder::open(const SourceView& s, const std::string& reason, uint64_t now_ns) {
  for (auto& c : open_)
    if (c->slot == s.slot && c->epoch == s.epoch) return c->summary;
  enforce_retention();
  auto c = std::make_unique<Case>();
  c->slot = s.slot;
  c->epoch = s.epoch;
  c->opened_ns = now_ns;
  c->window_ns = static_cast<uint64_t>(cfg_.window_s * 1e9);
  c->at_open = s;
  const std::string node = s.nodes.empty() ? "unknown" : s.nodes.front().node_id;
  c->summary.node_id = node;
  c->summary.reason = reason;
  c->summary.opened_unix = static_cast<double>(clock_(now_ns)) / 1e9;
  c->summary.open = true;
  std::string base = compact_time(c->summary.opened_unix) + "-" + node.substr(0, 12) + "-" + reason;
  std::error_code ec;
  fs::create_directories(cfg_.dir, ec);
  std::string id = base;
  for (int i = 2; !ec && fs::exists(fs::path(cfg_.dir) / id, ec); ++i) id = base + "-" + std::to_string(i);
  c->summary.id = id;
  c->summary.dir = (fs::path(cfg_.dir) / id).string();
  opened_++;
  if (ec || !fs::create_directory(c->summary.dir, ec) || ec) {
    fail(*c, "cannot create " + c->summary.dir + ": " + (ec ? ec.message() : std::string("exists")));
  } else if (!c->pcap.open(c->summary.dir + "/sample.pcapng", cfg_.snaplen)) {
    fail(*c, "cannot write " + c->summary.dir + "/sample.pcapng: " + std::strerror(errno));
  } else {
    log_(false, "evidence case opened (" + reason + "): " + c->summary.dir + " for " + describe(s));
  }
  CaseSummary out = c->summary;
  open_.push_back(std::move(c));
  return out;
}

void EvidenceRecorder::sample(const SampleRecord& r) {
  for (auto& c : open_) {
    if (c->slot != r.slot || c->epoch != r.epoch) continue;
    if (c->failed || c->summary.samples >= cfg_.max_samples) return;
    std::string reason(verdict_name(static_cast<Verdict>(r.verdict)));
    uint64_t ns = clock_(r.ns);
    if (!c->pcap.write(ns, r.data, r.caplen, r.orig_len, "stakegate: dropped, " + reason)) {
      fail(*c, "writing " + c->summary.dir + "/sample.pcapng failed: " + std::strerror(errno));
      return;
    }
    c->summary.samples++;
    samples_written_++;
    c->sample_reasons[reason]++;
    if (auto p = dst_port(r.data, r.caplen)) c->ports[*p]++;
    return;
  }
}

void EvidenceRecorder::tick(const SourceDirectory& dir, uint64_t now_ns, bool all) {
  for (size_t i = 0; i < open_.size();) {
    Case& c = *open_[i];
    if (all || now_ns >= c.opened_ns + c.window_ns) {
      close(c, dir, now_ns);
      closed_.push_back(c.summary);
      if (closed_.size() > 100) closed_.erase(closed_.begin());
      open_.erase(open_.begin() + static_cast<long>(i));
    } else {
      ++i;
    }
  }
}

std::vector<CaseSummary> EvidenceRecorder::cases() const {
  std::vector<CaseSummary> out = closed_;
  for (const auto& c : open_) out.push_back(c->summary);
  return out;
}

void EvidenceRecorder::close(Case& c, const SourceDirectory& dir, uint64_t now_ns) {
  c.summary.open = false;
  c.summary.closed_unix = static_cast<double>(clock_(now_ns)) / 1e9;
  if (!c.pcap.close()) fail(c, "writing " + c.summary.dir + "/sample.pcapng failed");
  if (c.failed && !fs::exists(c.summary.dir)) return;

  auto now = dir.by_slot(c.slot);
  const bool same = now && now->epoch == c.epoch;
  const SourceView& v = same ? *now : c.at_open;
  SourceTotals delta = same ? minus(now->counters, c.at_open.counters) : SourceTotals{};
  const double secs = std::max(1e-9, (now_ns > c.opened_ns ? now_ns - c.opened_ns : 0) / 1e9);
  const uint64_t dropped = delta.over_rate + delta.port_denied + delta.blocklisted + delta.ejected;
  const double offered = (delta.passed + dropped) / secs;

  std::vector<std::pair<std::pair<std::string, uint16_t>, uint64_t>> ports(c.ports.begin(), c.ports.end());
  std::sort(ports.begin(), ports.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  if (ports.size() > 10) ports.resize(10);
  json top = json::array();
  for (const auto& [pp, n] : ports) top.push_back({{"proto", pp.first}, {"port", pp.second}, {"samples", n}});

  json errant_nodes = json::array();
  for (const auto& n : c.at_open.nodes) errant_nodes.push_back(node_json(n));
  json report = {
      {"case", c.summary.id},
      {"reason", c.summary.reason},
      {"generated_by", "stakegate " + version_},
      {"errant", {{"source_addresses", c.at_open.addrs}, {"role", std::string(role_name(c.at_open.role))},
                  {"nodes", errant_nodes}, {"in_table_at_close", same}}},
      {"reporter", {{"name", op_.name}, {"contact", op_.contact}, {"node_id", op_.node_id}, {"role", op_.role},
                    {"address", op_.address}, {"network_key", op_.network_key}, {"staking_key", op_.staking_key}}},
      {"window", {{"start", iso(c.summary.opened_unix)}, {"end", iso(c.summary.closed_unix)},
                  {"start_unix", c.summary.opened_unix}, {"end_unix", c.summary.closed_unix}, {"duration_s", secs}}},
      {"counters", counters_json(delta)},
      {"rate", {{"allowed_pps", v.rate_pps}, {"allowed_burst", v.burst},
                {"graylisted_pps", v.rate_pps * scoring_.penalty_factor}, {"offered_pps", offered},
                {"passed_pps", delta.passed / secs}, {"offered_over_allowed", v.rate_pps > 0 ? offered / v.rate_pps : 0.0}}},
      {"score", {{"at_open", c.at_open.score}, {"at_close", v.score}, {"graylist_threshold", scoring_.graylist},
                 {"recover_threshold", scoring_.recover}, {"half_life_s", scoring_.half_life_s},
                 {"penalty_factor", scoring_.penalty_factor}, {"graylisted_at_close", same && now->graylisted}}},
      {"top_destination_ports", top},
      {"sample", {{"file", "sample.pcapng"}, {"packets", c.summary.samples}, {"max_packets", cfg_.max_samples},
                  {"snaplen", cfg_.snaplen}, {"by_reason", c.sample_reasons}}},
  };
  {
    std::ofstream out(c.summary.dir + "/report.json");
    out << report.dump(2) << "\n";
    if (!out.good()) fail(c, "writing " + c.summary.dir + "/report.json failed");
  }

  std::ostringstream md;
  md << "# Governance report (draft): errant Flow node " << c.summary.node_id << "\n\n"
     << "Draft generated by stakegate " << version_ << " on " << iso(c.summary.closed_unix)
     << " from evidence case `" << c.summary.id << "`.\nEvery field must be reviewed before the report is filed "
     << "(FLIP GOV-4: the reporting and the errant node's node ID, networking address, networking key and staking "
     << "key, and the evidence).\n\n"
     << "## Reporting node\n\n| field | value |\n|---|---|\n"
     << "| Operator | " << or_placeholder(op_.name, "<operator name>") << " |\n"
     << "| Contact | " << or_placeholder(op_.contact, "<contact>") << " |\n"
     << "| Node ID | " << or_placeholder(op_.node_id, "<node ID: set operator.node_id>") << " |\n"
     << "| Role | " << or_placeholder(op_.role, "<role>") << " |\n"
     << "| Networking address | " << or_placeholder(op_.address, "<host:port>") << " |\n"
     << "| Networking key | " << or_placeholder(op_.network_key, "<networking public key>") << " |\n"
     << "| Staking key | " << or_placeholder(op_.staking_key, "<staking public key>") << " |\n\n"
     << "## Errant node\n\n";
  for (const auto& n : c.at_open.nodes)
    md << "| field | value |\n|---|---|\n| Node ID | " << n.node_id << " |\n| Role | " << role_name(n.role)
       << " |\n| Networking address | " << n.address << " |\n| Networking key | "
       << or_placeholder(n.network_key, "<not in the identity table>") << " |\n| Staking key | "
       << or_placeholder(n.staking_key, "<not in the identity table>") << " |\n| Source addresses seen | ";
  for (size_t i = 0; i < c.at_open.addrs.size(); ++i) md << (i ? ", " : "") << c.at_open.addrs[i];
  md << " |\n\n";
  if (c.at_open.nodes.size() > 1)
    md << "Several nodes share this source address; the gateway cannot tell their packets apart, so the evidence "
          "covers all of them.\n\n";
  md << "## Evidence summary\n\n"
     << "- Observation window: " << iso(c.summary.opened_unix) << " to " << iso(c.summary.closed_unix) << " ("
     << fmt(secs, 3) << " s), case opened on " << (c.summary.reason == "graylist" ? "entering the graylist" : "the operator's request")
     << ".\n"
     << "- Allowed rate (stake-weighted): " << fmt(v.rate_pps) << " packets/s, burst " << fmt(v.burst, 0) << ".\n"
     << "- Observed: " << fmt(offered) << " packets/s offered (" << fmt(v.rate_pps > 0 ? offered / v.rate_pps : 0, 1)
     << " x the allowed rate); " << delta.passed << " passed, " << dropped << " dropped (over_rate " << delta.over_rate
     << ", port_denied " << delta.port_denied << ", blocklisted " << delta.blocklisted << ", ejected " << delta.ejected
     << ").\n"
     << "- Peer score: " << fmt(c.at_open.score) << " when the case opened, " << fmt(v.score) << " when it closed "
     << "(graylist below " << fmt(scoring_.graylist) << ", recovery above " << fmt(scoring_.recover) << ", half-life "
     << fmt(scoring_.half_life_s) << " s).\n"
     << "- Top destination ports of the dropped packets sampled:";
  if (ports.empty()) md << " none recorded";
  for (size_t i = 0; i < ports.size(); ++i)
    md << (i ? "," : "") << " " << ports[i].first.second << "/" << ports[i].first.first << " (" << ports[i].second << ")";
  md << ".\n- Attached: `report.json` (machine-readable counters), `sample.pcapng` (" << c.summary.samples
     << " dropped packets, the first " << cfg_.snaplen << " bytes of each).\n\n"
     << "## Contact attempts\n\n"
     << "| date (UTC) | channel | contacted | outcome |\n|---|---|---|---|\n| <date> | <e-mail, Discord, ...> | <who> | <outcome> |\n\n"
     << "## Co-signers\n\n| node ID | operator | signature |\n|---|---|---|\n| <node ID> | <operator> | <signature> |\n\n"
     << "## Requested action\n\n<what the reporting operator asks governance to do, and why>\n";
  {
    std::ofstream out(c.summary.dir + "/flip.md");
    out << md.str();
    if (!out.good()) fail(c, "writing " + c.summary.dir + "/flip.md failed");
  }
  if (!c.failed)
    log_(false, "evidence case written: " + c.summary.dir + " (" + std::to_string(c.summary.samples) + " packets sampled)");
}

void EvidenceRecorder::enforce_retention() {
  std::error_code ec;
  if (!fs::is_directory(cfg_.dir, ec)) return;
  static const std::regex kCase(R"(\d{8}T\d{6}Z-[0-9a-f]{1,12}-[a-z]+(-\d+)?)");
  std::vector<std::pair<std::string, uint64_t>> cases;
  uint64_t total = 0;
  for (auto it = fs::directory_iterator(cfg_.dir, ec); !ec && it != fs::directory_iterator(); it.increment(ec)) {
    std::string name = it->path().filename().string();
    if (!it->is_directory(ec) || !std::regex_match(name, kCase)) continue;
    bool in_use = false;
    for (const auto& c : open_) in_use |= c->summary.id == name;
    if (in_use) continue;
    uint64_t b = dir_bytes(it->path());
    cases.emplace_back(name, b);
    total += b;
  }
  std::sort(cases.begin(), cases.end());
  size_t count = cases.size() + open_.size();
  for (const auto& [name, b] : cases) {
    if (count < cfg_.retention_cases && total <= cfg_.retention_bytes) break;
    fs::remove_all(fs::path(cfg_.dir) / name, ec);
    if (ec) {
      errors_++;
      log_(true, "evidence retention: cannot remove " + name + ": " + ec.message());
      break;
    }
    log_(false, "evidence retention: removed the oldest case " + name);
    count--;
    total -= b;
  }
}

size_t drain_evidence(const std::vector<Worker*>& workers, SourceDirectory& dir, GraylistTracker& gray,
                      EvidenceRecorder& rec) {
  size_t n = 0;
  for (Worker* w : workers) {
    n += w->samples().drain([&](const SampleRecord& r) {
      if (r.kind == SampleRecord::kGraylistEnter) {
        auto v = dir.by_slot(r.slot);
        if (!v || v->epoch != r.epoch) return;
        v->graylisted = true;  // as of the event (a later decay may already have undone it)
        v->score = r.score * dir.shards();  // the entering worker's share, scaled
        if (gray.enter(*v, r.ns) && w->snapshot().score.evidence_on_graylist) rec.open(*v, "graylist", r.ns);
      } else if (r.kind == SampleRecord::kSample) {
        rec.sample(r);
      }
    });
  }
  gray.refresh(dir);
  rec.tick(dir, dir.now());
  return n;
}

}  // namespace stakegate
