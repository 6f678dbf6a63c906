// Test-only model of a stuck worker, preloaded into the real stakegate binary
// (LD_PRELOAD) by tests/integration/test_watchdog.py. Never installed.
//
// A worker lcore can hang inside a driver (a PMD waiting on a device that stopped
// answering, a bug): its loop stops turning while the process, and its control loop,
// live on. The virtual devices here never hang, so this model wraps rte_eth_dev_start and
// puts an RX callback (public ethdev API) on every receive queue of each started port:
// while the file named by STAKEGATE_STALL_FILE exists, a worker that enters
// rte_eth_rx_burst stays there; once the file is gone, it goes on. The gateway's code is
// unchanged.
#include <dlfcn.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include <rte_ethdev.h>

namespace {

const char* stall_file() {
  static const char* f = std::getenv("STAKEGATE_STALL_FILE");
  return f;
}

uint16_t stall(uint16_t, uint16_t, rte_mbuf**, uint16_t nb_pkts, uint16_t, void*) {
  while (stall_file() && access(stall_file(), F_OK) == 0) usleep(1000);
  return nb_pkts;
}

}  // namespace

extern "C" int rte_eth_dev_start(uint16_t port_id) {
  static auto real = reinterpret_cast<int (*)(uint16_t)>(dlsym(RTLD_NEXT, "rte_eth_dev_start"));
  if (!real) {
    std::fprintf(stderr, "worker_stall: no rte_eth_dev_start after this library\n");
    std::abort();
  }
  int rc = real(port_id);
  rte_eth_dev_info info{};
  if (rc == 0 && rte_eth_dev_info_get(port_id, &info) == 0)
    for (uint16_t q = 0; q < info.nb_rx_queues; ++q) rte_eth_add_rx_callback(port_id, q, stall, nullptr);
  return rc;
}
