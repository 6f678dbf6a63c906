#!/usr/bin/env bash
# The demo: installs what is missing, builds, generates traffic for the bundled demo
# cluster (config/demo), runs `stakegate run` on net_pcap devices until the capture is
# consumed, and prints what passed and what was dropped, by role and reason.
set -euo pipefail
cd "$(dirname "$0")/.."
build="${STAKEGATE_BUILD_DIR:-build}"
if [ -z "${STAKEGATE_SKIP_SETUP:-}" ]; then
  scripts/setup.sh
  STAKEGATE_BUILD_DIR="$build" scripts/build.sh
fi

demo_dir=build-demo   # matches the vdev paths in config/demo/stakegate.yaml
rm -rf "$demo_dir"
echo "== scenario: the demo cluster; one node of each role floods at 10x its rate, unregistered sources flood at 2x capacity;"
echo "   staked nodes dial the cluster (the cluster's SYN-ACKs come from the inside); honest nodes and unregistered API clients"
echo "   stay within their rates; probes of private ports, blocklisted, malformed and non-IP frames, forged cluster sources"
"$build/src/stakegate-scenario" --config config/demo/stakegate.yaml --out "$demo_dir" --seed 7 \
  --duration-ms 100 --honest-fraction 0.5 --flood-stake 0.25 --flood-multiplier 10 \
  --unregistered-flood 2 --unregistered-flood-sources 200 --unregistered-sources 10
echo
echo "== plan (stakegate check-config)"
"$build/src/stakegate" check-config config/demo/stakegate.yaml | sed -n '1,13p'
echo
echo "== stakegate run on net_pcap devices (outside: $demo_dir/outside.pcap in; inside: the cluster's $demo_dir/inside.pcap in, $demo_dir/pass.pcap out)"
"$build/src/stakegate" run --config config/demo/stakegate.yaml --exit-on-idle 1 --report "$demo_dir/report.json" 2>"$demo_dir/run.log" \
  || { cat "$demo_dir/run.log"; exit 1; }
grep -E "final:|port (outside|inside):" "$demo_dir/run.log" | sed 's/^\[[^]]*\] \[info\] //'
echo
echo "== per staked node (a node's burst is 100 ms of its rate; the scenario lasts 100 ms, so honest nodes keep all)"
python3 scripts/demo_summary.py "$demo_dir/expected.json" "$demo_dir/report.json"
echo
echo "(per-node counters: $demo_dir/report.json; passed packets: $demo_dir/pass.pcap)"
echo
echo "== peer score and evidence: stakegate replay of 3 s of the same cluster (the flooders keep at 10x; replay uses the capture's clock)"
"$build/src/stakegate-scenario" --config config/demo/stakegate.yaml --out "$demo_dir/long" --seed 7 \
  --duration-ms 3000 --honest-fraction 0.5 --flood-stake 0.25 --flood-multiplier 10 --unregistered-sources 10 >/dev/null
"$build/src/stakegate" replay --config config/demo/stakegate.yaml --pcap "$demo_dir/long/scenario.pcap" \
  --report "$demo_dir/long/report.json" >/dev/null 2>"$demo_dir/long/replay.log" || { cat "$demo_dir/long/replay.log"; exit 1; }
grep -E "^warning: graylisted" "$demo_dir/long/replay.log" | sed 's/, score.*//' || true
case_dir=$(ls -d "$demo_dir"/evidence/*/ 2>/dev/null | head -1)
if [ -n "$case_dir" ]; then
  echo "evidence bundles: $(ls -d "$demo_dir"/evidence/*/ | wc -l) in $demo_dir/evidence/, e.g. $case_dir: $(ls "$case_dir" | tr '\n' ' ')"
  sed -n '/^## Evidence summary/,/^- Peer score/p' "$case_dir/flip.md"
fi
