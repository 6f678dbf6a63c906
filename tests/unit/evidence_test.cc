// Evidence bundles off the worker: case folders and their files, the pcapng layout,
// retention by count and by size, and failures that are reported instead of thrown.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "packet_builder.h"
#include "stakegate/report/evidence_bundle.h"
#include "stakegate/report/evidence_recorder.h"
#include "test_util.h"

using namespace stakegate;
namespace fs = std::filesystem;

namespace {

SourceView source(uint32_t slot, const std::string& node_id) {
  SourceView v;
  v.slot = slot;
  v.epoch = 1;
  NodeIdentity n;
  n.node_id = node_id;
  n.role = Role::kExecution;
  n.address = "198.18.4." + std::to_string(slot) + ":3569";
  n.network_key = "ab" + std::string(126, '0');
  n.staking_key = "cd" + std::string(190, '0');
  v.nodes = {n};
  v.addrs = {"198.18.4." + std::to_string(slot)};
  v.rate_pps = 100;
  v.burst = 10;
  return v;
}

SampleRecord sample(uint32_t slot, uint64_t ns, bool verified = true, uint16_t len = 60) {
  SampleRecord r{};
  r.kind = SampleRecord::kSample;
  r.verified = verified;
  r.verdict = static_cast<uint8_t>(Verdict::kOverRate);
  r.slot = slot;
  r.epoch = 1;
  r.caplen = len;
  r.orig_len = len + 40;
  r.ns = ns;
  for (uint16_t i = 0; i < len; ++i) r.data[i] = static_cast<uint8_t>(i);
  return r;
}

struct Recorder {
  explicit Recorder(EvidenceConfig cfg)
      : rec(cfg, {}, {}, "test", [](uint64_t ns) { return 1'800'000'000'000'000'000ull + ns; },
            [this](bool warning, const std::string& m) {
              if (warning) warnings.push_back(m);
            }) {}
  std::vector<std::string> warnings;
  EvidenceRecorder rec;
  SourceDirectory dir;  // empty: cases close with the view they opened with
};

uint32_t u32(const std::string& b, size_t off) {
  uint32_t v;
  std::memcpy(&v, b.data() + off, 4);
  return v;
}

}  // namespace

