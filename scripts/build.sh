#!/usr/bin/env bash
# Configures (once) and builds stakegate into ${STAKEGATE_BUILD_DIR:-build}.
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${STAKEGATE_BUILD_DIR:-build}"
# A new build folder is configured as the Debian package is built (release, /usr, /etc),
# so that scripts/package.sh can reuse it; arguments replace those options.
[ $# -gt 0 ] || set -- --buildtype=release --prefix=/usr --sysconfdir=/etc
[ -f "$dir/build.ninja" ] || meson setup "$dir" "$@"
meson compile -C "$dir"
