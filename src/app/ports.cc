#include "ports.h"

#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <spdlog/spdlog.h>

#include <stdexcept>

#include <algorithm>
#include <vector>

#include "port_plan.h"

namespace stakegate {
namespace {
constexpr unsigned kPoolCache = 256;  // mbufs cached per lcore (DPDK lets a cache grow to 1.5x)
unsigned ring_mbufs(const PortIo& io) { return io.q.rx_queues * io.rx_desc + io.q.tx_queues * io.tx_desc; }
// The same redirection table on both ports, then what the device applied, read back:
// a device that would hash L4 ports, or not the one address, is refused rather than trusted.
void apply_reta_and_check(const Config& cfg, PortIo& io, PortSide side) {
  if (io.reta_size == 0) throw std::runtime_error(io.name + ": RSS without a redirection table");
  const std::vector<uint16_t> reta = rss_reta(io.reta_size, io.q.rx_queues);
  std::vector<rte_eth_rss_reta_entry64> conf((io.reta_size + RTE_ETH_RETA_GROUP_SIZE - 1) / RTE_ETH_RETA_GROUP_SIZE);
  for (unsigned i = 0; i < io.reta_size; ++i) {
    conf[i / RTE_ETH_RETA_GROUP_SIZE].mask |= uint64_t{1} << (i % RTE_ETH_RETA_GROUP_SIZE);
    conf[i / RTE_ETH_RETA_GROUP_SIZE].reta[i % RTE_ETH_RETA_GROUP_SIZE] = reta[i];
  }
  if (int rc = rte_eth_dev_rss_reta_update(io.q.port, conf.data(), io.reta_size); rc != 0)
    throw std::runtime_error(io.name + ": cannot set the RSS redirection table: " + rte_strerror(-rc));
  rte_eth_rss_conf applied{};
  uint8_t key[64] = {};
  applied.rss_key = key;
  applied.rss_key_len = sizeof key;
  if (int rc = rte_eth_dev_rss_hash_conf_get(io.q.port, &applied); rc != 0)
    throw std::runtime_error(io.name + ": cannot read back its RSS configuration: " + rte_strerror(-rc));
  std::string problem = check_applied_rss(io.name, side, applied.rss_hf);
  if (problem.empty()) problem = check_applied_key(io.name, key, applied.rss_key_len);
  if (!problem.empty())
    throw std::runtime_error(cfg.file + ": dataplane.workers: " + problem +
                             "; run 1 worker, or set dataplane.rss: false to run them with rate / workers each");
  io.prefix64 = offers_prefix64(applied.rss_hf);  // what the device does, not what it was asked
}

uint16_t port_id(const Config& cfg, const char* which, const PortSpec& spec) {
  uint16_t id = 0;
  if (rte_eth_dev_get_port_by_name(spec.name().c_str(), &id) != 0)
    throw std::runtime_error(cfg.file + ": dataplane." + which + ": no DPDK port named '" + spec.name() + "'");
  return id;
}

}  // namespace

rte_mempool* create_mbuf_pool(const Config& cfg) {
  rte_mempool* pool = rte_pktmbuf_pool_create(
      "stakegate_mbufs", cfg.dataplane.mbufs, kPoolCache, 0,
      static_cast<uint16_t>(cfg.dataplane.mbuf_data_room + RTE_PKTMBUF_HEADROOM), static_cast<int>(rte_socket_id()));
  if (!pool) throw std::runtime_error(std::string("mbuf pool: ") + rte_strerror(rte_errno));
  return pool;
}

bool port_offers_prefix64(const Config& cfg, const char* which, const PortSpec& spec) {
  rte_eth_dev_info info{};
  return rte_eth_dev_info_get(port_id(cfg, which, spec), &info) == 0 && offers_prefix64(info.flow_type_rss_offloads);
}

PortIo setup_port(const Config& cfg, const char* which, const PortSpec& spec, rte_mempool* pool, bool prefix64) {
  PortIo io;
  io.name = spec.name();
  const bool outside = std::string(which) == "outside";
  io.q.port = port_id(cfg, which, spec);
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
  const PortSide side = outside ? PortSide::kOutside : PortSide::kInside;
  RssPlan plan = plan_rss(io.name, side, info.flow_type_rss_offloads, io.q.rx_queues, cfg.dataplane.rss, prefix64);
  if (!plan.refusal.empty()) throw std::runtime_error(cfg.file + ": dataplane.workers: " + plan.refusal);
  io.rss = plan.rss;
  io.rss_note = plan.note;
  io.reta_size = info.reta_size;
  uint8_t key[kRssKeySize];
  std::copy(rss_key(), rss_key() + kRssKeySize, key);
  if (plan.rss) {
    conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
    conf.rx_adv_conf.rss_conf.rss_key = key;
    conf.rx_adv_conf.rss_conf.rss_key_len = kRssKeySize;
    conf.rx_adv_conf.rss_conf.rss_hf = plan.rss_hf;
  }
  const MtuPlan mtu = plan_mtu(io.name, cfg.dataplane.mtu, info.min_mtu, info.max_mtu, info.rx_offload_capa,
                               cfg.dataplane.mbuf_data_room);
  if (!mtu.refusal.empty()) throw std::runtime_error(cfg.file + ": " + mtu.refusal);
  if (mtu.mtu) conf.rxmode.mtu = mtu.mtu;
  if (mtu.scatter) conf.rxmode.offloads |= RTE_ETH_RX_OFFLOAD_SCATTER;
  // A frame longer than one mbuf arrives chained (net_pcap; a NIC with scattered RX) and is
  // forwarded as it came: the device must send chains.
  if (info.tx_offload_capa & RTE_ETH_TX_OFFLOAD_MULTI_SEGS) conf.txmode.offloads |= RTE_ETH_TX_OFFLOAD_MULTI_SEGS;
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
  if (plan.rss) apply_reta_and_check(cfg, io, side);
  rte_eth_promiscuous_enable(io.q.port);  // a bump in the wire accepts every destination MAC; vdevs may refuse, harmlessly
  uint16_t applied_mtu = 0;
  rte_eth_dev_get_mtu(io.q.port, &applied_mtu);
  spdlog::info("port {} ({}): {} RX / {} TX queues, MTU {}{}{}{}", which, io.name, io.q.rx_queues, io.q.tx_queues,
               applied_mtu, mtu.scatter ? " (longer frames than an mbuf arrive chained)" : "",
               io.rss ? (outside ? ", RSS on the source address" : ", RSS on the destination address") : "",
               io.rss && io.prefix64 ? " (IPv6: its /64)" : "");
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
    out = {st.ipackets, st.opackets, st.imissed, st.rx_nombuf, st.oerrors, st.ierrors};
  return out;
}

PortLink port_link(const PortIo& io) {
  rte_eth_link l{};
  PortLink out;
  if (rte_eth_link_get_nowait(io.q.port, &l) != 0) return out;  // unknown: as down
  out.up = l.link_status == RTE_ETH_LINK_UP;
  out.speed_mbps = out.up && l.link_speed != RTE_ETH_SPEED_NUM_UNKNOWN ? l.link_speed : 0;
  out.full_duplex = out.up && l.link_duplex == RTE_ETH_LINK_FULL_DUPLEX;
  return out;
}

void stop_port(const PortIo& io) {
  rte_eth_dev_stop(io.q.port);
  rte_eth_dev_close(io.q.port);
}

}  // namespace stakegate
