#include "stakegate/report/pcapng_writer.h"

namespace stakegate {

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

}  // namespace stakegate
