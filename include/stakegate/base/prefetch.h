#pragma once
// Prefetches the data path relies on to hide a cache miss. GCC 12 at -O3 deletes a
// __builtin_prefetch it finds under a condition: `if (ways) __builtin_prefetch(...)`
// compiled to nothing, and the staked path at 100k identities ran at half speed with the
// same instruction count (docs/performance.md). An asm statement is emitted as written.
// (x86 has no separate write-intent prefetch below PRFCHW, which x86-64-v2 lacks: one
// form serves both.)
namespace stakegate {

inline void prefetch_line(const void* p) {
#if defined(__x86_64__) || defined(__i386__)
  asm volatile("prefetcht0 %0" : : "m"(*static_cast<const char*>(p)));
#else
  __builtin_prefetch(p);
#endif
}

}  // namespace stakegate
