#!/usr/bin/env python3
"""scripts/host-setup.sh (installed as stakegate-host-setup): its dry run on this machine
prints a plan and changes nothing, and it refuses to bind the interface that carries the
management address."""
import os
import subprocess

from common import SOURCE, check, finish

SCRIPT = os.path.join(SOURCE, "scripts", "host-setup.sh")


def state():
    """What the script could change: hugepages, driver bindings, link states."""
    hp = {f: open(f"/sys/kernel/mm/hugepages/{f}/nr_hugepages").read() for f in os.listdir("/sys/kernel/mm/hugepages")}
    drivers = {d: os.path.realpath(f"/sys/bus/pci/devices/{d}/driver") for d in os.listdir("/sys/bus/pci/devices")}
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    modules = open("/proc/modules").read() if os.path.exists("/proc/modules") else ""
    return hp, drivers, [l.split(" qdisc")[0] for l in links.splitlines()], "vfio_pci" in modules


before = state()
p = subprocess.run(["bash", SCRIPT, "--workers", "1", "--hugepages", "1G"], capture_output=True, text=True)
out = p.stdout
check(p.returncode == 0 and "dry run: nothing is changed" in out and "dry run: nothing changed" in out, "dry run exits 0 and says so")
for part in ("management interfaces (never bound):", "network ports with a PCI address:", "hugepages:",
             "would run: dpdk-hugepages.py --pagesize 2M --setup 1G", "isolcpus=", "--lcores"):
    check(part in out, f"the plan shows '{part}'")
mgmt = subprocess.run(["ip", "-o", "route", "show", "default"], capture_output=True, text=True).stdout.split()
dev = mgmt[mgmt.index("dev") + 1] if "dev" in mgmt else None
if dev:
    check(f"{dev}: default route" in out, f"it names the management interface ({dev})")
else:  # a host without a default route: the interfaces with global addresses are still listed
    check("management interfaces (never bound):" in out, "no default route here: management found by address only")
if dev:
    r = subprocess.run(["bash", SCRIPT, "--outside", dev, "--inside", "nonexistent0"], capture_output=True, text=True)
    check(r.returncode == 1 and f"REFUSED: outside port {dev}" in r.stdout and "management address" in r.stdout
          and "nothing done" in r.stdout, f"binding {dev} is refused: it carries the management address")
    check("dpdk-devbind.py --bind=vfio-pci" not in r.stdout, "no bind command is planned for a refused port")
r = subprocess.run(["bash", SCRIPT, "--workers", "zero"], capture_output=True, text=True)
check(r.returncode == 2 and "--workers must be a positive number" in r.stderr, "bad arguments are refused")
check(state() == before, "hugepages, driver bindings, links and modules are exactly as before")
finish()
