// Test-only model of a NIC's transmit descriptors, preloaded into the real stakegate
// binary (LD_PRELOAD) by tests/integration/test_pool_fault.py. Never installed.
//
// A hardware NIC keeps every transmitted mbuf until it has put the frame on the wire and
// reported the descriptor complete; when its link is paused (802.3x flow control from a
// congested switch), completions stop: first the TX ring fills (rte_eth_tx_burst takes
// fewer packets), and if the ring is larger than what the mbuf pool can spare, the pool
// runs dry and the RX side fails to allocate (rx_nombuf). The virtual devices this machine
// has (net_pcap, net_af_packet, net_null) copy or free every mbuf at once, so neither
// fault can happen with them alone. This model adds the missing part to one port:
//
//   STAKEGATE_NICSIM_PORT         ethdev name of the port to model (e.g. net_pcap1)
//   STAKEGATE_NICSIM_DESCRIPTORS  TX descriptors per queue (the ring size)
//   STAKEGATE_NICSIM_PAUSE        file whose first byte is '1' while the link is paused (mapped:
//                                 write it in place, never truncate it)
//
// It wraps rte_eth_dev_start/stop of the process and, on the named port, installs a TX
// callback (public ethdev API): each packet the driver is given takes a descriptor and a
// reference on its mbuf (so the mbuf stays out of the pool after the driver has copied
// and freed it); packets that find no free descriptor are not taken, exactly as a full
// hardware ring answers. A completion thread (the "NIC") returns the references to the
// pool unless the pause file says '1'. The gateway's code is unchanged: it sees what it
// would see on hardware.
#include <dlfcn.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

namespace {

struct Queue {
  rte_ring* held = nullptr;  // the worker's TX callback adds; the worker (running link) or the NIC thread completes
  const rte_eth_rxtx_callback* cb = nullptr;
};

struct Model {
  uint16_t port = RTE_MAX_ETHPORTS;
  std::vector<Queue> queues;
  const volatile char* pause = nullptr;
  std::atomic<bool> stop{false};
  std::thread nic;
};

Model g_model;

bool paused() { return g_model.pause && *g_model.pause == '1'; }

void complete(Queue& q) {
  void* done[64];
  unsigned n;
  while ((n = rte_ring_dequeue_burst(q.held, done, 64, nullptr)) > 0)
    for (unsigned i = 0; i < n; ++i) rte_pktmbuf_free(static_cast<rte_mbuf*>(done[i]));
}

uint16_t take_descriptors(uint16_t, uint16_t, rte_mbuf** pkts, uint16_t n, void* arg) {
  auto* q = static_cast<Queue*>(arg);
  // A running link has sent what it was given before: its descriptors are free again
  // (done here rather than only on the NIC thread, which a busy machine may not schedule).
  if (!paused()) complete(*q);
  uint16_t room = static_cast<uint16_t>(std::min<unsigned>(n, rte_ring_free_count(q->held)));
  for (uint16_t i = 0; i < room; ++i) rte_pktmbuf_refcnt_update(pkts[i], 1);
  rte_ring_enqueue_bulk(q->held, reinterpret_cast<void* const*>(pkts), room, nullptr);
  return room;  // the rest stay the caller's: a full ring
}

void nic_loop() {
  while (!g_model.stop.load(std::memory_order_relaxed)) {
    if (!paused())
      for (auto& q : g_model.queues) complete(q);
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
}

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "nicsim: %s\n", what.c_str());
  std::abort();
}

void attach(uint16_t port) {
  const char* want = std::getenv("STAKEGATE_NICSIM_PORT");
  char name[RTE_ETH_NAME_MAX_LEN];
  if (!want || rte_eth_dev_get_name_by_port(port, name) != 0 || std::strcmp(name, want) != 0) return;
  const char* desc = std::getenv("STAKEGATE_NICSIM_DESCRIPTORS");
  const char* pause = std::getenv("STAKEGATE_NICSIM_PAUSE");
  if (!desc || !pause) die("STAKEGATE_NICSIM_DESCRIPTORS and STAKEGATE_NICSIM_PAUSE must be set");
  unsigned descriptors = static_cast<unsigned>(std::strtoul(desc, nullptr, 10));
  int fd = open(pause, O_RDONLY);
  if (fd < 0) die(std::string("cannot open ") + pause);
  void* map = mmap(nullptr, 1, PROT_READ, MAP_SHARED, fd, 0);
  close(fd);
  if (map == MAP_FAILED) die(std::string("cannot map ") + pause);
  g_model.pause = static_cast<const volatile char*>(map);

  rte_eth_dev_info info{};
  if (rte_eth_dev_info_get(port, &info) != 0) die("no device info");
  g_model.port = port;
  g_model.queues.resize(info.nb_tx_queues);
  for (uint16_t q = 0; q < info.nb_tx_queues; ++q) {
    std::string ring = "nicsim_" + std::to_string(port) + "_" + std::to_string(q);
    auto& m = g_model.queues[q];
    m.held = rte_ring_create(ring.c_str(), descriptors, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_EXACT_SZ);
    if (!m.held) die("cannot create " + ring + ": " + rte_strerror(rte_errno));
    m.cb = rte_eth_add_tx_callback(port, q, take_descriptors, &m);
    if (!m.cb) die("cannot add the TX callback: " + std::string(rte_strerror(rte_errno)));
  }
  g_model.nic = std::thread(nic_loop);
  std::fprintf(stderr, "nicsim: port %s: %u TX descriptors per queue (%u queues), paused while %s says 1\n", name,
               descriptors, info.nb_tx_queues, pause);
}

void detach(uint16_t port) {
  if (port != g_model.port) return;
  g_model.stop = true;
  if (g_model.nic.joinable()) g_model.nic.join();
  for (uint16_t q = 0; q < g_model.queues.size(); ++q) {
    auto& m = g_model.queues[q];
    rte_eth_remove_tx_callback(port, q, m.cb);  // the callback's memory is DPDK's to keep (see its docs)
    complete(m);  // the link is gone: every held mbuf goes back to the pool
    rte_ring_free(m.held);
  }
  g_model.queues.clear();
  g_model.port = RTE_MAX_ETHPORTS;
}

template <typename F>
F next(const char* symbol) {
  void* f = dlsym(RTLD_NEXT, symbol);
  if (!f) die(std::string("no ") + symbol + " after this library");
  return reinterpret_cast<F>(f);
}

}  // namespace

extern "C" int rte_eth_dev_start(uint16_t port_id) {
  static auto real = next<int (*)(uint16_t)>("rte_eth_dev_start");
  int rc = real(port_id);
  if (rc == 0) attach(port_id);
  return rc;
}

extern "C" int rte_eth_dev_stop(uint16_t port_id) {
  static auto real = next<int (*)(uint16_t)>("rte_eth_dev_stop");
  detach(port_id);
  return real(port_id);
}
