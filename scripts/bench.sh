#!/usr/bin/env bash
# Benchmark: stakegate against dpdk-testpmd (io, macswap) and Open vSwitch with DPDK
# (plain, per-source meters) on identical DPDK virtual devices, plus the classify+police microbenchmark and callgrind instruction counts.
# Not part of the test command. Options: see scripts/bench.py --help (e.g. --quick).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
missing=()
for p in libbenchmark-dev valgrind gnuplot-nox openvswitch-switch-dpdk linux-perf; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
  # The benchmark starts its own Open vSwitch in its own folder; the system service the
  # package enables would only sit beside it, so a package installed here is left stopped.
  if [[ " ${missing[*]} " == *" openvswitch-switch-dpdk "* ]] && command -v systemctl >/dev/null; then
    $SUDO systemctl disable --now openvswitch-switch >/dev/null 2>&1 || true
  fi
fi
# Benchmarks build in their own folder so a test build's options never leak in.
[ -f build-bench/build.ninja ] || meson setup build-bench --buildtype=release -Dcpp_args=-g
meson setup --reconfigure build-bench >/dev/null   # picks up Google Benchmark if it was just installed
meson compile -C build-bench
exec /usr/bin/python3 scripts/bench.py --build build-bench "$@"
