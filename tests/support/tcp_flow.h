#pragma once
// Both ends of one TCP connection through the gateway, as frames: the remote end is
// outside, the local end is a protected (cluster) address. Sequence numbers advance as
// each side sends, so the frames are what a real connection would show the gateway.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "packet_builder.h"

namespace stakegate::testing {

struct TcpFlow {
  IpAddr remote = IpAddr::from_v4(0xC6120101);  // 198.18.1.1
  IpAddr local = IpAddr::from_v4(0xC612FF01);   // 198.18.255.1
  uint16_t rport = 40000, lport = 3569;
  uint32_t remote_seq = 1000, local_seq = 500000;
  uint32_t frame_size = 64;
  uint8_t remote_ttl = 64;  // the TTL (hop limit) the remote's packets arrive with

  // Segments carry no padding in their IP length: a SYN is a SYN, and a data segment's
  // payload (enough to make a frame of `frame_size`) is real payload.
  FrameSpec from_remote(uint8_t flags) const {
    FrameSpec f;
    f.src = remote;
    f.dst = local;
    f.src_port = rport;
    f.dst_port = lport;
    f.tcp_flags = flags;
    f.seq = remote_seq;
    f.ack = local_seq;
    f.ttl = remote_ttl;
    f.frame_size = 0;
    return f;
  }
  FrameSpec from_local(uint8_t flags) const {
    FrameSpec f;
    f.src = local;
    f.dst = remote;
    f.src_port = lport;
    f.dst_port = rport;
    f.tcp_flags = flags;
    f.seq = local_seq;
    f.ack = remote_seq;
    f.frame_size = 0;
    return f;
  }
  // The remote dials in: its SYN (outside), the cluster's SYN-ACK (inside), its ACK (outside).
  std::vector<uint8_t> remote_syn() {
    FrameSpec f = from_remote(0x02);
    f.wscale = 7;
    remote_seq += 1;
    return build_frame(f);
  }
  std::vector<uint8_t> local_syn_ack(int wscale = 7) {
    FrameSpec f = from_local(0x12);
    f.wscale = wscale;
    local_seq += 1;
    return build_frame(f);
  }
  // The cluster dials out: its SYN (inside), the remote's SYN-ACK (outside).
  std::vector<uint8_t> local_syn(int wscale = 7) {
    FrameSpec f = from_local(0x02);
    f.wscale = wscale;
    f.ack = 0;
    local_seq += 1;
    return build_frame(f);
  }
  std::vector<uint8_t> remote_syn_ack(int wscale = 7) {
    FrameSpec f = from_remote(0x12);
    f.wscale = wscale;
    remote_seq += 1;
    return build_frame(f);
  }
  // A segment from either end (ACK set), carrying the frame's padding as payload.
  std::vector<uint8_t> remote_data(uint8_t extra_flags = 0) {
    FrameSpec f = from_remote(static_cast<uint8_t>(0x10 | extra_flags));
    f.payload.assign(payload_bytes(), 0x5a);
    remote_seq += static_cast<uint32_t>(f.payload.size()) + ((extra_flags & 0x01) ? 1 : 0);
    return build_frame(f);
  }
  std::vector<uint8_t> local_data(uint8_t extra_flags = 0) {
    FrameSpec f = from_local(static_cast<uint8_t>(0x10 | extra_flags));
    f.payload.assign(payload_bytes(), 0xa5);
    local_seq += static_cast<uint32_t>(f.payload.size()) + ((extra_flags & 0x01) ? 1 : 0);
    return build_frame(f);
  }
  // What a blind spoofer sends: the right 4-tuple, guessed sequence numbers.
  std::vector<uint8_t> forged(uint32_t seq, uint32_t ack, uint8_t flags = 0x10) const {
    FrameSpec f = from_remote(flags);
    f.seq = seq;
    f.ack = ack;
    return build_frame(f);
  }

 private:
  size_t payload_bytes() const {
    const size_t headers = 14 + (remote.is_v4 ? 20 : 40) + 20;
    return frame_size > headers ? frame_size - headers : 0;
  }
};

// An ICMP error from `router` about a packet the cluster sent (`quoted`, a whole frame):
// the quote is its IP header and the first 8 bytes after it, as IPv4 routers send, or
// (`quote_bytes`) that many bytes of the packet, at most all of it (ICMPv6 quotes as much
// as fits in 1,280 bytes).
inline std::vector<uint8_t> icmp_error_about(const std::vector<uint8_t>& quoted, const IpAddr& router, uint8_t type,
                                             uint8_t code, size_t quote_bytes = 0) {
  const bool v4 = router.is_v4;
  FrameSpec f;
  f.src = router;
  // The error goes back to the quoted packet's source: the cluster address.
  if (v4) {
    f.dst = IpAddr::from_v4(uint32_t{quoted[26]} << 24 | uint32_t{quoted[27]} << 16 | uint32_t{quoted[28]} << 8 | quoted[29]);
  } else {
    Ip6 a;
    std::memcpy(a.bytes.data(), quoted.data() + 22, 16);
    f.dst = IpAddr::from_v6(a);
  }
  f.proto = v4 ? 1 : 58;
  f.icmp_type = type;
  f.icmp_code = code;
  const size_t ihl = v4 ? (quoted[14] & 0x0f) * 4u : 40;
  const size_t n = quote_bytes ? std::min(quote_bytes, quoted.size() - 14) : ihl + 8;
  f.payload.assign(quoted.begin() + 14, quoted.begin() + static_cast<long>(14 + n));
  f.frame_size = 0;
  return build_frame(f);
}

}  // namespace stakegate::testing