TEST(Evidence, ACaseWritesItsThreeFilesWhenItsWindowEnds) {
  stakegate::testing::TempDir tmp;
  EvidenceConfig cfg;
  cfg.dir = tmp.path() + "/ev";
  cfg.window_s = 2;
  cfg.max_samples = 4;
  Recorder r(cfg);
  auto c = r.rec.open(source(5, std::string(64, 'e')), "operator", 1'000'000'000);
  EXPECT_TRUE(c.open);
  EXPECT_EQ(c.id.substr(16), "-eeeeeeeeeeee-operator");
  // Unverified samples first: they get a quarter of max_samples, never the verified ones' room.
  for (int i = 0; i < 3; ++i) r.rec.sample(sample(5, 1'100'000'000 + i, false));  // two over a quarter
  for (int i = 0; i < 6; ++i) r.rec.sample(sample(5, 1'100'000'010 + i));         // two over max_samples
  r.rec.sample(sample(6, 1'200'000'000));                                         // another source: ignored
  r.rec.tick(r.dir, 2'900'000'000);
  ASSERT_TRUE(r.rec.cases().at(0).open);  // the window has not ended
  r.rec.tick(r.dir, 3'000'000'000);
  auto done = r.rec.cases().at(0);
  EXPECT_FALSE(done.open);
  EXPECT_EQ(done.samples, 5u);
  EXPECT_TRUE(done.error.empty());
  std::set<std::string> files;
  for (auto& e : fs::directory_iterator(done.dir)) files.insert(e.path().filename().string());
  EXPECT_EQ(files, (std::set<std::string>{"flip.md", "report.json", "sample.pcapng"}));
  auto report = nlohmann::json::parse(std::ifstream(done.dir + "/report.json"));
  EXPECT_EQ(report["errant"]["nodes"][0]["node_id"], std::string(64, 'e'));
  EXPECT_DOUBLE_EQ(report["window"]["duration_s"].get<double>(), 2.0);
  EXPECT_EQ(report["sample"]["packets"], 5);
  EXPECT_EQ(report["sample"]["verified"], 4);
  EXPECT_EQ(report["sample"]["unverified"], 1);

  // pcapng: SHB, IDB (Ethernet, nanoseconds), then one EPB per sample with its bytes.
  std::ifstream in(done.dir + "/sample.pcapng", std::ios::binary);
  std::string b((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_GE(b.size(), 28u);
  EXPECT_EQ(u32(b, 0), 0x0A0D0D0Au);
  EXPECT_EQ(u32(b, 8), 0x1A2B3C4Du);
  size_t off = u32(b, 4);
  EXPECT_EQ(u32(b, off), 1u);                   // IDB
  EXPECT_EQ(u32(b, off + 8) & 0xffff, 1u);      // LINKTYPE_ETHERNET
  off += u32(b, off + 4);
  int epbs = 0;
  const uint64_t want_ts[] = {0, 10, 11, 12, 13};
  while (off < b.size()) {
    ASSERT_EQ(u32(b, off), 6u);
    ASSERT_LT(epbs, 5);
    uint64_t ts = (uint64_t{u32(b, off + 12)} << 32) | u32(b, off + 16);
    EXPECT_EQ(ts, 1'800'000'001'100'000'000ull + want_ts[epbs]);  // Unix nanoseconds of the sample, exactly
    EXPECT_EQ(u32(b, off + 20), 60u);            // captured
    EXPECT_EQ(u32(b, off + 24), 100u);           // original length
    EXPECT_EQ(static_cast<uint8_t>(b[off + 28 + 59]), 59);
    EXPECT_EQ(u32(b, off + u32(b, off + 4) - 4), u32(b, off + 4));  // trailing length
    off += u32(b, off + 4);
    ++epbs;
  }
  EXPECT_EQ(epbs, 5);
}

// A case whose window saw monitor mode (packets counted as dropped, forwarded all the same)
// says so in report.json and flip.md; one that did not says the gateway enforced.
TEST(Evidence, ACaseSaysWhetherTheGatewayEnforcedDuringItsWindow) {
  stakegate::testing::TempDir tmp;
  EvidenceConfig cfg;
  cfg.dir = tmp.path() + "/ev";
  cfg.window_s = 1;
  Recorder r(cfg);
  r.rec.open(source(5, std::string(64, 'e')), "operator", 1'000'000'000);
  r.rec.set_monitor(true);  // switched while the first case is open
  r.rec.open(source(6, std::string(64, 'f')), "operator", 1'500'000'000);
  r.rec.set_monitor(false);
  r.rec.open(source(7, std::string(64, 'a')), "operator", 1'600'000'000);
  r.rec.tick(r.dir, 3'000'000'000);
  std::map<std::string, std::string> mode, flip;
  for (const auto& c : r.rec.cases()) {
    ASSERT_FALSE(c.open);
    mode[c.node_id.substr(0, 1)] = nlohmann::json::parse(std::ifstream(c.dir + "/report.json"))["mode"];
    std::ifstream md(c.dir + "/flip.md");
    flip[c.node_id.substr(0, 1)] = std::string((std::istreambuf_iterator<char>(md)), std::istreambuf_iterator<char>());
  }
  EXPECT_EQ(mode, (std::map<std::string, std::string>{{"e", "monitor"}, {"f", "monitor"}, {"a", "enforce"}}));
  EXPECT_NE(flip["e"].find("monitor mode for some or all of this window"), std::string::npos);
  EXPECT_NE(flip["f"].find("monitor mode for some or all of this window"), std::string::npos);
  EXPECT_EQ(flip["a"].find("monitor mode"), std::string::npos);
}

TEST(Evidence, RetentionKeepsTheNewestCasesByCountAndBySize) {
  stakegate::testing::TempDir tmp;
  EvidenceConfig cfg;
  cfg.dir = tmp.path() + "/ev";
  cfg.window_s = 1;
  cfg.retention_cases = 3;
  Recorder r(cfg);
  fs::create_directories(cfg.dir + "/not-a-case");  // never touched by retention
  for (uint32_t i = 0; i < 5; ++i) {
    uint64_t t = (i + 1) * 10'000'000'000ull;  // 10 s apart: distinct folder names
    r.rec.open(source(i, std::string(63, 'a') + char('0' + i)), "graylist", t);
    r.rec.tick(r.dir, t + 2'000'000'000);
  }
  std::vector<std::string> left;
  for (auto& e : fs::directory_iterator(cfg.dir)) left.push_back(e.path().filename().string());
  std::sort(left.begin(), left.end());
  ASSERT_EQ(left.size(), 4u);
  EXPECT_EQ(left.back(), "not-a-case");
  EXPECT_NE(left[0].find("-aaaaaaaaaaaa-graylist"), std::string::npos);
  // The three newest (the names sort by time).
  EXPECT_LT(left[0], left[1]);

  // By size: a 1-byte budget keeps only the case being opened.
  cfg.retention_cases = 100;
  cfg.retention_bytes = 1;
  r.rec.reconfigure(cfg, {}, {});
  r.rec.open(source(9, std::string(64, 'f')), "graylist", 100'000'000'000ull);
  size_t cases = 0;
  for (auto& e : fs::directory_iterator(cfg.dir)) cases += e.path().filename().string() != "not-a-case";
  EXPECT_EQ(cases, 1u);
}

TEST(Evidence, AnUnwritableFolderIsReportedNotThrown) {
  stakegate::testing::TempDir tmp;
  std::ofstream(tmp.path() + "/file") << "x";
  EvidenceConfig cfg;
  cfg.dir = tmp.path() + "/file/ev";
  Recorder r(cfg);
  auto c = r.rec.open(source(1, std::string(64, 'b')), "graylist", 0);
  EXPECT_NE(c.error.find("cannot create"), std::string::npos);
  r.rec.sample(sample(1, 1));  // ignored, no crash
  r.rec.tick(r.dir, 0, true);
  EXPECT_EQ(r.rec.errors(), 1u);
  ASSERT_EQ(r.warnings.size(), 1u);
  EXPECT_NE(r.warnings[0].find("the data path is not affected"), std::string::npos);
}

// Text that is not UTF-8 in a case (config and identity files are checked where they are
// read; this is the gap behind those checks) still gives a report.json, with U+FFFD in its
// place: nlohmann::json throws on it, and on the control thread that ended the gateway.
TEST(Evidence, TextThatIsNotUtf8IsReplacedNotThrown) {
  stakegate::testing::TempDir tmp;
  EvidenceConfig cfg;
  cfg.dir = tmp.path() + "/ev";
  cfg.window_s = 1;
  OperatorConfig op;
  op.name = "Op\xe9rateur";
  std::vector<std::string> warnings;
  EvidenceRecorder rec(cfg, op, {}, "test", [](uint64_t ns) { return ns; },
                       [&](bool warning, const std::string& m) {
                         if (warning) warnings.push_back(m);
                       });
  SourceView s = source(3, std::string(64, 'c'));
  s.nodes[0].address = "n\xff.example:3569";
  rec.open(s, "operator", 1'000'000'000);
  rec.sample(sample(3, 1'100'000'000));
  SourceDirectory dir;
  ASSERT_NO_THROW(rec.tick(dir, 2'000'000'000));
  auto done = rec.cases().at(0);
  EXPECT_FALSE(done.open);
  EXPECT_TRUE(done.error.empty()) << done.error;
  EXPECT_TRUE(warnings.empty());
  auto report = nlohmann::json::parse(std::ifstream(done.dir + "/report.json"));
  EXPECT_EQ(report["errant"]["nodes"][0]["address"], "n\xef\xbf\xbd.example:3569");
  EXPECT_TRUE(fs::exists(done.dir + "/flip.md"));
  EXPECT_NE(nlohmann::json(report).dump().find("Op\xef\xbf\xbdrateur"), std::string::npos);
}

// Each sample's pcapng comment says what the packet is and whether it was attributable.
TEST(Evidence, SampleCommentsCarryTupleFlagsTtlMacAndAttribution) {
  using stakegate::testing::FrameSpec;
  FrameSpec tcp;
  tcp.src = *parse_ip("198.18.3.1");
  tcp.dst = *parse_ip("198.18.255.1");
  tcp.tcp_flags = 0x18;  // PSH ACK
  tcp.ttl = 57;
  auto f = stakegate::testing::build_frame(tcp);
  EXPECT_EQ(sample_comment(f.data(), static_cast<uint32_t>(f.size()), static_cast<uint32_t>(f.size()), Verdict::kOverRate, true),
            "stakegate: dropped over_rate; verified connection; tcp 198.18.3.1:40000 > 198.18.255.1:3569 [ACK PSH]; "
            "ttl 57; src mac 02:00:00:00:00:01");
  FrameSpec udp6;
  udp6.src = *parse_ip("2001:2::7");
  udp6.dst = *parse_ip("2001:2:ff::1");
  udp6.proto = 17;
  udp6.src_port = 53;
  udp6.ttl = 255;
  auto g = stakegate::testing::build_frame(udp6);
  EXPECT_EQ(sample_comment(g.data(), static_cast<uint32_t>(g.size()), static_cast<uint32_t>(g.size()),
                           Verdict::kRequestOverRate, false),
            "stakegate: dropped request_over_rate; unverified (the source address may be forged); "
            "udp [2001:2::7]:53 > [2001:2:ff::1]:3569; hop limit 255; src mac 02:00:00:00:00:01");
}
