#pragma once
// Open-addressing hash maps from a source address to a value, built once by the control
// plane and then only read by workers. Linear probing at a load factor <= 0.5 keeps a
// lookup to one cache line in the common case.
#include <bit>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "stakegate/base/address.h"
#include "stakegate/base/huge_alloc.h"
#include "stakegate/base/prefetch.h"

namespace stakegate {

inline uint64_t mix64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  x ^= x >> 33;
  return x;
}
// The identity table's keys are the table's own addresses, not chosen by senders, so a
// single multiply (Fibonacci hashing) spreads them; the index takes the high bits.
inline uint64_t hash_v4(uint32_t a) { return (uint64_t{a} + 1) * 0x9e3779b97f4a7c15ull; }
inline uint64_t hash_v6(const Ip6& a) {
  uint64_t hi, lo;
  std::memcpy(&hi, a.bytes.data(), 8);
  std::memcpy(&lo, a.bytes.data() + 8, 8);
  return (hi * 0x9e3779b97f4a7c15ull) ^ (lo * 0xc2b2ae3d27d4eb4full);
}

template <typename Key, uint64_t (*Hash)(const Key&)>
class FlatAddrMap {
 public:
  static constexpr uint32_t kEmpty = UINT32_MAX;

  explicit FlatAddrMap(size_t expected = 0) { reserve(expected); }

  void reserve(size_t expected) {
    size_t cap = std::bit_ceil(std::max<size_t>(16, expected * 2));
    entries_.assign(cap, Entry{Key{}, kEmpty});
    mask_ = cap - 1;
    shift_ = static_cast<unsigned>(64 - std::countr_zero(cap));
    size_ = 0;
  }

  // Inserts or overwrites. `value` must not be kEmpty.
  void insert(const Key& k, uint32_t value) {
    if ((size_ + 1) * 2 > entries_.size()) grow();
    for (size_t i = index(k);; i = (i + 1) & mask_) {
      Entry& e = entries_[i];
      if (e.value == kEmpty) { e = Entry{k, value}; ++size_; return; }
      if (e.key == k) { e.value = value; return; }
    }
  }

  uint32_t find(const Key& k) const {
    for (size_t i = index(k);; i = (i + 1) & mask_) {
      const Entry& e = entries_[i];
      if (e.value == kEmpty) return kEmpty;
      if (e.key == k) return e.value;
    }
  }

  void prefetch(const Key& k) const { prefetch_line(&entries_[index(k)]); }
  size_t size() const { return size_; }
  size_t memory_bytes() const { return entries_.size() * sizeof(Entry); }

 private:
  struct Entry {
    Key key;
    uint32_t value;
  };
  void grow() {
    HugeVector<Entry> old;
    old.swap(entries_);
    reserve(old.size());  // doubles: reserve(n) sizes for 2n
    for (const Entry& e : old)
      if (e.value != kEmpty) insert(e.key, e.value);
  }
  HugeVector<Entry> entries_;
  size_t index(const Key& k) const { return static_cast<size_t>(Hash(k) >> shift_); }
  size_t mask_ = 0;
  unsigned shift_ = 64;
  size_t size_ = 0;
};

inline uint64_t hash_v4_ref(const uint32_t& a) { return hash_v4(a); }
inline uint64_t hash_v6_ref(const Ip6& a) { return hash_v6(a); }
using V4Map = FlatAddrMap<uint32_t, hash_v4_ref>;
using V6Map = FlatAddrMap<Ip6, hash_v6_ref>;

}  // namespace stakegate
