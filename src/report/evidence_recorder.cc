#include "stakegate/report/evidence_recorder.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>

#include "stakegate/base/json_text.h"
#include "stakegate/net/parse.h"
#include "stakegate/report/evidence_bundle.h"
#include "stakegate/report/pcapng_writer.h"
#include "stakegate/report/text.h"

namespace stakegate {

namespace fs = std::filesystem;

struct EvidenceRecorder::Case {
  CaseSummary summary;
  uint32_t slot = 0, epoch = 0;
  uint64_t opened_ns = 0, window_ns = 0;
  SourceView at_open;
  PcapngWriter pcap;
  bool failed = false;
  bool monitored = false;  // monitor mode was in force at some time of its window
  struct Tally {
    uint64_t packets = 0;
    std::map<std::string, uint64_t> reasons;
    std::map<std::pair<std::string, uint16_t>, uint64_t> ports;  // (proto, port) -> samples
  } verified, unverified;
};

namespace {

SampleTally tally(const std::map<std::string, uint64_t>& reasons,
                  const std::map<std::pair<std::string, uint16_t>, uint64_t>& ports, uint64_t packets) {
  SampleTally t;
  t.packets = packets;
  t.by_reason = reasons;
  t.top_ports.assign(ports.begin(), ports.end());
  std::sort(t.top_ports.begin(), t.top_ports.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  if (t.top_ports.size() > 10) t.top_ports.resize(10);
  return t;
}

SourceTotals minus(const SourceTotals& a, const SourceTotals& b) {
  auto d = [](uint64_t x, uint64_t y) { return x >= y ? x - y : 0; };
  return {d(a.passed, b.passed),           d(a.blocklisted, b.blocklisted),       d(a.ejected, b.ejected),
          d(a.port_denied, b.port_denied), d(a.over_rate, b.over_rate),           d(a.request_passed, b.request_passed),
          d(a.request_over_rate, b.request_over_rate), d(a.session_passed, b.session_passed),
          d(a.session_over_rate, b.session_over_rate)};
}

uint64_t dir_bytes(const fs::path& p) {
  uint64_t total = 0;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(p, ec); !ec && it != fs::recursive_directory_iterator(); it.increment(ec))
    if (it->is_regular_file(ec)) total += it->file_size(ec);
  return total;
}

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

void EvidenceRecorder::set_monitor(bool on) {
  monitor_ = on;
  if (on)
    for (auto& c : open_) c->monitored = true;
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
  c->monitored = monitor_;
  const std::string node = s.nodes.empty() ? "unknown" : s.nodes.front().node_id;
  c->summary.node_id = node;
  c->summary.reason = reason;
  c->summary.opened_unix = static_cast<double>(clock_(now_ns)) / 1e9;
  c->summary.open = true;
  std::string base = compact_utc(c->summary.opened_unix) + "-" + node.substr(0, 12) + "-" + reason;
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
    log_(false, "evidence case opened (" + reason + "): " + c->summary.dir + " for " + describe_source(s));
  }
  CaseSummary out = c->summary;
  open_.push_back(std::move(c));
  return out;
}

void EvidenceRecorder::sample(const SampleRecord& r) {
  for (auto& c : open_) {
    if (c->slot != r.slot || c->epoch != r.epoch) continue;
    // Unverified samples get at most a quarter of the case: forged packets cannot crowd
    // out the attributable ones.
    Case::Tally& t = r.verified ? c->verified : c->unverified;
    if (c->failed || t.packets >= (r.verified ? cfg_.max_samples : cfg_.max_samples / 4)) return;
    const Verdict v = static_cast<Verdict>(r.verdict);
    uint64_t ns = clock_(r.ns);
    if (!c->pcap.write(ns, r.data, r.caplen, r.orig_len, sample_comment(r.data, r.caplen, r.orig_len, v, r.verified))) {
      fail(*c, "writing " + c->summary.dir + "/sample.pcapng failed: " + std::strerror(errno));
      return;
    }
    c->summary.samples++;
    samples_written_++;
    t.packets++;
    t.reasons[std::string(verdict_name(v))]++;
    PacketMeta m;
    parse_captured_frame(r.data, r.caplen, r.orig_len, m);
    if (m.has_port) t.ports[{m.l4_proto == kProtoTcp ? "tcp" : "udp", m.dst_port}]++;
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

bool EvidenceRecorder::has_open_case(const std::string& node_id, const std::string& reason) const {
  for (const auto& c : open_)
    if (c->summary.node_id == node_id && c->summary.reason == reason) return true;
  return false;
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

  CaseFacts f;
  f.id = c.summary.id;
  f.reason = c.summary.reason;
  f.node_id = c.summary.node_id;
  f.version = version_;
  f.opened_unix = c.summary.opened_unix;
  f.closed_unix = c.summary.closed_unix;
  f.secs = std::max(1e-9, (now_ns > c.opened_ns ? now_ns - c.opened_ns : 0) / 1e9);
  f.at_open = c.at_open;
  auto now = dir.by_slot(c.slot);
  f.in_table_at_close = now && now->epoch == c.epoch;
  f.at_close = f.in_table_at_close ? *now : c.at_open;
  if (f.in_table_at_close) f.delta = minus(now->counters, c.at_open.counters);
  f.verified = tally(c.verified.reasons, c.verified.ports, c.verified.packets);
  f.unverified = tally(c.unverified.reasons, c.unverified.ports, c.unverified.packets);
  f.reporter = op_;
  f.scoring = scoring_;
  f.max_samples = cfg_.max_samples;
  f.snaplen = cfg_.snaplen;
  f.monitor = c.monitored;

  write_file(c, "report.json", json_text(case_report_json(f), 2) + "\n");
  write_file(c, "flip.md", case_flip_markdown(f));
  if (!c.failed)
    log_(false, "evidence case written: " + c.summary.dir + " (" + std::to_string(c.summary.samples) + " packets sampled)");
}

void EvidenceRecorder::write_file(Case& c, const std::string& name, const std::string& text) {
  std::ofstream out(c.summary.dir + "/" + name);
  out << text;
  if (!out.good()) fail(c, "writing " + c.summary.dir + "/" + name + " failed");
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
    // Graylist events first (their own ring: samples never crowd them out), then samples.
    n += w->events().drain([&](const SampleRecord& r) {
      if (r.kind != SampleRecord::kGraylistEnter) return;
      auto v = dir.by_slot(r.slot);
      if (!v || v->epoch != r.epoch) return;
      v->graylisted = true;  // as of the event (a later decay may already have undone it)
      v->score = r.score * dir.shards();  // the entering worker's share, scaled
      if (gray.enter(*v, r.ns) && rec.opens_on_graylist()) rec.open(*v, "graylist", r.ns);
    });
    n += w->samples().drain([&](const SampleRecord& r) { rec.sample(r); });
  }
  gray.refresh(dir);
  rec.tick(dir, dir.now());
  return n;
}

}  // namespace stakegate
