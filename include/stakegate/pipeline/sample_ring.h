#pragma once
// A single-producer single-consumer ring that carries evidence off a worker: copies of
// dropped packets of graylisted (or operator-watched) sources, and graylist entries and
// exits. The worker pushes without blocking, allocating or calling the kernel; when the
// ring is full the record is counted as lost. A non-worker thread drains it.
#include <atomic>
#include <cstdint>
#include <cstring>
#include <vector>

namespace stakegate {

inline constexpr unsigned kMaxSnap = 256;

struct SampleRecord {
  enum Kind : uint8_t { kSample = 0, kGraylistEnter = 1, kGraylistExit = 2 };
  uint8_t kind = kSample;
  uint8_t verdict = 0;   // the drop reason of a sample
  uint8_t verified = 0;  // 1: the packet was on a verified connection (attributable to the node)
  uint16_t caplen = 0;   // bytes in data
  uint32_t slot = 0;
  uint32_t epoch = 0;    // the slot's epoch: a record of a slot given to another source since is stale
  uint32_t orig_len = 0;
  uint64_t ns = 0;       // data-path clock
  double score = 0;      // this worker's score of the source after the event
  uint8_t data[kMaxSnap];
};

class SampleRing {
 public:
  explicit SampleRing(size_t capacity_pow2 = 1024) : buf_(capacity_pow2), mask_(capacity_pow2 - 1) {}

  // Producer (the worker). Returns a record to fill, or nullptr when full (counted lost).
  SampleRecord* claim() noexcept {
    uint64_t h = head_.load(std::memory_order_relaxed);
    if (h - tail_.load(std::memory_order_acquire) > mask_) {
      lost_.store(lost_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
      return nullptr;
    }
    return &buf_[h & mask_];
  }
  void publish() noexcept { head_.store(head_.load(std::memory_order_relaxed) + 1, std::memory_order_release); }

  // Consumer. Calls f(const SampleRecord&) for each record in order; returns how many.
  template <typename F>
  size_t drain(F&& f) {
    uint64_t t = tail_.load(std::memory_order_relaxed), h = head_.load(std::memory_order_acquire);
    for (uint64_t i = t; i != h; ++i) f(buf_[i & mask_]);
    tail_.store(h, std::memory_order_release);
    return h - t;
  }
  uint64_t lost() const { return lost_.load(std::memory_order_relaxed); }
  size_t capacity() const { return buf_.size(); }

 private:
  std::vector<SampleRecord> buf_;
  uint64_t mask_;
  alignas(64) std::atomic<uint64_t> head_{0};  // the producer's line
  std::atomic<uint64_t> lost_{0};
  alignas(64) std::atomic<uint64_t> tail_{0};  // the consumer's line
};

}  // namespace stakegate
