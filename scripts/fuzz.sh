#!/usr/bin/env bash
# Fuzzing (docs/reliability.md): builds the libFuzzer targets with clang and
# AddressSanitizer + UndefinedBehaviorSanitizer in build-fuzz/ (or $STAKEGATE_FUZZ_BUILD, a
# build configured the same way: scripts/test.sh passes its instrumented one), replays every kept
# finding (tests/fuzz/regressions/<target>/), then fuzzes each target for --seconds
# from seeds the project generates. A finding stops the run with its input saved under
# build-fuzz/findings/; once fixed, copy it into tests/fuzz/regressions/<target>/.
# Targets run --jobs at a time (default: one per CPU), each on one core for its --seconds.
#   scripts/fuzz.sh [--seconds N] [--jobs N] [--target packet|identity|config|api]...
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=30
jobs=$(nproc)
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    --jobs) jobs="$2"; shift 2 ;;
    --target) targets+=("$2"); shift 2 ;;
    *) echo "usage: scripts/fuzz.sh [--seconds N] [--jobs N] [--target NAME]..." >&2; exit 2 ;;
  esac
done
[ ${#targets[@]} -gt 0 ] || targets=(packet identity config api)
[[ "$jobs" =~ ^[1-9][0-9]*$ ]] || { echo "scripts/fuzz.sh: --jobs must be a positive number, got '$jobs'" >&2; exit 2; }
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
# One target: its kept findings, then the run; a finding or a failing corpus input exits 1.
fuzz_target() {
  local t="$1" bin="$b/tests/fuzz/fuzz_$1" reg="tests/fuzz/regressions/$1"
  if compgen -G "$reg/*" >/dev/null; then
    echo "== fuzz_$t: $(ls "$reg" | wc -l) kept finding(s) must pass"
    "$bin" -runs=0 "$reg"/* >"$b/fuzz-$t.kept.log" 2>&1 || { cat "$b/fuzz-$t.kept.log"; echo "fuzz_$t: a kept finding fails again"; exit 1; }
    echo "$(grep -c "^Executed " "$b/fuzz-$t.kept.log") passed"
  fi
  echo "== fuzz_$t: ${seconds} s from $(ls "$b/seeds/$t" | wc -l) seeds"
  mkdir -p "$b/corpus/$t"
  "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$b/findings/$t-" "$b/corpus/$t" "$b/seeds/$t" 2>&1 | grep -E "^(#[0-9]+ +DONE|stat::number_of_executed_units|==[0-9]+==ERROR|SUMMARY|artifact_prefix|Test unit written)" || true
  "$bin" -runs=0 "$b/corpus/$t" >/dev/null 2>&1 || { echo "fuzz_$t: a corpus input fails (see $b/findings)"; exit 1; }
  if compgen -G "$b/findings/$t-*" >/dev/null; then
    echo "fuzz_$t: FINDING(S): $(ls "$b/findings/$t-"*)"
    exit 1
  fi
}
# Each target's output goes to its own log, printed in order once all are done.
for t in "${targets[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
  rm -f "$b/fuzz-$t.done"
  ( set -e; fuzz_target "$t"; echo ok >"$b/fuzz-$t.done" ) >"$b/fuzz-$t.log" 2>&1 &
done
wait
failed=0
for t in "${targets[@]}"; do
  cat "$b/fuzz-$t.log"
  [ -f "$b/fuzz-$t.done" ] || failed=1
done
[ "$failed" = 0 ] || { echo "fuzz: FAILED (above)" >&2; exit 1; }
echo "fuzz: no finding"
