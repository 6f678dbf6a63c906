// Test-only model of a process at its task limit, preloaded into the real stakegate binary
// (LD_PRELOAD) by tests/integration/test_task_limit.py. Never installed.
//
// A thread cannot be made when the service is at its task limit (systemd's TasksMax, a
// pids cgroup) or when no memory can be reserved for its stack (strict overcommit under
// memory pressure): pthread_create returns EAGAIN, and std::thread throws
// std::system_error. Root ignores RLIMIT_NPROC, so the test cannot provoke it directly;
// this model makes every new thread fail while the file named by
// STAKEGATE_TASK_LIMIT_FILE exists, and lets threads be made again once it is removed.
// The gateway's code is unchanged: it sees what it would see at a real limit.
#include <dlfcn.h>
#include <pthread.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

extern "C" int pthread_create(pthread_t* thread, const pthread_attr_t* attr, void* (*start)(void*), void* arg) {
  using Create = int (*)(pthread_t*, const pthread_attr_t*, void* (*)(void*), void*);
  static const Create real = reinterpret_cast<Create>(dlsym(RTLD_NEXT, "pthread_create"));
  static const char* file = std::getenv("STAKEGATE_TASK_LIMIT_FILE");
  if (file && access(file, F_OK) == 0) return EAGAIN;
  return real(thread, attr, start, arg);
}
