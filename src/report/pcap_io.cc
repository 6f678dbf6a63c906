#include "stakegate/report/pcap_io.h"

#include <pcap/pcap.h>

#include <algorithm>
#include <stdexcept>

namespace stakegate {

PcapReader::PcapReader(const std::string& path) : path_(path) {
  char err[PCAP_ERRBUF_SIZE] = {};
  pcap_ = pcap_open_offline_with_tstamp_precision(path.c_str(), PCAP_TSTAMP_PRECISION_NANO, err);
  if (!pcap_) throw std::runtime_error(path + ": cannot read capture: " + err);
  if (int link = pcap_datalink(pcap_); link != DLT_EN10MB) {
    pcap_close(pcap_);
    throw std::runtime_error(path + ": not an Ethernet capture (link type " + std::to_string(link) + ")");
  }
}

PcapReader::~PcapReader() {
  if (pcap_) pcap_close(pcap_);
}

bool PcapReader::next(uint64_t& ts_ns, const uint8_t*& data, uint32_t& len, uint32_t* wire_len) {
  pcap_pkthdr* h = nullptr;
  const u_char* d = nullptr;
  int rc = pcap_next_ex(pcap_, &h, &d);
  if (rc == PCAP_ERROR_BREAK || !damage_.empty()) return false;
  if (rc != 1) {
    damage_ = path_ + ": cut short or damaged after frame " + std::to_string(frames_) + " (" + pcap_geterr(pcap_) +
              "): the " + std::to_string(frames_) + " frames before are judged, the rest of the file is ignored";
    return false;
  }
  ++frames_;
  ts_ns = static_cast<uint64_t>(h->ts.tv_sec) * 1'000'000'000ull + static_cast<uint64_t>(h->ts.tv_usec);
  data = d;
  len = h->caplen;
  if (wire_len) *wire_len = std::max(h->caplen, h->len);
  return true;
}

PcapWriter::PcapWriter(const std::string& path) {
  pcap_ = pcap_open_dead_with_tstamp_precision(DLT_EN10MB, 65535, PCAP_TSTAMP_PRECISION_NANO);
  dumper_ = pcap_dump_open(pcap_, path.c_str());
  if (!dumper_) {
    std::string err = pcap_geterr(pcap_);
    pcap_close(pcap_);
    throw std::runtime_error(path + ": cannot write capture: " + err);
  }
}

PcapWriter::~PcapWriter() {
  if (dumper_) pcap_dump_close(dumper_);
  if (pcap_) pcap_close(pcap_);
}

void PcapWriter::write(uint64_t ts_ns, const uint8_t* data, uint32_t len, uint32_t wire_len) {
  pcap_pkthdr h{};
  h.ts.tv_sec = static_cast<time_t>(ts_ns / 1'000'000'000ull);
  h.ts.tv_usec = static_cast<suseconds_t>(ts_ns % 1'000'000'000ull);  // nanoseconds: the file is nano precision
  h.caplen = len;
  h.len = std::max(len, wire_len);
  pcap_dump(reinterpret_cast<u_char*>(dumper_), &h, data);
  ++written_;
}

}  // namespace stakegate
