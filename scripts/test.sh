#!/usr/bin/env bash
# Every test: installs what is missing, builds, runs the unit and integration suites,
# then the unit tests again under AddressSanitizer + UndefinedBehaviorSanitizer, then
# the fuzz targets (their regression inputs and a short run each).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
STAKEGATE_BUILD_DIR=build scripts/build.sh
meson test -C build --print-errorlogs

# One instrumented build for the rest: clang with ASan/UBSan and libFuzzer's coverage, so
# that the unit tests, the binaries and the fuzz targets share it (one build, not two).
# -O0 except the core library and the fuzz targets (-O2): the control plane, tools and
# tests build in 312 s instead of 494, the fuzzers keep their speed (docs/testing.md).
san=build-asan
[ -f "$san/build.ninja" ] || CC=clang CXX=clang++ meson setup "$san" --buildtype=debug -Dcore_optimization=2 \
  -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false
unit_targets=$(meson introspect "$san" --tests | /usr/bin/python3 -c 'import json,sys; print(" ".join(t["name"] for t in json.load(sys.stdin) if "unit" in t["suite"]))')
ninja -C "$san" $(for t in $unit_targets; do echo "tests/${t}_test"; done)
UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 ASAN_OPTIONS=detect_leaks=1 \
  meson test -C "$san" --suite unit --no-rebuild --print-errorlogs
# The binaries under ASan/UBSan as well, for the fault and signal tests: any memory error,
# undefined behaviour or leak at exit turns into a failing exit code.
# dns, task_limit and watchdog: the control plane's helper threads (a replace waiting on
# DNS, threads that cannot be made, a hung worker); monitor: reloads switching the mode
# while the workers forward at full speed.
ninja -C "$san" src/stakegate src/stakegatectl src/stakegate-scenario tests/libstakegate_nicsim.so \
  tests/libstakegate_tasklimit.so tests/libstakegate_workerstall.so
UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 ASAN_OPTIONS=detect_leaks=1 \
  meson test -C "$san" --no-rebuild --print-errorlogs run_signals faults tx_fault pool_fault control_api \
  dns task_limit watchdog monitor

# Fuzzing: every kept finding, then 30 s per target (docs/reliability.md).
STAKEGATE_SKIP_SETUP=1 STAKEGATE_FUZZ_BUILD="$san" scripts/fuzz.sh --seconds "${STAKEGATE_FUZZ_SECONDS:-30}"
