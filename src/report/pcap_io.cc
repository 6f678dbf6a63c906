#include "stakegate/report/pcap_io.h"

#include <pcap/pcap.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>

namespace stakegate {
namespace {

// "LINUX_SLL (Linux cooked v1), link type 113", as tcpdump -D and Wireshark name them.
std::string link_name(int link) {
  const char* name = pcap_datalink_val_to_name(link);
  const char* what = pcap_datalink_val_to_description(link);
  std::string s = name ? name : "unknown";
  if (what) s += std::string(" (") + what + ")";
  return s + ", link type " + std::to_string(link);
}

bool cooked(int link) { return link == DLT_LINUX_SLL || link == DLT_LINUX_SLL2; }
bool raw_ip(int link) { return link == DLT_RAW || link == DLT_IPV4 || link == DLT_IPV6; }

}  // namespace

PcapCheck check_pcap_is_ethernet(const std::string& path) {
  char err[PCAP_ERRBUF_SIZE] = {};
  pcap_t* p = pcap_open_offline(path.c_str(), err);
  if (!p) return {false, path + ": cannot read capture: " + err};
  const int link = pcap_datalink(p);
  pcap_close(p);
  return {true, link == DLT_EN10MB ? std::string() : path + ": not an Ethernet capture: " + link_name(link)};
}

PcapReader::PcapReader(const std::string& path) : path_(path) {
  char err[PCAP_ERRBUF_SIZE] = {};
  pcap_ = pcap_open_offline_with_tstamp_precision(path.c_str(), PCAP_TSTAMP_PRECISION_NANO, err);
  if (!pcap_) throw std::runtime_error(path + ": cannot read capture: " + err);
  link_ = pcap_datalink(pcap_);
  if (link_ != DLT_EN10MB && !cooked(link_) && !raw_ip(link_)) {
    pcap_close(pcap_);
    pcap_ = nullptr;
    throw std::runtime_error(path + ": a " + link_name(link_) +
                             " capture: replay reads Ethernet captures (tcpdump -i IFACE on an Ethernet "
                             "interface), Linux cooked ones (tcpdump -i any) and raw IP ones");
  }
  if (link_ != DLT_EN10MB) frame_.resize(65536);
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
  uint32_t wire = std::max(h->caplen, h->len);
  if (link_ != DLT_EN10MB) {
    to_ethernet(d, h->caplen, len, wire);
    data = frame_.data();
  }
  if (wire_len) *wire_len = wire;
  return true;
}

void PcapReader::to_ethernet(const uint8_t* d, uint32_t caplen, uint32_t& len, uint32_t& wire) {
  uint8_t eth[14] = {};  // destination unknown: zero
  uint32_t hdr = 0;
  if (cooked(link_)) {
    // LINUX_SLL: packet type, ARPHRD type, address length, 8 address bytes, protocol.
    // LINUX_SLL2: protocol, reserved, interface index, ARPHRD type, packet type, address
    // length, 8 address bytes. The protocol is the EtherType (libpcap puts a VLAN tag it
    // kept after the header, as on Ethernet).
    const bool v2 = link_ == DLT_LINUX_SLL2;
    hdr = v2 ? 20 : 16;
    if (caplen >= hdr) {
      const uint32_t halen = v2 ? d[11] : (uint32_t{d[4]} << 8 | d[5]);
      if (halen == 6) std::memcpy(eth + 6, d + (v2 ? 12 : 6), 6);
      std::memcpy(eth + 12, d + (v2 ? 0 : 14), 2);
    }
  } else {
    // Raw IP: the version says which.
    const bool v6 = link_ == DLT_IPV6 || (link_ == DLT_RAW && caplen > 0 && (d[0] >> 4) == 6);
    eth[12] = v6 ? 0x86 : 0x08;
    eth[13] = v6 ? 0xdd : 0x00;
  }
  if (caplen < hdr) {  // the capture's own header cut: nothing of a frame (judged malformed)
    len = wire = 0;
    return;
  }
  len = caplen - hdr + 14;
  wire = wire - hdr + 14;
  if (frame_.size() < len) frame_.resize(len);
  std::memcpy(frame_.data(), eth, 14);
  std::memcpy(frame_.data() + 14, d + hdr, caplen - hdr);
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
