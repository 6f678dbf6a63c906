#include "eal.h"

#include <sched.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

namespace stakegate {

std::string lcore_map(unsigned workers, const std::vector<int>& cpus) {
  std::string map = "0@" + std::to_string(cpus[0]);
  for (unsigned w = 1; w <= workers; ++w)
    map.append(",").append(std::to_string(w)).append("@").append(std::to_string(cpus[w % cpus.size()]));
  return map;
}

std::vector<std::string> eal_args(const Config& cfg) {
  std::vector<std::string> a{"stakegate"};
  bool prefix = false, cores = false;
  for (const auto& x : cfg.dataplane.eal) {
    prefix = prefix || x == "--file-prefix";
    cores = cores || x == "-l" || x == "-c" || x == "--lcores";
    a.push_back(x);
  }
  if (!prefix) {
    a.push_back("--file-prefix");
    a.push_back("stakegate-" + std::to_string(getpid()));
  }
  if (!cores) {
    cpu_set_t set;
    CPU_ZERO(&set);
    std::vector<int> cpus;
    if (sched_getaffinity(0, sizeof set, &set) == 0)
      for (int c = 0; c < CPU_SETSIZE; ++c)
        if (CPU_ISSET(c, &set)) cpus.push_back(c);
    if (cpus.empty()) cpus.push_back(0);
    std::string map = lcore_map(cfg.dataplane.workers, cpus);
    if (cfg.dataplane.workers + 1 > cpus.size())
      spdlog::warn("{} worker(s) + 1 control lcore on {} CPU(s): lcores share CPUs ({})", cfg.dataplane.workers,
                   cpus.size(), map);
    a.push_back("--lcores");
    a.push_back(map);
  }
  for (const PortSpec* p : {&cfg.dataplane.outside, &cfg.dataplane.inside}) {
    a.push_back(p->vdev.empty() ? "-a" : "--vdev");
    a.push_back(p->vdev.empty() ? p->pci : p->vdev);
  }
  return a;
}

}  // namespace stakegate
