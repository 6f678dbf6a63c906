#!/usr/bin/env bash
# stakegate-host-setup: prepares a dedicated server for stakegate (docs/deployment.md).
#
#   stakegate-host-setup [--outside IF|PCI] [--inside IF|PCI] [--hugepages SIZE]
#                        [--workers N] [--apply]
#
# Without --apply it is a dry run: it inspects the host, prints every command it would
# run and the CPU isolation to put on the kernel command line, and changes nothing.
# With --apply (as root) it reserves hugepages and binds the two ports to vfio-pci.
# It refuses to touch an interface that carries the management address (the default
# route, the address of this SSH session, or any global address).
set -euo pipefail

outside="" inside="" hugepages="2G" workers=2 apply=0
usage() { sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --outside) outside="${2:?--outside needs an interface or PCI address}"; shift 2 ;;
    --inside) inside="${2:?--inside needs an interface or PCI address}"; shift 2 ;;
    --hugepages) hugepages="${2:?--hugepages needs a size such as 2G}"; shift 2 ;;
    --workers) workers="${2:?--workers needs a number}"; shift 2 ;;
    --apply) apply=1; shift ;;
    --dry-run) apply=0; shift ;;
    -h|--help) usage 0 ;;
    *) echo "stakegate-host-setup: unknown argument '$1'" >&2; usage 2 ;;
  esac
done
[[ "$workers" =~ ^[1-9][0-9]*$ ]] || { echo "stakegate-host-setup: --workers must be a positive number" >&2; exit 2; }
[[ "$hugepages" =~ ^[0-9]+[MG]$ ]] || { echo "stakegate-host-setup: --hugepages must look like 512M or 2G" >&2; exit 2; }
if [ "$apply" = 1 ] && [ "$(id -u)" != 0 ]; then echo "stakegate-host-setup: --apply needs root" >&2; exit 2; fi

problems=0
plan=()
say() { printf '%s\n' "$*"; }
problem() { say "  REFUSED: $*"; problems=$((problems + 1)); }
step() { plan+=("$*"); }

say "== stakegate host set-up ($([ "$apply" = 1 ] && echo apply || echo "dry run: nothing is changed"))"

# --- management interfaces ---------------------------------------------------------
declare -A mgmt_reason=()
while read -r dev; do [ -n "$dev" ] && mgmt_reason[$dev]="default route"; done < <(ip -o route show default 2>/dev/null | sed -n 's/.* dev \([^ ]*\).*/\1/p')
if [ -n "${SSH_CONNECTION:-}" ]; then
  ssh_ip=$(echo "$SSH_CONNECTION" | awk '{print $3}')
  dev=$(ip -o addr show 2>/dev/null | awk -v ip="$ssh_ip" '{split($4, a, "/"); if (a[1] == ip) print $2}' | head -1)
  [ -n "$dev" ] && mgmt_reason[$dev]="this SSH session ($ssh_ip)"
fi
while read -r dev addr; do
  [ -n "$dev" ] && [ -z "${mgmt_reason[$dev]:-}" ] && mgmt_reason[$dev]="global address $addr"
