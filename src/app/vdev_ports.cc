#include "vdev_ports.h"

#include <linux/ethtool.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <spdlog/spdlog.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <utility>

#include "stakegate/base/error.h"
#include "stakegate/report/pcap_io.h"

namespace stakegate {
namespace {

constexpr std::pair<const char*, const PortSpec DataplaneConfig::*> kPorts[] = {
    {"dataplane.outside.vdev", &DataplaneConfig::outside}, {"dataplane.inside.vdev", &DataplaneConfig::inside}};

// One ethtool ioctl on `iface`: false with errno set when the kernel refuses it.
// A TPACKET_V2 ring frame holds its header and padding before the packet (the kernel's
// tpacket_rcv: the packet starts at 66 bytes); a frame longer than the rest arrives cut.
constexpr unsigned long kRingFrameOverhead = 66;
constexpr unsigned long kEthernetAndTag = 18;  // an Ethernet header and one VLAN tag around the MTU

bool ethtool(int fd, const std::string& iface, ethtool_value& v) {
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, iface.c_str(), IFNAMSIZ - 1);
  ifr.ifr_data = reinterpret_cast<char*>(&v);
  return ioctl(fd, SIOCETHTOOL, &ifr) == 0;
}

}  // namespace

std::vector<std::string> vdev_args(const std::string& vdev, const std::string& key) {
  std::vector<std::string> out;
  const std::string prefix = key + "=";
  for (size_t at = vdev.find(','); at != std::string::npos;) {
    const size_t end = vdev.find(',', at + 1);
    std::string arg = vdev.substr(at + 1, end == std::string::npos ? end : end - at - 1);
    if (arg.rfind(prefix, 0) == 0) out.push_back(arg.substr(prefix.size()));
    at = end;
  }
  return out;
}

void check_pcap_inputs(const Config& cfg) {
  for (const auto& [key, port] : kPorts) {
    const std::string& vdev = (cfg.dataplane.*port).vdev;
    if (vdev.rfind("net_pcap", 0) != 0) continue;
    for (const auto& file : vdev_args(vdev, "rx_pcap")) {
      const PcapCheck c = check_pcap_is_ethernet(file);
      if (c.problem.empty()) continue;
      throw ConfigError(cfg.file, key,
                        "rx_pcap " + c.problem +
                            (c.readable ? ": net_pcap would hand each record to the gateway as an Ethernet frame; "
                                            "judge this capture with stakegate replay (it reads Linux cooked and raw "
                                            "IP captures), or capture on an Ethernet interface (tcpdump -i IFACE)"
                                          : ""));
    }
  }
}

