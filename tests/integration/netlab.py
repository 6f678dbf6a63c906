"""Network namespaces and veth pairs for end-to-end tests, removed on exit even on failure.

Every name carries the creating process's pid (`sge<pid>-<name>` for namespaces,
`sge<pid><suffix>` for links left in the root namespace), so concurrent runs do not
collide and a later run can remove what a killed run left behind.
"""
import json
import os
import re
import signal
import subprocess
import sys
import time

from common import Gateway, TempDir, check, die_with_parent, finish, free_port

PREFIX = "sge"
HERE = os.path.dirname(os.path.abspath(__file__))
NETPROG = os.path.join(HERE, "netprog.py")


class LabError(RuntimeError):
    pass


def sh(args, check=True, ns=None):
    if ns:
        args = ["ip", "netns", "exec", ns, *args]
    p = subprocess.run(args, capture_output=True, text=True, timeout=30)
    if check and p.returncode != 0:
        raise LabError(f"`{' '.join(args)}` failed ({p.returncode}): {p.stderr.strip() or p.stdout.strip()}")
    return p


def remove_stale():
    """Deletes namespaces and root links of earlier runs whose process is gone."""
    out = sh(["ip", "netns", "list"], check=False).stdout
    for line in out.splitlines():
        m = re.match(rf"({PREFIX}(\d+)-\S+)", line)
        if m and not os.path.exists(f"/proc/{m.group(2)}"):
            kill_ns_processes(m.group(1))
            sh(["ip", "netns", "del", m.group(1)], check=False)
    links = json.loads(sh(["ip", "-j", "link", "show"], check=False).stdout or "[]")
    for link in links:
        m = re.match(rf"{PREFIX}(\d+)[a-z]+$", link.get("ifname", ""))
        if m and not os.path.exists(f"/proc/{m.group(1)}"):
            sh(["ip", "link", "del", link["ifname"]], check=False)


def kill_ns_processes(ns):
    pids = sh(["ip", "netns", "pids", ns], check=False).stdout.split()
    for pid in pids:
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass


