#!/usr/bin/env python3
"""stakegate-host-setup: prepares a dedicated server for stakegate (docs/deployment.md).

    stakegate-host-setup [--outside IF|PCI] [--inside IF|PCI] [--hugepages SIZE]
                         [--workers N] [--apply]

Without --apply it is a dry run: it inspects the host, prints every command it would run
and the CPU isolation to put on the kernel command line, and changes nothing. With
--apply (as root) it reserves hugepages and binds the two ports to vfio-pci.

It refuses to touch an interface that carries the management address (the default route,
the address of this SSH session, or any global address), including a port that carries
it through a bond, a bridge or a VLAN on top of it.
"""
import argparse
import glob
import json
import os
import re
import shlex
import subprocess
import sys

PCI_RE = re.compile(r"^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-9a-f]$")
SYS_NET = "/sys/class/net"


def sh(*args):
    p = subprocess.run(args, capture_output=True, text=True)
    return p.stdout if p.returncode == 0 else ""


def ip_json(*args):
    try:
        return json.loads(sh("ip", "-j", *args) or "[]")
    except json.JSONDecodeError:
        return []


def lower_devices(dev):
    """The devices under `dev` (bond slaves, bridge ports, a VLAN's parent), recursively."""
    out = set()
    for link in glob.glob(f"{SYS_NET}/{dev}/lower_*"):
        low = os.path.basename(link)[len("lower_"):]
        if low not in out:
            out.add(low)
            out |= lower_devices(low)
    return out


def management_interfaces():
    """Interface -> why it must never be bound; what sits under one of them is management too."""
    why = {}
    for r in ip_json("route", "show", "default") + ip_json("-6", "route", "show", "default"):
        if r.get("dev"):
            why.setdefault(r["dev"], "default route")
    ssh = os.environ.get("SSH_CONNECTION", "").split()
    addrs = ip_json("addr", "show")
    if len(ssh) >= 3:
        for link in addrs:
            if any(a.get("local") == ssh[2] for a in link.get("addr_info", [])):
                why[link["ifname"]] = f"this SSH session ({ssh[2]})"
    for link in addrs:
        for a in link.get("addr_info", []):
            if a.get("scope") == "global":
                why.setdefault(link["ifname"], f"global address {a['local']}/{a.get('prefixlen')}")
    for dev, reason in list(why.items()):
        for low in lower_devices(dev):
            why.setdefault(low, f"under {dev} ({reason})")
    return why


def pci_of(x):
    """Interface name or PCI address -> PCI address (None if neither)."""
    for cand in (x, "0000:" + x):
        if PCI_RE.match(cand) and os.path.exists(f"/sys/bus/pci/devices/{cand}"):
            return cand
    dev = f"{SYS_NET}/{x}/device"
    if not os.path.exists(dev):
        return None
    p = os.path.realpath(dev)
    while p != "/" and not PCI_RE.match(os.path.basename(p)):  # virtio-net: its PCI parent
        p = os.path.dirname(p)
    return None if p == "/" else os.path.basename(p)


def netdev_of(pci):
    """PCI address -> kernel interface name (None when bound to a DPDK driver)."""
    for n in sorted(os.listdir(SYS_NET)):
        if os.path.exists(f"{SYS_NET}/{n}/device") and pci_of(n) == pci:
            return n
    return None


def driver_of(pci):
    link = f"/sys/bus/pci/devices/{pci}/driver"
    return os.path.basename(os.path.realpath(link)) if os.path.exists(link) else ""


UDEV_RULE = "/etc/udev/rules.d/60-stakegate-vfio.rules"


class Plan:
    def __init__(self, apply):
        self.apply, self.steps, self.problems, self.files = apply, [], 0, []

    def say(self, text=""):
        print(text, flush=True)

    def refuse(self, text):
        self.say(f"  REFUSED: {text}")
        self.problems += 1

    def step(self, *argv):
        self.steps.append(list(argv))

    def write(self, path, text):
        self.files.append((path, text))


