// Test-only model of the wall clock stepped while the gateway runs, preloaded into the real
// stakegate binary (LD_PRELOAD) by tests/integration/test_clock_step.py. Never installed.
//
// An appliance often starts before its clock is right (a dead RTC battery, a VM restored
// from a snapshot) and NTP steps it minutes or years later; the test cannot step this
// machine's clock. Here CLOCK_REALTIME (and its coarse variant) reads as the real one plus
// the seconds written in the file named by STAKEGATE_CLOCK_STEP_FILE (none: unchanged), so
// the test steps it by rewriting the file. CLOCK_MONOTONIC is untouched, as in a real step.
#include <dlfcn.h>
#include <time.h>

#include <cstdio>
#include <cstdlib>

extern "C" int clock_gettime(clockid_t id, struct timespec* ts) {
  using Get = int (*)(clockid_t, struct timespec*);
  static const Get real = reinterpret_cast<Get>(dlsym(RTLD_NEXT, "clock_gettime"));
  static const char* file = std::getenv("STAKEGATE_CLOCK_STEP_FILE");
  const int r = real(id, ts);
  if (r != 0 || !file || (id != CLOCK_REALTIME && id != CLOCK_REALTIME_COARSE)) return r;
  if (FILE* f = std::fopen(file, "r")) {
    long long step = 0;
    if (std::fscanf(f, "%lld", &step) == 1) ts->tv_sec += step;
    std::fclose(f);
  }
  return r;
}
