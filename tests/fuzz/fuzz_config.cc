// The YAML config loader on arbitrary text. A refusal must be a ConfigError naming the
// file, the key and the problem; an accepted config goes on through the SWQoS plan and
// a snapshot, as `check-config` and `run` would take it.
#include "fuzz_common.h"
#include "stakegate/config/config.h"
#include "stakegate/base/error.h"
#include "stakegate/identity/flow_import.h"
#include "stakegate/identity/resolve.h"
#include "stakegate/policy/snapshot_builder.h"
#include "stakegate/policy/stake_plan.h"

using namespace stakegate;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    Config cfg = parse_config(fuzz::text(data, size), "fuzz.yaml");
    if (cfg.identity.kind != IdentityConfig::Kind::kInline) return 0;  // no files are read here
    auto nodes = cfg.identity.inline_nodes;
    resolve_identities(nodes, cfg.identity.hosts, cfg.identity.dns, "fuzz.yaml", nullptr, false);  // no DNS while fuzzing
    auto plan = make_stake_plan(cfg, nodes);
    SnapshotBuilder::build(cfg, plan, Sharding::even(cfg.dataplane.workers));
  } catch (const ConfigError&) {
  }
  return 0;
}
