#pragma once
// An allocator for the data path's large tables (meters, sessions, the unregistered
// table, address maps): allocations of 2 MiB or more are 2 MiB-aligned and advised as
// transparent huge pages (madvise MADV_HUGEPAGE), so random lookups across tens of
// megabytes do not also miss the TLB on every access. Smaller ones, and systems without
// THP, get ordinary memory: the advice is only advice.
#include <sys/mman.h>

#include <cstddef>
#include <cstdlib>
#include <new>
#include <vector>

namespace stakegate {

inline constexpr size_t kHugePage = 2u << 20;

template <typename T>
struct HugePageAllocator {
  using value_type = T;
  HugePageAllocator() = default;
  template <typename U>
  HugePageAllocator(const HugePageAllocator<U>&) noexcept {}

  T* allocate(size_t n) {
    const size_t bytes = n * sizeof(T);
    if (bytes < kHugePage) return std::allocator<T>{}.allocate(n);
    const size_t rounded = (bytes + kHugePage - 1) / kHugePage * kHugePage;
    void* p = std::aligned_alloc(kHugePage, rounded);
    if (!p) throw std::bad_alloc();
    ::madvise(p, rounded, MADV_HUGEPAGE);
    return static_cast<T*>(p);
  }
  void deallocate(T* p, size_t n) noexcept {
    if (n * sizeof(T) < kHugePage) std::allocator<T>{}.deallocate(p, n);
    else std::free(p);
  }
  template <typename U>
  bool operator==(const HugePageAllocator<U>&) const noexcept { return true; }
};

template <typename T>
using HugeVector = std::vector<T, HugePageAllocator<T>>;

}  // namespace stakegate
