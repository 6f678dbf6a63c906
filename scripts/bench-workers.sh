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
cap="$(realpath "$out/s/scenario.pcap")"
run() {  # workers, extra EAL args
  local w="$1" lcores="$2" rx="rx_pcap=$cap"
  [ "$w" = 2 ] && rx="$rx,rx_pcap=$cap"
  sed -e "s#outside: {vdev: \"[^\"]*\"}#outside: {vdev: \"net_pcap0,$rx,infinite_rx=1\"}#" \
      -e 's#inside: {vdev: "[^"]*"}#inside: {vdev: "net_null1,no-rx=1"}#' \
      -e "s#  workers: 1#  workers: $w\n  mbufs: 262143\n  mbuf_data_room: 1024#" \
      -e "s#\"512\", --no-pci, --no-shconf\]#\"2000\", --no-pci, --no-shconf$lcores]#" \
      "$out/s/config.yaml" > "$out/s/w.yaml"
  echo "scoring: {enabled: false}" >> "$out/s/w.yaml"
  (cd "$out/s" && timeout -s INT "$secs" "$OLDPWD/$build/src/stakegate" run --config w.yaml >/dev/null 2>run.log || true)
  echo "workers=$w${lcores:+ (lcores ${lcores#, --lcores, })}: $(grep -o 'outside rate [0-9.]* Mpps' "$out/s/run.log" | awk '{print $3}' | tail -6 | tr '\n' ' ')Mpps"
}
run 1 ""
run 2 ""
run 2 ", --lcores, \"0@0,1@1,2@1\""
