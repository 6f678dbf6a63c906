// Test-only model of the wall clock stepped while the gateway runs, preloaded into the real
// stakegate binary (LD_PRELOAD) by tests/integration/test_clock_step.py. Never installed.
//
// An appliance often starts before its clock is right (a dead RTC battery, a VM restored
// from a snapshot) and NTP steps it minutes or years later; the test cannot step this
// machine's clock. Here CLOCK_REALTIME (and its coarse variant) reads as the real one plus
// the seconds written in the file named by STAKEGATE_CLOCK_STEP_FILE (none: unchanged), so
// the test steps it by rewriting the file. CLOCK_MONOTONIC is untouched, as in a real step.
// time() and gettimeofday() read the same stepped clock (glibc answers them from the vDSO,
// not through clock_gettime, so they are replaced too).
#include <dlfcn.h>
#include <sys/time.h>
#include <time.h>

#include <cstdio>
#include <cstdlib>

namespace {

long long step_seconds() {
  static const char* file = std::getenv("STAKEGATE_CLOCK_STEP_FILE");
  long long step = 0;
  if (!file) return 0;
  if (FILE* f = std::fopen(file, "r")) {
    if (std::fscanf(f, "%lld", &step) != 1) step = 0;
    std::fclose(f);
  }
  return step;
}

}  // namespace

extern "C" int clock_gettime(clockid_t id, struct timespec* ts) {
  using Get = int (*)(clockid_t, struct timespec*);
  static const Get real = reinterpret_cast<Get>(dlsym(RTLD_NEXT, "clock_gettime"));
  const int r = real(id, ts);
  if (r == 0 && (id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE)) ts->tv_sec += step_seconds();
  return r;
}

extern "C" time_t time(time_t* out) {
  struct timespec ts {};
  clock_gettime(CLOCK_REALTIME, &ts);
  if (out) *out = ts.tv_sec;
  return ts.tv_sec;
}

extern "C" int gettimeofday(struct timeval* tv, void*) {
  struct timespec ts {};
  const int r = clock_gettime(CLOCK_REALTIME, &ts);
  tv->tv_sec = ts.tv_sec;  // declared non-null
  tv->tv_usec = ts.tv_nsec / 1000;
  return r;
}
