// Test-only model of a NIC's RSS capabilities, preloaded into the real stakegate binary
// (LD_PRELOAD) by tests/integration/test_rss.py. Never installed.
//
// The virtual devices here (net_pcap, net_null, net_af_packet) report no RSS offloads, so
// the port set-up for several workers (src/app/ports.cc) could only ever take its refusal
// branch. This model makes every port report and "apply" RSS the way a NIC would:
//
//   STAKEGATE_RSSSIM_OFFLOADS  hex RTE_ETH_RSS_* mask reported as flow_type_rss_offloads
//   STAKEGATE_RSSSIM_APPLIED   optional hex mask that rte_eth_dev_rss_hash_conf_get reports
//                              instead of what was asked (a device that applied something else)
//   STAKEGATE_RSSSIM_KEYFILE   optional file the RSS key each port is given is appended to (hex),
//                              so the test can check it hashes with the same key
//
// It wraps rte_eth_dev_info_get (the capabilities, a 128-entry redirection table and a
// 40-byte key), rte_eth_dev_configure (records the RSS configuration asked for and gives
// the driver a plain one, which it can take), rte_eth_dev_rss_reta_update (records the
// table) and rte_eth_dev_rss_hash_conf_get (reports what was recorded). Which packets
// reach which queue is up to the test: it splits its captures with the same Toeplitz hash
// and table (tests/integration/rss.py), one rx_pcap per queue.
#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include <rte_ethdev.h>

namespace {

struct PortRss {
  bool configured = false;
  uint64_t rss_hf = 0;
  uint8_t key[64] = {};
  uint8_t key_len = 0;
};

std::mutex g_mu;
PortRss g_ports[RTE_MAX_ETHPORTS];

template <typename F>
F real(const char* name) {
  return reinterpret_cast<F>(dlsym(RTLD_NEXT, name));
}

uint64_t env_mask(const char* name, bool& set) {
  const char* v = std::getenv(name);
  set = v && *v;
  return set ? std::strtoull(v, nullptr, 16) : 0;
}

}  // namespace

extern "C" {

int rte_eth_dev_info_get(uint16_t port_id, struct rte_eth_dev_info* info) {
  static auto next = real<int (*)(uint16_t, rte_eth_dev_info*)>("rte_eth_dev_info_get");
  int rc = next(port_id, info);
  bool set = false;
  const uint64_t offloads = env_mask("STAKEGATE_RSSSIM_OFFLOADS", set);
  if (rc == 0 && set) {
    info->flow_type_rss_offloads = offloads;
    info->reta_size = 128;
    info->hash_key_size = 40;
  }
  return rc;
}

int rte_eth_dev_configure(uint16_t port_id, uint16_t nb_rx_q, uint16_t nb_tx_q, const struct rte_eth_conf* conf) {
  static auto next = real<int (*)(uint16_t, uint16_t, uint16_t, const rte_eth_conf*)>("rte_eth_dev_configure");
  if (!conf || port_id >= RTE_MAX_ETHPORTS) return next(port_id, nb_rx_q, nb_tx_q, conf);
  rte_eth_conf plain = *conf;
  {
    std::lock_guard<std::mutex> lock(g_mu);
    PortRss& p = g_ports[port_id];
    p = PortRss{};
    if (conf->rxmode.mq_mode == RTE_ETH_MQ_RX_RSS) {
      p.configured = true;
      p.rss_hf = conf->rx_adv_conf.rss_conf.rss_hf;
      p.key_len = static_cast<uint8_t>(std::min<unsigned>(conf->rx_adv_conf.rss_conf.rss_key_len, sizeof p.key));
      if (conf->rx_adv_conf.rss_conf.rss_key) std::memcpy(p.key, conf->rx_adv_conf.rss_conf.rss_key, p.key_len);
      if (const char* path = std::getenv("STAKEGATE_RSSSIM_KEYFILE"); path && *path) {
        if (std::FILE* f = std::fopen(path, "a")) {
          for (unsigned i = 0; i < p.key_len; ++i) std::fprintf(f, "%02x", p.key[i]);
          std::fprintf(f, "\n");
          std::fclose(f);
        }
      }
    }
  }
  plain.rxmode.mq_mode = RTE_ETH_MQ_RX_NONE;
  plain.rx_adv_conf.rss_conf = {};
  return next(port_id, nb_rx_q, nb_tx_q, &plain);
}

int rte_eth_dev_rss_reta_update(uint16_t port_id, struct rte_eth_rss_reta_entry64*, uint16_t reta_size) {
  return port_id < RTE_MAX_ETHPORTS && reta_size == 128 ? 0 : -EINVAL;
}

int rte_eth_dev_rss_hash_conf_get(uint16_t port_id, struct rte_eth_rss_conf* conf) {
  if (port_id >= RTE_MAX_ETHPORTS || !conf) return -EINVAL;
  std::lock_guard<std::mutex> lock(g_mu);
  const PortRss& p = g_ports[port_id];
  if (!p.configured) return -ENOTSUP;
  bool set = false;
  const uint64_t applied = env_mask("STAKEGATE_RSSSIM_APPLIED", set);
  conf->rss_hf = set ? applied : p.rss_hf;
  if (conf->rss_key) std::memcpy(conf->rss_key, p.key, std::min<unsigned>(conf->rss_key_len, p.key_len));
  conf->rss_key_len = p.key_len;
  return 0;
}

}  // extern "C"