class Lab:
    """Namespaces, veths and the processes started in them. Use as a context manager."""

    def __init__(self):
        self.tag = f"{PREFIX}{os.getpid()}"
        self.namespaces = []
        self.root_links = []
        self.procs = []

    # -- lifetime --------------------------------------------------------------------
    def __enter__(self):
        if os.geteuid() != 0:
            raise LabError("this test needs root (network namespaces and veth pairs); CI runs as root")
        for tool in ("ip", "ethtool"):
            if sh(["sh", "-c", f"command -v {tool}"], check=False).returncode != 0:
                raise LabError(f"`{tool}` is not installed (scripts/setup.sh installs it)")
        remove_stale()
        # A SIGTERM (meson's timeout, a CI cancel) must still clean up: turn it into an exception.
        self._old_term = signal.signal(signal.SIGTERM, self._on_term)
        return self

    def _on_term(self, *_):
        raise KeyboardInterrupt("SIGTERM")

    def __exit__(self, *exc):
        self.cleanup()
        signal.signal(signal.SIGTERM, self._old_term)
        return False

    def cleanup(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
        for p in self.procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        for ns in reversed(self.namespaces):
            kill_ns_processes(ns)
            sh(["ip", "netns", "del", ns], check=False)
        for link in self.root_links:
            sh(["ip", "link", "del", link], check=False)
        left = [ns for ns in self.namespaces if os.path.exists(f"/run/netns/{ns}")]
        if left:
            print(f"warning: could not remove namespaces {left}", file=sys.stderr)
        self.namespaces, self.root_links = [], []

    # -- topology --------------------------------------------------------------------
    def ns(self, name):
        return f"{self.tag}-{name}"

    def root_link(self, suffix):
        return f"{self.tag}{suffix}"

    def add_ns(self, name, ipv6=False):
        ns = self.ns(name)
        sh(["ip", "netns", "add", ns])
        self.namespaces.append(ns)
        # IPv6 off (unless asked for) before any interface exists: no router solicitations
        # or MLD reports, so every frame a host sends is one the test asked for.
        if not ipv6:
            for key in ("all", "default"):
                path = f"net.ipv6.conf.{key}.disable_ipv6"
                sh(["sysctl", "-qw", f"{path}=1"], ns=ns, check=False)
        sh(["ip", "link", "set", "lo", "up"], ns=ns)
        return ns

    def veth(self, a_ns, a_if, b_ns, b_if):
        """A veth pair; a namespace of None means the root namespace. Offloads are turned
        off on both ends (checksum and segmentation offloads leave partial checksums that
        a packet socket forwards as they are, and TCP through the gateway then stalls)."""
        def end(ns, ifname):
            return [ifname] + (["netns", ns] if ns else [])
        # Both ends are made in their namespaces at once (a name like eth0 exists in the root one).
        sh(["ip", "link", "add", *end(a_ns, a_if), "type", "veth", "peer", "name", *end(b_ns, b_if)])
        for ns, ifname in ((a_ns, a_if), (b_ns, b_if)):
            if ns is None:
                self.root_links.append(ifname)
                sh(["sysctl", "-qw", f"net.ipv6.conf.{ifname}.disable_ipv6=1"], check=False)
            sh(["ethtool", "-K", ifname, "tx", "off", "tso", "off", "gso", "off", "gro", "off"], ns=ns)
            sh(["ip", "link", "set", ifname, "up"], ns=ns)

    def bridge(self, ns, name, ports):
        # No multicast snooping: the bridge would otherwise join 224.0.0.106 itself and send
        # an IGMP report of its own through the gateway.
        sh(["ip", "link", "add", name, "type", "bridge", "stp_state", "0", "forward_delay", "0",
            "mcast_snooping", "0"], ns=ns)
        for port in ports:
            sh(["ip", "link", "set", port, "master", name], ns=ns)
        sh(["ip", "link", "set", name, "up"], ns=ns)

    def switched(self, hosts, cluster, ipv6=False):
        """The usual topology: each outside host (name -> its CIDRs) in a namespace on a
        bridge in namespace `sw`, whose uplink is the gateway's outside link; namespace
        `cl` (the cluster, with `cluster` CIDRs) on its inside link."""
        sw = self.add_ns("sw", ipv6)
        ports = []
        for name, cidrs in hosts.items():
            ns = self.add_ns(name, ipv6)
            self.veth(ns, "eth0", sw, f"p-{name}")
            for c in cidrs:
                self.address(ns, "eth0", c)
            ports.append(f"p-{name}")
        self.veth(sw, "uplink", None, self.root_link("o"))
        self.bridge(sw, "br0", ports + ["uplink"])
        cl = self.add_ns("cl", ipv6)
        self.veth(cl, "eth0", None, self.root_link("i"))
        for c in cluster:
            self.address(cl, "eth0", c)

    def address(self, ns, ifname, cidr):
        # IPv6 addresses skip duplicate address detection: usable at once.
        sh(["ip", "addr", "add", cidr, "dev", ifname, *(["nodad"] if ":" in cidr else [])], ns=ns)

    def route(self, ns, prefix, via):
        sh(["ip", "route", "add", prefix, "via", via], ns=ns)

    def mtu(self, ns, ifname, mtu):
        sh(["ip", "link", "set", ifname, "mtu", str(mtu)], ns=ns)

    def sysctl(self, ns, key, value):
        sh(["sysctl", "-qw", f"{key}={value}"], ns=ns)

    def mac(self, ns, ifname):
        return json.loads(sh(["ip", "-j", "link", "show", ifname], ns=ns).stdout)[0]["address"]

    def link_local(self, ns, ifname):
        """The interface's IPv6 link-local address (the kernel's own, from its MAC)."""
        links = json.loads(sh(["ip", "-j", "-6", "addr", "show", "dev", ifname], ns=ns).stdout)
        return next(a["local"] for a in links[0]["addr_info"] if a.get("scope") == "link" and "local" in a)

    def offload(self, ns, ifname, feature):
        """Whether an offload (ethtool -k name, e.g. generic-receive-offload) is on."""
        for line in sh(["ethtool", "-k", ifname], ns=ns).stdout.splitlines():
            if line.startswith(feature + ":"):
                return line.split()[1] == "on"
        raise LabError(f"ethtool -k {ifname}: no {feature}")

    def link_stats(self, ns, ifname):
        info = json.loads(sh(["ip", "-j", "-s", "link", "show", ifname], ns=ns).stdout)[0]
        return info["stats64"]

    # -- processes -------------------------------------------------------------------
    def spawn(self, ns, args, **kw):
        """A process in namespace ns (stdout and stderr pipes unless kw says otherwise)."""
        opts = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True,
                "preexec_fn": die_with_parent, **kw}
        p = subprocess.Popen(["ip", "netns", "exec", ns, *args], **opts)
        self.procs.append(p)
        return p

    def prog(self, ns, *args):
        return Prog(self.spawn(ns, [sys.executable, NETPROG, *map(str, args)]))


