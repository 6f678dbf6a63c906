#include "ports.h"

#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <spdlog/spdlog.h>

#include <stdexcept>

#include "port_plan.h"

namespace stakegate {
namespace {
constexpr unsigned kPoolCache = 256;  // mbufs cached per lcore (DPDK lets a cache grow to 1.5x)
unsigned ring_mbufs(const PortIo& io) { return io.q.rx_queues * io.rx_desc + io.q.tx_queues * io.tx_desc; }
}  // namespace

rte_mempool* create_mbuf_pool(const Config& cfg) {
  rte_mempool* pool = rte_pktmbuf_pool_create(
      "stakegate_mbufs", cfg.dataplane.mbufs, kPoolCache, 0,
      static_cast<uint16_t>(cfg.dataplane.mbuf_data_room + RTE_PKTMBUF_HEADROOM), static_cast<int>(rte_socket_id()));
  if (!pool) throw std::runtime_error(std::string("mbuf pool: ") + rte_strerror(rte_errno));
  return pool;
}

PortIo setup_port(const Config& cfg, const char* which, const PortSpec& spec, rte_mempool* pool) {
  PortIo io;
  io.name = spec.name();
  const bool outside = std::string(which) == "outside";
  if (rte_eth_dev_get_port_by_name(io.name.c_str(), &io.q.port) != 0)
    throw std::runtime_error(cfg.file + ": dataplane." + which + ": no DPDK port named '" + io.name + "'");
  rte_eth_dev_info info{};
  if (int rc = rte_eth_dev_info_get(io.q.port, &info); rc != 0)
    throw std::runtime_error(io.name + ": cannot read device info: " + rte_strerror(-rc));
  const unsigned workers = cfg.dataplane.workers;
  io.q.rx_queues = static_cast<uint16_t>(std::min<unsigned>(workers, info.max_rx_queues));
  io.q.tx_queues = static_cast<uint16_t>(std::min<unsigned>(workers, info.max_tx_queues));
  if (outside && io.q.rx_queues < workers && info.max_rx_queues > 0)
    throw std::runtime_error(cfg.file + ": dataplane.workers: " + std::to_string(workers) + " workers need " +
                             std::to_string(workers) + " RX queues, but " + io.name + " has " +
                             std::to_string(info.max_rx_queues));
  rte_eth_conf conf{};
  if (outside) {
    RssPlan plan = plan_outside_rss(io.name, info.flow_type_rss_offloads, io.q.rx_queues, cfg.dataplane.rss);
    io.rss = plan.rss;
    io.rss_note = plan.note;
    if (plan.rss) {
      conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
      conf.rx_adv_conf.rss_conf.rss_key = nullptr;  // the driver's default key
      conf.rx_adv_conf.rss_conf.rss_hf = plan.rss_hf;
    }
  }
  if (int rc = rte_eth_dev_configure(io.q.port, io.q.rx_queues, io.q.tx_queues, &conf); rc != 0)
    throw std::runtime_error(io.name + ": configure failed: " + rte_strerror(-rc));
  uint16_t nrx = static_cast<uint16_t>(cfg.dataplane.rx_desc), ntx = static_cast<uint16_t>(cfg.dataplane.tx_desc);
  rte_eth_dev_adjust_nb_rx_tx_desc(io.q.port, &nrx, &ntx);
  io.rx_desc = nrx;
  io.tx_desc = ntx;
  int socket = rte_eth_dev_socket_id(io.q.port);
  for (uint16_t q = 0; q < io.q.rx_queues; ++q)
    if (int rc = rte_eth_rx_queue_setup(io.q.port, q, nrx, socket, nullptr, pool); rc != 0)
      throw std::runtime_error(io.name + ": RX queue setup failed: " + rte_strerror(-rc));
  for (uint16_t q = 0; q < io.q.tx_queues; ++q)
    if (int rc = rte_eth_tx_queue_setup(io.q.port, q, ntx, socket, nullptr); rc != 0)
      throw std::runtime_error(io.name + ": TX queue setup failed: " + rte_strerror(-rc));
  if (int rc = rte_eth_dev_start(io.q.port); rc != 0) throw std::runtime_error(io.name + ": start failed: " + rte_strerror(-rc));
  rte_eth_promiscuous_enable(io.q.port);  // a bump in the wire accepts every destination MAC; vdevs may refuse, harmlessly
  spdlog::info("port {} ({}): {} RX / {} TX queues{}", which, io.name, io.q.rx_queues, io.q.tx_queues,
               io.rss ? ", RSS on the source address" : "");
  return io;
}

void check_pool_size(const Config& cfg, const PortIo& outside, const PortIo& inside) {
  const unsigned workers = cfg.dataplane.workers;
  const unsigned hold = ring_mbufs(outside) + ring_mbufs(inside) + (workers + 1) * kPoolCache * 3 / 2 +
                        workers * std::min(cfg.dataplane.burst, kMaxBurst);
  if (cfg.dataplane.mbufs < hold)
    spdlog::warn("{}: dataplane.mbufs {} is less than the {} mbufs the port rings and per-core caches can hold: a "
                 "stalled link can leave RX without mbufs (rx_nombuf); raise it (docs/configuration.md)",
                 cfg.file, cfg.dataplane.mbufs, hold);
}

PortStats port_stats(const PortIo& io) {
  rte_eth_stats st{};
  PortStats out;
  if (rte_eth_stats_get(io.q.port, &st) == 0)
    out = {st.ipackets, st.opackets, st.imissed, st.rx_nombuf, st.oerrors};
  return out;
}

void stop_port(const PortIo& io) {
  rte_eth_dev_stop(io.q.port);
  rte_eth_dev_close(io.q.port);
}

}  // namespace stakegate
