// Test-only model of memory running out on the control thread, preloaded into the real
// stakegate binary (LD_PRELOAD) by tests/integration/test_memory_pressure.py. Never
// installed.
//
// Under strict overcommit, a memory limit (RLIMIT_AS) or a heap at its end, malloc
// returns NULL and operator new throws std::bad_alloc wherever the control plane
// allocates: a metrics scrape, a request, a reload, a timer's handler. This model makes
// every allocation of the process's main thread (the control loop's) fail while the
// file named by STAKEGATE_ALLOC_FAIL_FILE exists. The workers never allocate per
// packet, so they are left alone, as are DPDK's own threads. The gateway's code is
// unchanged: it sees what it would see out of memory.
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdlib>

extern "C" {
void* __libc_malloc(size_t);
void* __libc_calloc(size_t, size_t);
void* __libc_realloc(void*, size_t);
void* __libc_memalign(size_t, size_t);
}

namespace {

bool failing() {
  static const char* file = std::getenv("STAKEGATE_ALLOC_FAIL_FILE");
  if (!file || syscall(SYS_gettid) != getpid()) return false;
  if (access(file, F_OK) != 0) return false;
  errno = ENOMEM;
  return true;
}

}  // namespace

extern "C" {
void* malloc(size_t n) { return failing() ? nullptr : __libc_malloc(n); }
void* calloc(size_t n, size_t size) { return failing() ? nullptr : __libc_calloc(n, size); }
void* realloc(void* p, size_t n) { return failing() ? nullptr : __libc_realloc(p, n); }
void* aligned_alloc(size_t align, size_t n) { return failing() ? nullptr : __libc_memalign(align, n); }
void* memalign(size_t align, size_t n) { return failing() ? nullptr : __libc_memalign(align, n); }
int posix_memalign(void** out, size_t align, size_t n) {
  if (failing()) return ENOMEM;
  void* p = __libc_memalign(align, n);
  if (!p) return ENOMEM;
  *out = p;
  return 0;
}
}
