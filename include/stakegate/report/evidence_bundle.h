#pragma once
// The two documents of an evidence bundle, from the facts a closing case gathered:
// report.json (machine-readable) and flip.md (a draft of the FLIP GOV-4 report).
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "stakegate/base/verdict.h"
#include "stakegate/config/config.h"
#include "stakegate/report/source_directory.h"

namespace stakegate {

// What a sample is, for the comment of its pcapng block: the drop reason, whether it was
// on a verified connection, 5-tuple, TCP flags, TTL / hop limit and source MAC (from the
// frame's own bytes). Readable in Wireshark as the packet comment (frame.comment).
std::string sample_comment(const uint8_t* frame, uint32_t caplen, uint32_t orig_len, Verdict v, bool verified);

// How the report attributes traffic to the node, in words (report.json and flip.md).
extern const char* const kAttributionMethod;
extern const char* const kUnverifiedCaveat;

struct SampleTally {
  uint64_t packets = 0;
  std::map<std::string, uint64_t> by_reason;
  std::vector<std::pair<std::pair<std::string, uint16_t>, uint64_t>> top_ports;  // ((proto, port), samples), most first
};

struct CaseFacts {
  std::string id, reason, node_id, version;
  double opened_unix = 0, closed_unix = 0, secs = 0;
  SourceView at_open;       // the errant source as the case opened
  SourceView at_close;      // as it closed (at_open again if it left the table)
  bool in_table_at_close = false;
  SourceTotals delta;       // its counters over the window
  SampleTally verified, unverified;  // the samples, by whether they were on a verified connection
  OperatorConfig reporter;
  ScoringConfig scoring;
  unsigned max_samples = 0, snaplen = 0;
  bool monitor = false;     // the gateway was in monitor mode for some of the window: drops were counted, not made
};

nlohmann::json case_report_json(const CaseFacts& f);
std::string case_flip_markdown(const CaseFacts& f);

}  // namespace stakegate
