// The Flow identity importers on arbitrary text: the first byte picks node-infos.pub.json,
// the root protocol state snapshot or the stake file; the rest is the file. A refusal
// must be a ConfigError (naming the file and the element); anything else escaping, or a
// memory error, is a finding. Accepted tables also go through resolution and the plan.
#include "fuzz_common.h"
#include "stakegate/config/config.h"
#include "stakegate/base/error.h"
#include "stakegate/identity/flow_import.h"
#include "stakegate/identity/resolve.h"
#include "stakegate/policy/snapshot_builder.h"
#include "stakegate/policy/stake_plan.h"

using namespace stakegate;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string body = fuzz::text(data + 1, size - 1);
  try {
    switch (data[0] % 3) {
      case 0:
      case 1: {
        auto nodes = data[0] % 3 == 0 ? parse_flow_node_infos(body, "fuzz.json") : parse_flow_snapshot(body, "fuzz.json");
        resolve_identities(nodes, {}, DnsConfig{}, "fuzz.json", nullptr, false);  // no DNS while fuzzing: names stay without addresses
        static Config cfg = [] {
          Config c;
          c.capacity_pps = 100000;
          for (auto& r : c.roles) r = RoleQos{true, 0.15, 10, 100, {3569}};
          return c;
        }();
        auto plan = make_stake_plan(cfg, nodes);
        SnapshotBuilder::build(cfg, plan, Sharding::even(2));
        break;
      }
      default:
        parse_stake_file(body, "fuzz.json");
    }
  } catch (const ConfigError&) {
  }
  return 0;
}
