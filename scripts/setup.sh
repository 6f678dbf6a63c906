#!/usr/bin/env bash
# Installs every Debian 12 package stakegate needs to build, run and test. Idempotent:
# packages already present are not touched, and apt is only called when one is missing.
set -euo pipefail

PACKAGES=(
  build-essential pkg-config meson ninja-build python3
  libdpdk-dev dpdk dpdk-dev              # DPDK 22.11: libraries, PMDs (net_pcap, net_null, ...), dpdk-testpmd
  libyaml-cpp-dev nlohmann-json3-dev libspdlog-dev libfmt-dev libpcap-dev
  libgtest-dev libgmock-dev googletest
  libboost-dev protobuf-compiler libprotobuf-dev prometheus-cpp-dev   # control plane
  libssl-dev libcrypt-dev openssl        # TLS listeners, bcrypt for /metrics; openssl makes the tests' certificates
  libcli11-dev                           # command lines of stakegate, stakegatectl, stakegate-scenario
  libc-ares-dev                          # identity host names: asynchronous DNS with TTLs and explicit servers
  libsystemd-dev                         # sd_notify: readiness and the watchdog under systemd
  libgrpc++-dev protobuf-compiler-grpc   # identity.access_api: Flow's Access API over gRPC
  python3-grpcio                         # ... a fake Access API in the tests
  python3-yaml                           # tests and scripts change configs as data
  prometheus                             # promtool and the server, for the metrics tests
  iproute2 ethtool procps iperf3 curl    # the network-namespace end-to-end tests
  dnsmasq-base                           # ... an outside resolver for the cluster (test_netns_inline)
  systemd adduser                        # systemd-analyze and the package install test
  clang libclang-rt-14-dev               # libFuzzer targets (scripts/fuzz.sh)
  tshark                                 # reads evidence samples (sample.pcapng) in tests
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#PACKAGES[@]} packages present"
  exit 0
fi
echo "setup: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