done < <(ip -o addr show scope global 2>/dev/null | awk '{print $2, $4}')
say "management interfaces (never bound):"
if [ ${#mgmt_reason[@]} -eq 0 ]; then say "  none found"; fi
for dev in "${!mgmt_reason[@]}"; do say "  $dev: ${mgmt_reason[$dev]}"; done

# --- ports ---------------------------------------------------------------------------
is_pci() { [[ "$1" =~ ^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-9a-f]$ ]]; }
pci_of() {  # interface name or PCI address -> PCI address (empty if none)
  local x="$1" p
  if is_pci "$x" && [ -e "/sys/bus/pci/devices/$x" ]; then echo "$x"; return; fi
  if is_pci "0000:$x" && [ -e "/sys/bus/pci/devices/0000:$x" ]; then echo "0000:$x"; return; fi
  [ -e "/sys/class/net/$x/device" ] || { echo ""; return; }
  p=$(readlink -f "/sys/class/net/$x/device")
  while [ "$p" != "/" ] && ! is_pci "$(basename "$p")"; do p=$(dirname "$p"); done  # virtio-net: its PCI parent
  if [ "$p" = "/" ]; then echo ""; else basename "$p"; fi
}
netdev_of() {  # PCI address -> kernel interface name (empty when bound to a DPDK driver)
  local n
  for n in /sys/class/net/*; do
    [ -e "$n/device" ] || continue
    if [ "$(pci_of "$(basename "$n")")" = "$1" ]; then basename "$n"; return; fi
  done
  echo ""
}
driver_of() { basename "$(readlink -f "/sys/bus/pci/devices/$1/driver" 2>/dev/null)" 2>/dev/null || true; }

say "network ports with a PCI address:"
candidates=0
for n in /sys/class/net/*; do
  dev=$(basename "$n")
  [ -e "$n/device" ] || continue
  pci=$(pci_of "$dev")
  [ -n "$pci" ] || continue
  candidates=$((candidates + 1))
  say "  $dev $pci driver $(driver_of "$pci")${mgmt_reason[$dev]:+ (management: ${mgmt_reason[$dev]})}"
done
[ "$candidates" -gt 0 ] || say "  none (virtual machine or container without a NIC: use net_af_packet or net_pcap vdevs to try stakegate)"

check_port() {  # role, IF|PCI -> PCI address on stdout, or a refusal
  local role="$1" x="$2" pci dev
  pci=$(pci_of "$x")
  if [ -z "$pci" ]; then problem "$role port '$x' is neither a PCI address nor an interface with a PCI device"; return; fi
  dev=$(netdev_of "$pci")
  if [ -n "$dev" ] && [ -n "${mgmt_reason[$dev]:-}" ]; then
    problem "$role port $dev ($pci) carries the management address (${mgmt_reason[$dev]}): binding it would cut this host off"
    return
  fi
  local drv; drv=$(driver_of "$pci")
  say "  $role: $pci${dev:+ ($dev)}, driver ${drv:-none}"
  if [ "$drv" = "vfio-pci" ]; then say "    already bound to vfio-pci"; return; fi
  [ -n "$dev" ] && step "ip link set $dev down"
  step "dpdk-devbind.py --bind=vfio-pci $pci"
}
if [ -n "$outside" ] || [ -n "$inside" ]; then
  say "ports to bind:"
  [ -n "$outside" ] || problem "--inside given without --outside"
  [ -n "$inside" ] || problem "--outside given without --inside"
  if [ -n "$outside" ] && [ -n "$inside" ] && [ "$(pci_of "$outside")" = "$(pci_of "$inside")" ] && [ -n "$(pci_of "$outside")" ]; then
    problem "--outside and --inside are the same device"
  fi
  [ -z "$outside" ] || check_port outside "$outside"
  [ -z "$inside" ] || check_port inside "$inside"
  if [ ! -d /sys/kernel/iommu_groups ] || [ -z "$(ls /sys/kernel/iommu_groups 2>/dev/null)" ]; then
    say "  warning: no IOMMU groups: enable VT-d/AMD-Vi in the BIOS and add intel_iommu=on iommu=pt to the kernel command line (vfio-pci needs it)"
  fi
  step "modprobe vfio-pci"
else
  say "ports to bind: none given (--outside and --inside)"
fi

# --- hugepages -----------------------------------------------------------------------
say "hugepages:"
hp_now=$(awk '/HugePages_Total/ {print $2}' /proc/meminfo)
hp_size=$(awk '/Hugepagesize/ {print $2 $3}' /proc/meminfo)
say "  now: ${hp_now:-0} pages of $hp_size; mounted: $(mount | awk '$5 == "hugetlbfs" {print $3}' | tr '\n' ' ')"
step "dpdk-hugepages.py --pagesize 2M --setup $hugepages"
say "  to keep them across reboots: default_hugepagesz=2M hugepagesz=2M hugepages=<count> on the kernel command line"

# --- CPUs ----------------------------------------------------------------------------
cpus=$(nproc --all)
say "CPUs: $cpus"
if [ "$cpus" -lt $((workers + 2)) ]; then
  say "  warning: $workers workers + the main lcore + the OS need $((workers + 2)) CPUs, this host has $cpus; workers will share CPUs"
fi
first=2; last=$((first + workers - 1))
if [ "$last" -ge "$cpus" ]; then first=1; last=$((cpus - 1)); fi
if [ "$last" -ge "$first" ]; then
  list="$first-$last"; [ "$first" = "$last" ] && list="$first"
  say "  advice: keep the OS on CPU 0, the main lcore (control plane) on CPU 1, workers on CPUs $list;"
  say "  add to the kernel command line: isolcpus=$list nohz_full=$list rcu_nocbs=$list"
  lcores="0@1"
  for i in $(seq 1 "$workers"); do lcores="$lcores,$i@$(( (first + i - 1) < cpus ? first + i - 1 : cpus - 1 ))"; done
  say "  and in the config: dataplane.eal: [..., --lcores, \"$lcores\"] (lcore 0 is the main lcore; see docs/tuning.md)"
fi
grep -q isolcpus /proc/cmdline && say "  the running kernel has: $(tr ' ' '\n' < /proc/cmdline | grep -E 'isolcpus|nohz_full|rcu_nocbs' | tr '\n' ' ')"

# --- the plan ------------------------------------------------------------------------
say "plan:"
for s in "${plan[@]}"; do say "  $([ "$apply" = 1 ] && echo run || echo would run): $s"; done
if [ "$problems" -gt 0 ]; then
  say "$problems problem(s): nothing done"
  exit 1
fi
if [ "$apply" = 0 ]; then
  say "dry run: nothing changed; run again with --apply (as root) to do it"
  exit 0
fi
for s in "${plan[@]}"; do
  say "+ $s"
  eval "$s"
done
say "done; now edit /etc/stakegate/stakegate.yaml and: systemctl start stakegate"
