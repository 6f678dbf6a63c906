#pragma once
// What the gateway checks and sets up around two kinds of virtual device before DPDK
// opens them: net_pcap's input files, and the kernel interfaces net_af_packet reads.
#include <string>
#include <vector>

#include "stakegate/config/config.h"

namespace stakegate {

// The values of every `key=` argument of a vdev string ("net_pcap0,rx_pcap=a,rx_pcap=b").
std::vector<std::string> vdev_args(const std::string& vdev, const std::string& key);

// net_pcap hands the gateway each record of its rx_pcap files as an Ethernet frame,
// whatever the file's link type. Throws ConfigError naming the vdev key, the file and its
// link type for a file that is missing or not an Ethernet capture.
void check_pcap_inputs(const Config& cfg);

// A packet socket sees what the kernel's receive offloads made of the traffic: with GRO
// or LRO on, a TCP stream arrives as merged frames far longer than the MTU, which the
// gateway cannot forward whole (TCP through it crawls). For each net_af_packet port's
// interface, turns them off for as long as this object lives (then restores them), and
// says so in the log; where it cannot, warns with the ethtool command that would. With a
// state_dir, what it turned off is noted there (offloads-IFACE) while it is off, so that
// after a run that was killed the next one restores it when it stops. Warns
// too when the interface's MTU is more than the PMD's ring frames (framesz) can hold.
class AfPacketInterfaces {
 public:
  explicit AfPacketInterfaces(const Config& cfg);
  ~AfPacketInterfaces();
  AfPacketInterfaces(const AfPacketInterfaces&) = delete;
  AfPacketInterfaces& operator=(const AfPacketInterfaces&) = delete;

 private:
  struct Changed {
    std::string iface;
    bool gro = false, lro = false;  // turned off here (or by a run that crashed): to turn on again
    std::string marker;  // state_dir/offloads-IFACE while they are off ("" without state_dir)
  };
  std::vector<Changed> changed_;
};

}  // namespace stakegate