def iommu_group(pci):
    try:
        return os.path.basename(os.readlink(f"/sys/bus/pci/devices/{pci}/iommu_group"))
    except OSError:
        return None


def check_port(plan, role, x, mgmt):
    if x in mgmt:
        plan.refuse(f"{role} port {x} carries the management address ({mgmt[x]}): binding it would cut this host off")
        return
    pci = pci_of(x)
    if not pci:
        plan.refuse(f"{role} port '{x}' is neither a PCI address nor an interface with a PCI device")
        return
    dev = netdev_of(pci)
    if dev and dev in mgmt:
        plan.refuse(f"{role} port {dev} ({pci}) carries the management address ({mgmt[dev]}): binding it would cut this host off")
        return
    drv = driver_of(pci)
    plan.say(f"  {role}: {pci}{f' ({dev})' if dev else ''}, driver {drv or 'none'}")
    plan.groups.append((role, pci, iommu_group(pci)))
    if drv == "vfio-pci":
        plan.say("    already bound to vfio-pci")
        return
    if dev:
        plan.step("ip", "link", "set", dev, "down")
    plan.step("dpdk-devbind.py", "--bind=vfio-pci", pci)


def main():
    ap = argparse.ArgumentParser(prog="stakegate-host-setup", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--outside", help="interface or PCI address of the outside port")
    ap.add_argument("--inside", help="interface or PCI address of the inside port")
    ap.add_argument("--hugepages", default="2G", help="hugepage memory to reserve, e.g. 512M or 2G")
    ap.add_argument("--workers", default="2", help="worker lcores the CPU advice plans for")
    ap.add_argument("--apply", action="store_true", help="do it (as root); without it nothing changes")
    ap.add_argument("--dry-run", dest="apply", action="store_false", help="only print the plan (the default)")
    a = ap.parse_args()
    if not re.fullmatch(r"[1-9][0-9]*", a.workers):
        ap.error("--workers must be a positive number")
    if not re.fullmatch(r"[0-9]+[MG]", a.hugepages):
        ap.error("--hugepages must look like 512M or 2G")
    workers = int(a.workers)
    if a.apply and os.geteuid() != 0:
        ap.error("--apply needs root")

    plan = Plan(a.apply)
    plan.groups = []
    plan.say(f"== stakegate host set-up ({'apply' if a.apply else 'dry run: nothing is changed'})")
    mgmt = management_interfaces()
    plan.say("management interfaces (never bound):")
    if not mgmt:
        plan.say("  none found")
    for dev, reason in sorted(mgmt.items()):
        plan.say(f"  {dev}: {reason}")

    plan.say("network ports with a PCI address:")
    found = 0
    for dev in sorted(os.listdir(SYS_NET)):
        pci = pci_of(dev) if os.path.exists(f"{SYS_NET}/{dev}/device") else None
        if pci:
            found += 1
            plan.say(f"  {dev} {pci} driver {driver_of(pci)}{f' (management: {mgmt[dev]})' if dev in mgmt else ''}")
    if not found:
        plan.say("  none (virtual machine or container without a NIC: use net_af_packet or net_pcap vdevs to try stakegate)")

    if a.outside or a.inside:
        plan.say("ports to bind:")
        if not a.outside:
            plan.refuse("--inside given without --outside")
        if not a.inside:
            plan.refuse("--outside given without --inside")
        if a.outside and a.inside and pci_of(a.outside) and pci_of(a.outside) == pci_of(a.inside):
            plan.refuse("--outside and --inside are the same device")
        for role, x in (("outside", a.outside), ("inside", a.inside)):
            if x:
                check_port(plan, role, x, mgmt)
        if not glob.glob("/sys/kernel/iommu_groups/*"):
            plan.say("  warning: no IOMMU groups: enable VT-d/AMD-Vi in the BIOS and add intel_iommu=on iommu=pt to the "
                     "kernel command line (vfio-pci needs it)")
        plan.step("modprobe", "vfio-pci")
        # The service user gets the VFIO groups of these two ports, and no other device.
        groups = [(r, pci, g) for r, pci, g in plan.groups if g]
        if len(groups) < len(plan.groups):
            plan.say("  warning: a port has no IOMMU group yet; run again after enabling the IOMMU to write the udev rule")
        if groups:
            lines = ["# Written by stakegate-host-setup: the stakegate service user may open the VFIO groups of",
                     "# its two ports (and no other device)."]
            for r, pci, g in groups:
                lines.append(f'SUBSYSTEM=="vfio", KERNEL=="{g}", GROUP="stakegate", MODE="0660"  # {r} port {pci}')
            plan.write(UDEV_RULE, "\n".join(lines) + "\n")
            plan.step("udevadm", "control", "--reload-rules")
            plan.step("udevadm", "trigger", "--subsystem-match=vfio")
    else:
        plan.say("ports to bind: none given (--outside and --inside)")

    plan.say("hugepages:")
    meminfo = dict(line.split(":", 1) for line in open("/proc/meminfo"))
    mounts = [line.split()[1] for line in open("/proc/mounts") if line.split()[2] == "hugetlbfs"]
    plan.say(f"  now: {meminfo.get('HugePages_Total', ' 0').strip()} pages of {meminfo.get('Hugepagesize', '?').strip()}; "
             f"mounted: {' '.join(mounts)}")
    plan.step("dpdk-hugepages.py", "--pagesize", "2M", "--setup", a.hugepages)
    plan.say("  to keep them across reboots: default_hugepagesz=2M hugepagesz=2M hugepages=<count> on the kernel command line")

    cpus = os.cpu_count() or 1
    plan.say(f"CPUs: {cpus}")
    if cpus < workers + 2:
        plan.say(f"  warning: {workers} workers + the main lcore + the OS need {workers + 2} CPUs, this host has {cpus}; "
                 "workers will share CPUs")
    first, last = 2, 2 + workers - 1
    if last >= cpus:
        first, last = 1, cpus - 1
    if last >= first:
        cpu_list = f"{first}-{last}" if last > first else str(first)
        plan.say(f"  advice: keep the OS on CPU 0, the main lcore (control plane) on CPU 1, workers on CPUs {cpu_list};")
        plan.say(f"  add to the kernel command line: isolcpus={cpu_list} nohz_full={cpu_list} rcu_nocbs={cpu_list}")
        lcores = ",".join(["0@1"] + [f"{i}@{min(first + i - 1, cpus - 1)}" for i in range(1, workers + 1)])
        plan.say(f'  and in the config: dataplane.eal: [..., --lcores, "{lcores}"] (lcore 0 is the main lcore; see docs/tuning.md)')
    cmdline = open("/proc/cmdline").read().split()
    iso = [w for w in cmdline if w.split("=")[0] in ("isolcpus", "nohz_full", "rcu_nocbs")]
    if iso:
        plan.say(f"  the running kernel has: {' '.join(iso)}")

    plan.say("plan:")
    for path, text in plan.files:
        plan.say(f"  {'write' if a.apply else 'would write'} {path}:")
        for line in text.splitlines():
            plan.say(f"    {line}")
    for s in plan.steps:
        plan.say(f"  {'run' if a.apply else 'would run'}: {shlex.join(s)}")
    if plan.problems:
        plan.say(f"{plan.problems} problem(s): nothing done")
        return 1
    if not a.apply:
        plan.say("dry run: nothing changed; run again with --apply (as root) to do it")
        return 0
    for path, text in plan.files:
        plan.say(f"+ write {path}")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path + ".tmp", "w") as f:
            f.write(text)
        os.replace(path + ".tmp", path)
    for s in plan.steps:
        plan.say(f"+ {shlex.join(s)}")
        r = subprocess.run(s)
        if r.returncode != 0:
            plan.say(f"failed ({r.returncode}): {shlex.join(s)}; stopping here")
            return 1
    plan.say("done; now edit /etc/stakegate/stakegate.yaml and: systemctl start stakegate")
    return 0


if __name__ == "__main__":
    sys.exit(main())
