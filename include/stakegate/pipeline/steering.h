#pragma once
// Which worker a remote address belongs to, computed as the NIC computes it: with several
// workers the ports' RSS hashes one address (the outside's source, the inside's
// destination) with one Toeplitz key into one redirection table whose entry i is queue
// i % queues (src/app/port_plan.cc), so a remote's packets in both directions, and its
// sessions, are on one worker. A packet that reaches another worker and needs those
// sessions (an ICMP error from a router, about the cluster's packet to that remote) is
// handed to the owner (Worker::kHandoff).
#include <array>
#include <cstddef>
#include <cstdint>

#include "stakegate/base/address.h"
#include "stakegate/pipeline/sessions.h"

namespace stakegate {

// The 32-bit Toeplitz hash of `len` bytes of `data` under `key` (at least len + 4 bytes
// long), as NICs compute RSS.
inline uint32_t toeplitz_hash(const uint8_t* key, const uint8_t* data, size_t len) noexcept {
  uint32_t h = 0;
  // The key's 32-bit window at bit i of the input, slid one bit per input bit.
  uint32_t window = static_cast<uint32_t>(key[0]) << 24 | static_cast<uint32_t>(key[1]) << 16 |
                    static_cast<uint32_t>(key[2]) << 8 | key[3];
  for (size_t i = 0; i < len; ++i) {
    const uint8_t next = key[i + 4];
    for (int b = 7; b >= 0; --b) {
      if (data[i] & (1u << b)) h ^= window;
      window = window << 1 | ((next >> b) & 1u);
    }
  }
  return h;
}

struct Steering {
  static constexpr size_t kKeySize = 40;
  uint16_t self = 0;       // this worker's queue
  uint16_t workers = 1;    // 1: no steering, nothing is ever handed off
  uint32_t reta_size = 0;  // the inside port's redirection table (sessions are made where its packets land)
  bool prefix64 = false;   // the ports hash IPv6 addresses on their first 64 bits (RTE_ETH_RSS_L3_PRE64)
  std::array<uint8_t, kKeySize> key{};

  bool on() const noexcept { return workers > 1 && reta_size > 0; }
  // The queue (worker) of a remote address: IPv4 in its mapped form hashes its 4 bytes, as
  // the NIC does for an IPv4 header; IPv6 its 16, or its /64's 8. (Toeplitz is linear in
  // the input bits: the 8 bytes hash as the 16 with the last 8 zeroed, however a NIC masks.)
  uint16_t owner(const Ip6& remote) const noexcept {
    const bool v4 = is_mapped_v4(remote);
    const uint32_t h = toeplitz_hash(key.data(), remote.bytes.data() + (v4 ? 12 : 0), v4 ? 4 : prefix64 ? 8 : 16);
    return static_cast<uint16_t>((h % reta_size) % workers);
  }
};

}  // namespace stakegate
