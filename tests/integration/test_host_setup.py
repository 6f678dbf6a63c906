#!/usr/bin/env python3
"""scripts/host-setup.py (installed as stakegate-host-setup): its dry run on this machine
prints a plan and changes nothing; it refuses to bind the interface that carries the
management address, and a port that carries it through a bridge or a VLAN on top of it
(checked in a network namespace the test makes)."""
import os
import subprocess

from common import SOURCE, check, finish

SCRIPT = os.path.join(SOURCE, "scripts", "host-setup.py")
PY = "/usr/bin/python3"


def state():
    """What the script could change: hugepages, driver bindings, link states."""
    hp = {f: open(f"/sys/kernel/mm/hugepages/{f}/nr_hugepages").read() for f in os.listdir("/sys/kernel/mm/hugepages")}
    drivers = {d: os.path.realpath(f"/sys/bus/pci/devices/{d}/driver") for d in os.listdir("/sys/bus/pci/devices")}
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    modules = open("/proc/modules").read() if os.path.exists("/proc/modules") else ""
    return hp, drivers, [l.split(" qdisc")[0] for l in links.splitlines()], "vfio_pci" in modules


def ns(name, *args):
    return subprocess.run(["ip", "netns", "exec", name, *args], capture_output=True, text=True)


before = state()
p = subprocess.run([PY, SCRIPT, "--workers", "1", "--hugepages", "1G"], capture_output=True, text=True)
out = p.stdout
check(p.returncode == 0 and "dry run: nothing is changed" in out and "dry run: nothing changed" in out, "dry run exits 0 and says so")
for part in ("management interfaces (never bound):", "network ports with a PCI address:", "hugepages:",
             "would run: dpdk-hugepages.py --pagesize 2M --setup 1G", "isolcpus=", "--lcores"):
    check(part in out, f"the plan shows '{part}'")
mgmt = subprocess.run(["ip", "-o", "route", "show", "default"], capture_output=True, text=True).stdout.split()
dev = mgmt[mgmt.index("dev") + 1] if "dev" in mgmt else None
if dev:
    check(f"{dev}: default route" in out, f"it names the management interface ({dev})")
    r = subprocess.run([PY, SCRIPT, "--outside", dev, "--inside", "nonexistent0"], capture_output=True, text=True)
    check(r.returncode == 1 and f"REFUSED: outside port {dev}" in r.stdout and "management address" in r.stdout
          and "nothing done" in r.stdout, f"binding {dev} is refused: it carries the management address")
    check("dpdk-devbind.py --bind=vfio-pci" not in r.stdout, "no bind command is planned for a refused port")
else:  # a host without a default route: the interfaces with global addresses are still listed
    check("management interfaces (never bound):" in out, "no default route here: management found by address only")
r = subprocess.run([PY, SCRIPT, "--workers", "zero"], capture_output=True, text=True)
check(r.returncode == 2 and "--workers must be a positive number" in r.stderr, "bad arguments are refused")

# Management through a bridge and a VLAN: the ports underneath must be refused too.
name = f"sge{os.getpid()}-hs"
subprocess.run(["ip", "netns", "add", name], check=True)
try:
    for cmd in (["ip", "link", "add", "br0", "type", "bridge"], ["ip", "link", "add", "p0", "type", "veth", "peer", "q0"],
                ["ip", "link", "set", "p0", "master", "br0"], ["ip", "addr", "add", "198.18.250.1/24", "dev", "br0"],
                ["ip", "link", "add", "p1", "type", "veth", "peer", "q1"]):
        ns(name, *cmd)
    # A VLAN on p1 carries the address; a kernel without 8021q gets a macvlan instead
    # (the same kind of stacking: the script follows /sys/class/net/*/lower_* either way).
    if ns(name, "ip", "link", "add", "link", "p1", "name", "p1.100", "type", "vlan", "id", "100").returncode != 0:
        ns(name, "ip", "link", "add", "link", "p1", "name", "p1.100", "type", "macvlan")
    ns(name, "ip", "addr", "add", "198.18.251.1/24", "dev", "p1.100")
    for link in ("br0", "p0", "q0", "p1", "q1", "p1.100"):
        ns(name, "ip", "link", "set", link, "up")
    r = ns(name, PY, SCRIPT, "--outside", "p0", "--inside", "p1")
    check(r.returncode == 1 and "REFUSED: outside port p0 carries the management address (under br0" in r.stdout,
          "a bridge port under the management bridge is refused")
    check("REFUSED: inside port p1 carries the management address (under p1.100" in r.stdout,
          "the parent of a management VLAN (or macvlan) is refused")
    r = ns(name, PY, SCRIPT, "--outside", "q0", "--inside", "q1")
    check("REFUSED: outside port q0 carries" not in r.stdout and "neither a PCI address" in r.stdout,
          "a port outside the management stack is not called management (only refused for having no PCI device)")
finally:
    subprocess.run(["ip", "netns", "del", name])
check(state() == before, "hugepages, driver bindings, links and modules are exactly as before")
finish()
