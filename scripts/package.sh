#!/usr/bin/env bash
# Builds the Debian package from the tree: <out>/stakegate_<version>_amd64.deb
# (default out: build-pkg). A release build installed with `meson install` into a
# staging root, the maintainer scripts below, and the shared-library dependencies
# computed by dpkg-shlibdeps.
set -euo pipefail
cd "$(dirname "$0")/.."
out="$(realpath -m "${1:-build-pkg}")"
[ -n "${STAKEGATE_SKIP_SETUP:-}" ] || scripts/setup.sh

build="$out/build" root="$out/root"
# A build folder configured exactly as the package needs (what scripts/build.sh makes),
# named by STAKEGATE_PACKAGE_BUILD, is used as it is: the test command's own build.
package_options() {
  meson introspect "$1" --buildoptions 2>/dev/null | python3 -c '
import json, sys
o = {x["name"]: x["value"] for x in json.load(sys.stdin)}
print(o.get("buildtype"), o.get("prefix"), o.get("sysconfdir"), o.get("b_sanitize"), o.get("cpp_args"))'
}
if [ -n "${STAKEGATE_PACKAGE_BUILD:-}" ] && [ "$(package_options "$STAKEGATE_PACKAGE_BUILD")" = "release /usr /etc none []" ]; then
  build="$(realpath "$STAKEGATE_PACKAGE_BUILD")"
elif [ -f "$build/build.ninja" ]; then
  meson configure "$build" --prefix=/usr --sysconfdir=/etc --buildtype=release >/dev/null
else
  meson setup "$build" --prefix=/usr --sysconfdir=/etc --buildtype=release >/dev/null
fi
ninja -C "$build" src/stakegate src/stakegatectl src/stakegate-scenario
rm -rf "$root"
DESTDIR="$root" meson install -C "$build" --no-rebuild --quiet
version=$(meson introspect "$build" --projectinfo | python3 -c 'import json,sys; print(json.load(sys.stdin)["version"])')
arch=$(dpkg --print-architecture)

# Shared-library dependencies of the installed binaries (+ the DPDK drivers, loaded at run time).
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/debian"
printf 'Source: stakegate\n\nPackage: stakegate\nArchitecture: any\n' > "$work/debian/control"
shlibs=$(cd "$work" && dpkg-shlibdeps -O "$root"/usr/bin/stakegate "$root"/usr/bin/stakegatectl \
  "$root"/usr/bin/stakegate-scenario 2>/dev/null | sed -n 's/^shlibs:Depends=//p')

mkdir -p "$root/DEBIAN"
cat > "$root/DEBIAN/control" <<EOF
Package: stakegate
Version: $version
Architecture: $arch
Maintainer: stakegate maintainers <stakegate@example.org>
Section: net
Priority: optional
Depends: $shlibs, dpdk, adduser, systemd, python3
Recommends: prometheus
Installed-Size: $(du -sk "$root" | cut -f1)
Homepage: https://github.com/stakegate/stakegate
Description: stake-weighted inline gateway in front of Flow blockchain nodes
 A kernel-bypass (DPDK) appliance between the Internet and a cluster of Flow
 nodes: every packet is classified by the Flow identity table, policed by
 stake-weighted token buckets and forwarded or dropped with a counted reason.
 Peer scoring graylists persistent offenders and writes evidence bundles for
 governance reports. Control API, stakegatectl, Prometheus metrics, a Grafana
 dashboard and alert rules are included.
EOF
echo /etc/stakegate/stakegate.yaml > "$root/DEBIAN/conffiles"

cat > "$root/DEBIAN/postinst" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = configure ]; then
  if ! getent passwd stakegate >/dev/null; then
    adduser --system --group --home /var/lib/stakegate --no-create-home --quiet stakegate
  fi
  install -d -o stakegate -g stakegate -m 0750 /var/lib/stakegate
  if [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    systemctl enable stakegate.service >/dev/null 2>&1 || true
  fi
  echo "stakegate: edit /etc/stakegate/stakegate.yaml (docs: /usr/share/doc/stakegate/deployment.md), then: systemctl start stakegate"
fi
exit 0
EOF
cat > "$root/DEBIAN/prerm" <<'EOF'
#!/bin/sh
set -e
if [ -d /run/systemd/system ] && [ "$1" = remove ]; then
  systemctl stop stakegate.service || true
  systemctl disable stakegate.service >/dev/null 2>&1 || true
fi
exit 0
EOF
cat > "$root/DEBIAN/postrm" <<'EOF'
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi
if [ "$1" = purge ]; then
  # Evidence bundles live in /var/lib/stakegate: purge removes them with the user.
  rm -rf /var/lib/stakegate
  rm -f /etc/udev/rules.d/60-stakegate-vfio.rules   # written by stakegate-host-setup --apply
  if getent passwd stakegate >/dev/null; then deluser --system --quiet stakegate || true; fi
  if getent group stakegate >/dev/null; then delgroup --system --quiet stakegate || true; fi
fi
exit 0
EOF
chmod 0755 "$root/DEBIAN/postinst" "$root/DEBIAN/prerm" "$root/DEBIAN/postrm"

deb="$out/stakegate_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb"