AfPacketInterfaces::AfPacketInterfaces(const Config& cfg) {
  const std::string& state_dir = cfg.state_dir;
  std::vector<std::pair<std::string, unsigned long>> ifaces;  // and its ring frame size
  for (const auto& [key, port] : kPorts) {
    const std::string& vdev = (cfg.dataplane.*port).vdev;
    if (vdev.rfind("net_af_packet", 0) != 0) continue;
    const auto frames = vdev_args(vdev, "framesz");
    const unsigned long framesz = frames.empty() ? 2048 : std::strtoul(frames.back().c_str(), nullptr, 0);
    for (auto& i : vdev_args(vdev, "iface")) ifaces.emplace_back(std::move(i), framesz);
  }
  if (ifaces.empty()) return;
  const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return;
  for (const auto& [iface, framesz] : ifaces) {
    // A frame longer than the PMD's ring frames hold arrives cut, and is dropped as malformed.
    ifreq mtu_req{};
    std::strncpy(mtu_req.ifr_name, iface.c_str(), IFNAMSIZ - 1);
    if (ioctl(fd, SIOCGIFMTU, &mtu_req) == 0 && framesz > kRingFrameOverhead + kEthernetAndTag) {
      const unsigned long frame = static_cast<unsigned long>(mtu_req.ifr_mtu) + kEthernetAndTag;
      const unsigned long fits = framesz - kRingFrameOverhead;
      if (frame > fits)
        spdlog::warn("{}: MTU {}, but net_af_packet's ring frames (framesz={}) hold frames of at most {} bytes: longer "
                     "ones arrive cut and are dropped as malformed (TCP between hosts of that MTU stalls). Give the vdev "
                     "framesz and blocksz of at least {} (powers of two) and dataplane.mbuf_data_room as large, or "
                     "lower the interface's MTU to {}",
                     iface, mtu_req.ifr_mtu, framesz, fits, std::bit_ceil(frame + kRingFrameOverhead),
                     fits - kEthernetAndTag);
    }
    Changed c{iface, false, false, {}};
    // What a run that ended without turning them back on (killed, crashed) had turned off:
    // it is still to be turned on at the end, though it is off now.
    if (!state_dir.empty()) {
      c.marker = state_dir + "/offloads-" + iface;
      std::ifstream in(c.marker);
      for (std::string word; in >> word;) {
        c.gro |= word == "gro";
        c.lro |= word == "lro";
      }
      if (c.gro || c.lro)
        spdlog::info("{}: a previous run turned {}{}{} off and did not turn it back on: this one will, when it stops",
                     iface, c.gro ? "generic-receive-offload" : "", c.gro && c.lro ? " and " : "",
                     c.lro ? "large-receive-offload" : "");
    }
    std::string failed;
    ethtool_value v{ETHTOOL_GGRO, 0};
    const bool gro_on = ethtool(fd, iface, v) && v.data;
    ethtool_value flags{ETHTOOL_GFLAGS, 0};
    const bool lro_on = ethtool(fd, iface, flags) && (flags.data & ETH_FLAG_LRO);
    // Noted before they are turned off, so that a run killed at any point after leaves
    // the note for the next one.
    if (!c.marker.empty() && (c.gro || c.lro || gro_on || lro_on)) {
      std::ofstream out(c.marker, std::ios::trunc);
      out << ((c.gro || gro_on) ? "gro\n" : "") << ((c.lro || lro_on) ? "lro\n" : "");
      if (!out.flush())
        spdlog::warn("{}: cannot write {}: if this run is killed, the next will not know to turn the receive "
                     "offloads back on", iface, c.marker);
    }
    bool turned_gro = false, turned_lro = false;
    if (gro_on) {
      ethtool_value off{ETHTOOL_SGRO, 0};
      if (ethtool(fd, iface, off)) c.gro = turned_gro = true;
      else failed += std::string(failed.empty() ? "" : ", ") + "gro (" + std::strerror(errno) + ")";
    }
    if (lro_on) {
      ethtool_value set{ETHTOOL_SFLAGS, flags.data & ~static_cast<uint32_t>(ETH_FLAG_LRO)};
      if (ethtool(fd, iface, set)) c.lro = turned_lro = true;
      else failed += std::string(failed.empty() ? "" : ", ") + "lro (" + std::strerror(errno) + ")";
    }
    if (turned_gro || turned_lro)
      spdlog::info("{}: turned {}{}{} off while the gateway runs (a packet socket would see TCP segments merged into "
                   "frames longer than the MTU)", iface, turned_gro ? "generic-receive-offload" : "",
                   turned_gro && turned_lro ? " and " : "", turned_lro ? "large-receive-offload" : "");
    if (!failed.empty())
      spdlog::warn("{}: could not turn off {}: the kernel will merge TCP segments into frames longer than the MTU, "
                   "which the gateway cannot forward whole, and TCP through it slows to a crawl: "
                   "run `ethtool -K {} gro off lro off`", iface, failed, iface);
    if (c.gro || c.lro) changed_.push_back(std::move(c));
    else if (!c.marker.empty()) std::remove(c.marker.c_str());
  }
  close(fd);
}

AfPacketInterfaces::~AfPacketInterfaces() {
  if (changed_.empty()) return;
  const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return;
  for (const auto& c : changed_) {
    if (c.gro) {
      ethtool_value on{ETHTOOL_SGRO, 1};
      ethtool(fd, c.iface, on);
    }
    if (c.lro) {
      ethtool_value flags{ETHTOOL_GFLAGS, 0};
      if (ethtool(fd, c.iface, flags)) {
        ethtool_value set{ETHTOOL_SFLAGS, flags.data | ETH_FLAG_LRO};
        ethtool(fd, c.iface, set);
      }
    }
    spdlog::info("{}: receive offloads turned back on", c.iface);
    if (!c.marker.empty()) std::remove(c.marker.c_str());
  }
  close(fd);
}

}  // namespace stakegate
