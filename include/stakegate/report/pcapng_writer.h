#pragma once
// A pcapng file for evidence samples: Section Header, one Ethernet interface with
// nanosecond timestamps, and Enhanced Packet Blocks carrying a comment each. Written by
// the project rather than rte_pcapng (experimental in 22.11, and it needs the EAL and
// mempool mbufs, which `replay` does not have); tests read the files with tshark.
#include <cstdint>
#include <cstdio>
#include <string>

namespace stakegate {

class PcapngWriter {
 public:
  // Returns false (with errno set) when the file cannot be created.
  bool open(const std::string& path, uint32_t snaplen);
  bool write(uint64_t unix_ns, const uint8_t* data, uint32_t caplen, uint32_t orig_len, const std::string& comment);
  bool close();  // false when a buffered write failed
  ~PcapngWriter() { close(); }
  uint64_t bytes() const { return bytes_; }

 private:
  std::FILE* f_ = nullptr;
  uint64_t bytes_ = 0;
  bool ok_ = true;
};

}  // namespace stakegate
