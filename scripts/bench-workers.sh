#!/usr/bin/env bash
# 1 vs 2 workers (docs/performance.md, "1 vs 2 workers"): stakegate run on a net_pcap
# capture replayed endlessly (one RX queue per worker) into net_null1,no-rx=1, scoring
# off, 1 KiB mbufs; prints the summary line's outside rate, one sample a second.
#   scripts/bench-workers.sh [SECONDS]      (default 10; after scripts/build.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-10}"
build="${STAKEGATE_BUILD_DIR:-build}"
out=build-bench/workers
rm -rf "$out" && mkdir -p "$out"
"$build/src/stakegate-scenario" --out "$out/s" --nodes-per-role 200 --duration-ms 200 --flood-stake 0.2 >/dev/null
run() {  # workers, lcore map (empty: stakegate's default)
  local w="$1" lcores="$2"
  # The generated config, changed as data (yaml), not as text.
  /usr/bin/python3 - "$out/s/config.yaml" "$out/s/w.yaml" "$w" "$lcores" <<'PY'
import sys, yaml
src, dst, workers, lcores = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
c = yaml.safe_load(open(src))
cap = c["dataplane"]["outside"]["vdev"].split("rx_pcap=")[1].split(",")[0]
dp = c["dataplane"]
dp["outside"]["vdev"] = "net_pcap0," + ",".join([f"rx_pcap={cap}"] * workers) + ",infinite_rx=1"
dp["inside"]["vdev"] = "net_null1,no-rx=1"
# The same capture on every queue: no source steering to rely on, so rate / workers each.
dp.update(workers=workers, rss=False, mbufs=262143, mbuf_data_room=1024)
dp["eal"][dp["eal"].index("-m") + 1] = "2000"
if lcores:
    dp["eal"] += ["--lcores", lcores]
c["scoring"] = {"enabled": False}
yaml.safe_dump(c, open(dst, "w"))
PY
  (cd "$out/s" && timeout -s INT "$secs" "$OLDPWD/$build/src/stakegate" run --config w.yaml >/dev/null 2>run.log || true)
  echo "workers=$w${lcores:+ (lcores $lcores)}: $(grep -o 'outside rate [0-9.]* Mpps' "$out/s/run.log" | awk '{print $3}' | tail -6 | tr '\n' ' ')Mpps"
}
run 1 ""
run 2 ""
run 2 "0@0,1@1,2@1"
