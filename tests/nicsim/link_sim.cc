// Test-only model of a NIC's link state, preloaded into the real stakegate binary
// (LD_PRELOAD) by tests/integration/test_link.py. Never installed.
//
// A hardware NIC's driver reports its link going down (a cable pulled, the switch port
// shut or rebooted) and coming back, at the speed it negotiated. The virtual devices this
// machine has report a link that is always up (net_af_packet included, whatever its
// interface does). This model answers the ethdev link queries for one port from a file:
//
//   STAKEGATE_LINKSIM_PORT  ethdev name of the port to model (e.g. net_null1)
//   STAKEGATE_LINKSIM_FILE  "down", or "up SPEED_MBPS" (full duplex); read at every query
//
// Any other port, or an unreadable file, gets the driver's own answer.
#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <rte_ethdev.h>

namespace {

using LinkGet = int (*)(uint16_t, rte_eth_link*);

// True when `port` is the modelled one and the file says what its link is.
bool modelled(uint16_t port, rte_eth_link* link) {
  const char* name = std::getenv("STAKEGATE_LINKSIM_PORT");
  const char* file = std::getenv("STAKEGATE_LINKSIM_FILE");
  char port_name[RTE_ETH_NAME_MAX_LEN] = {};
  if (!name || !file || rte_eth_dev_get_name_by_port(port, port_name) != 0 || std::strcmp(port_name, name) != 0)
    return false;
  FILE* f = std::fopen(file, "r");
  if (!f) return false;
  char state[16] = {};
  unsigned speed = 0;
  const int got = std::fscanf(f, "%15s %u", state, &speed);
  std::fclose(f);
  if (got < 1) return false;
  std::memset(link, 0, sizeof(*link));
  if (std::strcmp(state, "up") == 0) {
    link->link_status = RTE_ETH_LINK_UP;
    link->link_speed = got == 2 ? speed : RTE_ETH_SPEED_NUM_UNKNOWN;
    link->link_duplex = RTE_ETH_LINK_FULL_DUPLEX;
    link->link_autoneg = RTE_ETH_LINK_AUTONEG;
  }
  return true;
}

int answer(LinkGet real, uint16_t port, rte_eth_link* link) {
  return link && modelled(port, link) ? 0 : real(port, link);
}

}  // namespace

extern "C" int rte_eth_link_get_nowait(uint16_t port, rte_eth_link* link) {
  static const LinkGet real = reinterpret_cast<LinkGet>(dlsym(RTLD_NEXT, "rte_eth_link_get_nowait"));
  return answer(real, port, link);
}

extern "C" int rte_eth_link_get(uint16_t port, rte_eth_link* link) {
  static const LinkGet real = reinterpret_cast<LinkGet>(dlsym(RTLD_NEXT, "rte_eth_link_get"));
  return answer(real, port, link);
}
