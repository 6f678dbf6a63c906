#!/usr/bin/env bash
# Fuzzing (docs/reliability.md): builds the libFuzzer targets with clang and
# AddressSanitizer + UndefinedBehaviorSanitizer in build-fuzz/ (or $STAKEGATE_FUZZ_BUILD, a
# build configured the same way: scripts/test.sh passes its instrumented one), replays every kept
# finding (tests/fuzz/regressions/<target>/), then fuzzes each target for --seconds
# from seeds the project generates. A finding stops the run with its input saved under
# build-fuzz/findings/; once fixed, copy it into tests/fuzz/regressions/<target>/.
#   scripts/fuzz.sh [--seconds N] [--target packet|identity|config|api]...
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=30
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    --target) targets+=("$2"); shift 2 ;;
    *) echo "usage: scripts/fuzz.sh [--seconds N] [--target NAME]..." >&2; exit 2 ;;
  esac
done
[ ${#targets[@]} -gt 0 ] || targets=(packet identity config api)
[ -n "${STAKEGATE_SKIP_SETUP:-}" ] || scripts/setup.sh

b="${STAKEGATE_FUZZ_BUILD:-build-fuzz}"
if [ ! -f "$b/build.ninja" ]; then
  CC=clang CXX=clang++ meson setup "$b" -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false \
    --buildtype=debugoptimized >/dev/null
fi
ninja -C "$b" $(for t in "${targets[@]}"; do echo "tests/fuzz/fuzz_$t"; done)
rm -rf "$b/seeds"
python3 tests/fuzz/make_seeds.py "$b/seeds"
mkdir -p "$b/findings"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
for t in "${targets[@]}"; do
  bin="$b/tests/fuzz/fuzz_$t"
  reg="tests/fuzz/regressions/$t"
  if compgen -G "$reg/*" >/dev/null; then
    echo "== fuzz_$t: $(ls "$reg" | wc -l) kept finding(s) must pass"
    "$bin" -runs=0 "$reg"/* 2>&1 | tail -1
  fi
  echo "== fuzz_$t: ${seconds} s from $(ls "$b/seeds/$t" | wc -l) seeds"
  mkdir -p "$b/corpus/$t"
  "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$b/findings/$t-" "$b/corpus/$t" "$b/seeds/$t" 2>&1 | grep -E "^(#[0-9]+ +DONE|stat::number_of_executed_units|==[0-9]+==ERROR|SUMMARY|artifact_prefix|Test unit written)" || true
  "$bin" -runs=0 "$b/corpus/$t" >/dev/null 2>&1 || { echo "fuzz_$t: a corpus input fails (see $b/findings)" >&2; exit 1; }
  if compgen -G "$b/findings/$t-*" >/dev/null; then
    echo "fuzz_$t: FINDING(S): $(ls "$b/findings/$t-"*)" >&2
    exit 1
  fi
done
echo "fuzz: no finding"
