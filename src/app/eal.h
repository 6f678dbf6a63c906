#pragma once
// EAL arguments for `run`, from dataplane.eal plus what the gateway adds.
#include <string>
#include <vector>

#include "stakegate/config/config.h"

namespace stakegate {

// dataplane.eal, plus: a unique --file-prefix unless given (gateways and tests side by
// side), an --lcores map (control lcore, then one per worker, onto the CPUs this process
// may use) unless -l/-c/--lcores is given, and the two ports (--vdev or -a).
std::vector<std::string> eal_args(const Config& cfg);

// The lcore map for `workers` workers over `cpus` (the CPUs the process may use, in
// order): lcore 0 (control) on the first, workers on the others; a worker left over goes
// on the control lcore's CPU first, since the control lcore mostly sleeps.
std::string lcore_map(unsigned workers, const std::vector<int>& cpus);

}  // namespace stakegate
