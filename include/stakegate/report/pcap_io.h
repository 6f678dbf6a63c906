#pragma once
// Classic pcap files through libpcap: the capture replay reads, the passed packets it
// writes, and the scenario generator's output.
#include <cstdint>
#include <string>
#include <vector>

typedef struct pcap pcap_t;
typedef struct pcap_dumper pcap_dumper_t;

namespace stakegate {

// What the capture at `path` holds, for a reader that wants Ethernet frames: `problem` is
// empty when it does, else a sentence naming the file and why (it cannot be read, or its
// link type, when `readable`).
struct PcapCheck {
  bool readable = false;
  std::string problem;
};
PcapCheck check_pcap_is_ethernet(const std::string& path);

class PcapReader {
 public:
  // Ethernet captures, and the Linux captures tcpdump writes without one: cooked
  // (`tcpdump -i any`: LINUX_SLL, LINUX_SLL2) and raw IP (tun devices). Those frames are
  // read as Ethernet frames with the same EtherType (and VLAN tag, where the capture kept
  // it), the sender's link address as source MAC when it has one, and a zero destination.
  explicit PcapReader(const std::string& path);  // throws std::runtime_error naming the file
  ~PcapReader();
  PcapReader(const PcapReader&) = delete;
  PcapReader& operator=(const PcapReader&) = delete;
  // Next frame; false at the end. `data` stays valid until the next call. `len` bytes
  // were captured; `wire_len`, when asked for, is the frame's length on the wire (more
  // than `len` in a capture taken with a snap length).
  // A record that cannot be read (a capture cut short in the middle of a frame, as when
  // tcpdump is killed, or a damaged record) ends the capture there: next() returns false
  // and damage() says what and where; the frames before it stand.
  bool next(uint64_t& ts_ns, const uint8_t*& data, uint32_t& len, uint32_t* wire_len = nullptr);
  const std::string& damage() const { return damage_; }

 private:
  // The frame `d` (`caplen` bytes of `wire`) of a capture without Ethernet headers, as an
  // Ethernet frame in frame_.
  void to_ethernet(const uint8_t* d, uint32_t caplen, uint32_t& len, uint32_t& wire);

  pcap_t* pcap_ = nullptr;
  int link_ = 0;
  std::string path_;
  std::string damage_;
  uint64_t frames_ = 0;  // read so far, for damage()
  std::vector<uint8_t> frame_;  // the converted frame of a capture without Ethernet headers
};

class PcapWriter {
 public:
  // Nanosecond-resolution classic pcap (the magic tcpdump and Wireshark read).
  explicit PcapWriter(const std::string& path);
  ~PcapWriter();
  PcapWriter(const PcapWriter&) = delete;
  PcapWriter& operator=(const PcapWriter&) = delete;
  // `len` bytes of a frame of `wire_len` (0: len) on the wire.
  void write(uint64_t ts_ns, const uint8_t* data, uint32_t len, uint32_t wire_len = 0);
  uint64_t written() const { return written_; }

 private:
  pcap_t* pcap_ = nullptr;
  pcap_dumper_t* dumper_ = nullptr;
  uint64_t written_ = 0;
};

}  // namespace stakegate
