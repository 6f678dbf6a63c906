#!/usr/bin/env bash
# Configures (once) and builds stakegate into ${STAKEGATE_BUILD_DIR:-build}.
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${STAKEGATE_BUILD_DIR:-build}"
[ -f "$dir/build.ninja" ] || meson setup "$dir" "$@"
meson compile -C "$dir"