def af_packet_dataplane(lab, workers=1):
    """The `dataplane` section of a gateway inline on the lab's two root links."""
    return {"eal": ["--no-huge", "-m", "512", "--no-pci", "--no-shconf"],
            "outside": {"vdev": f"net_af_packet0,iface={lab.root_link('o')},framecnt=4096"},
            "inside": {"vdev": f"net_af_packet1,iface={lab.root_link('i')},framecnt=4096"},
            "workers": workers}


def run_inline(build_topology, write_config, phases, after=None):
    """The frame of every namespace test: a lab, its topology, the gateway inline between
    its root links (config from write_config(d, lab, metrics_port)), phases(lab, d, gw,
    metrics_port), then the gateway's clean exit (and after(lab, d, stderr) if given, with
    the namespaces still there); the namespaces are removed in any case."""
    with TempDir() as d:
        try:
            with Lab() as lab:
                build_topology(lab)
                metrics_port = free_port()
                cfg = write_config(d, lab, metrics_port)
                gw = Gateway(cfg, os.path.join(d, "control.sock"))
                try:
                    phases(lab, d, gw, metrics_port)
                finally:
                    rc, out, err = gw.stop()
                    check(rc == 0, f"gateway exited {rc} after SIGTERM")
                if after:
                    after(lab, d, err)
        except LabError as e:
            print(f"FAIL namespace test set-up: {e}", file=sys.stderr)
            sys.exit(1)
    finish()


class Prog:
    """A netprog.py subcommand: reads its JSON lines on a thread, as they come."""

    def __init__(self, proc):
        import threading
        self.proc = proc
        self.lines = []
        self.err = ""
        self._t = threading.Thread(target=self._read, daemon=True)
        self._t.start()
        self._te = threading.Thread(target=self._read_err, daemon=True)
        self._te.start()

    def _read(self):
        for line in self.proc.stdout:
            try:
                self.lines.append(json.loads(line))
            except ValueError:
                self.lines.append({"text": line.rstrip()})

    def _read_err(self):
        self.err = self.proc.stderr.read()

    def wait_event(self, event, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if any(l.get("event") == event for l in self.lines):
                return True
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        raise LabError(f"no '{event}' from {self.proc.args}: exit {self.proc.poll()} {self.err}")

    def acked(self):
        """The last byte count the server acknowledged, and when (client clock)."""
        acks = [l for l in self.lines if "acked" in l]
        return acks[-1]["acked"] if acks else 0

    def result(self, timeout=30):
        """The last JSON line, once the program has exited."""
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise LabError(f"{self.proc.args} did not finish in {timeout} s")
        self._t.join(5)
        self._te.join(5)
        if not self.lines:
            raise LabError(f"{self.proc.args} printed nothing (exit {self.proc.returncode}): {self.err}")
        return self.lines[-1]

    def stop(self, timeout=10):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.result(timeout)
