"""Open vSwitch with DPDK as a peer in scripts/bench.py (see ../shared/PEERS.md for how
it was first measured by hand).

An OvsPeer runs Debian's ovs-vswitchd-dpdk in a folder of its own (ovsdb-server started by
hand, every file and socket in that folder, both stopped by PID), with one netdev bridge
whose two ports are the benchmark's DPDK virtual devices, and one of two flow tables:

- plain: everything from the looped port goes out of the other one;
- meters: what an operator would write to police per source with OpenFlow 1.3, one meter
  (a drop band, packets per second) and one flow per identity address, and one shared
  meter for what anyone may send to the public ports; everything else is dropped.

100,000 meters loaded one `ovs-ofctl add-meter` at a time take about ten minutes, so
meters go over one OpenFlow connection (MeterLoader: a few OpenFlow 1.3 messages written
here, as neither ovs-ofctl nor a Debian Python package loads meters in bulk), flows as
one OpenFlow 1.4 bundle (`ovs-ofctl --bundle add-flows`).
"""
import ipaddress
import os
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time

OVS_VSWITCHD = "/usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk"
SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"
U32_MAX = (1 << 32) - 1

OFP13 = 4
OFPT_ERROR, OFPT_ECHO_REQUEST, OFPT_ECHO_REPLY = 1, 2, 3
OFPT_BARRIER_REQUEST, OFPT_BARRIER_REPLY, OFPT_METER_MOD = 20, 21, 29
OFPMC_ADD, OFPMF_PKTPS, OFPMBT_DROP = 0, 0x2, 1


def available():
    return all(os.path.exists(p) for p in (OVS_VSWITCHD, SCHEMA)) and shutil.which("ovsdb-server") is not None


def _msg(kind, xid, body=b""):
    return struct.pack("!BBHI", OFP13, kind, 8 + len(body), xid) + body


def load_meters(mgmt_socket, meters, timeout=300):
    """Adds meters [(id, packets per second)] over one OpenFlow connection; a barrier at the
    end says when the switch has applied them all. Raises on any error the switch sends."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(timeout)
    s.connect(mgmt_socket)
    s.sendall(_msg(0, 0))  # OFPT_HELLO
    barrier_xid = 0xFFFFFFFF

    def send():
        buf = bytearray()
        for mid, rate in meters:
            band = struct.pack("!HHII4x", OFPMBT_DROP, 16, min(max(int(rate), 1), U32_MAX), 0)
            buf += _msg(OFPT_METER_MOD, mid, struct.pack("!HHI", OFPMC_ADD, OFPMF_PKTPS, mid) + band)
            if len(buf) >= 1 << 16:
                s.sendall(buf)
                buf.clear()
        s.sendall(bytes(buf) + _msg(OFPT_BARRIER_REQUEST, barrier_xid))

    sender = threading.Thread(target=send, daemon=True)  # the switch's replies are read meanwhile
    sender.start()
    data, errors = b"", []
    try:
        while True:
            chunk = s.recv(1 << 16)
            if not chunk:
                raise RuntimeError("ovs-vswitchd closed the OpenFlow connection while meters were loading")
            data += chunk
            while len(data) >= 8:
                _, kind, length, xid = struct.unpack("!BBHI", data[:8])
                if len(data) < length:
                    break
                body, data = data[8:length], data[length:]
                if kind == OFPT_ERROR:
                    errors.append((xid, *struct.unpack("!HH", body[:4])))
                elif kind == OFPT_ECHO_REQUEST:
                    s.sendall(_msg(OFPT_ECHO_REPLY, xid, body))
                elif kind == OFPT_BARRIER_REPLY and xid == barrier_xid:
                    sender.join()
                    if errors:
                        mid, etype, code = errors[0]
                        raise RuntimeError(f"{len(errors)} meters refused, first meter {mid}: OpenFlow error type {etype} code {code}")
                    return
    finally:
        s.close()


class OvsPeer:
    """One ovs-vswitchd-dpdk on the given vdevs; `mode` is "plain" or "meters"."""

    def __init__(self, folder, vdevs, memory_mb):
        self.dir = folder
        self.vdevs = vdevs  # [looped port's devargs (OpenFlow port 1, the one measured), other port's]
        self.memory_mb = memory_mb
        self.env = dict(os.environ, OVS_RUNDIR=folder, OVS_LOGDIR=folder, OVS_DBDIR=folder, RUNTIME_DIRECTORY=folder)
        self.db = f"unix:{folder}/db.sock"
        self.mgmt = f"{folder}/br0.mgmt"

    def _run(self, *cmd, timeout=120):
        p = subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=timeout)
        if p.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd[:3])}...: {p.stderr.strip() or p.stdout.strip()}")
        return p.stdout

    def _vsctl(self, *args):
        return self._run("ovs-vsctl", f"--db={self.db}", "--timeout=60", *args)

    def _ofctl(self, *args, version="OpenFlow13"):
        return self._run("ovs-ofctl", "-O", version, *args, timeout=600)

    def start(self):
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir)
        self._run("ovsdb-tool", "create", f"{self.dir}/conf.db", SCHEMA)
        self._run("ovsdb-server", f"{self.dir}/conf.db", f"--remote=punix:{self.dir}/db.sock",
                  f"--pidfile={self.dir}/ovsdb.pid", f"--unixctl={self.dir}/ovsdb.ctl",
                  f"--log-file={self.dir}/ovsdb.log", "--detach")
        self._vsctl("--no-wait", "init")
        # --legacy-mem: without it OVS adds --in-memory, which DPDK 22.11 refuses with --no-huge.
        extra = f"--no-huge -m {self.memory_mb} --no-pci --no-shconf --legacy-mem --file-prefix bench-ovs-{os.getpid()}"
        self._vsctl("--no-wait", "set", "Open_vSwitch", ".", "other_config:dpdk-init=true",
                    "other_config:dpdk-lcore-mask=0x1", "other_config:pmd-cpu-mask=0x2", f"other_config:dpdk-extra={extra}")
        self._run(OVS_VSWITCHD, self.db, f"--pidfile={self.dir}/vswitchd.pid", f"--unixctl={self.dir}/vswitchd.ctl",
                  f"--log-file={self.dir}/vswitchd.log", "--detach", timeout=180)
        self._vsctl("add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=netdev",
                    "protocols=OpenFlow13,OpenFlow14", "fail_mode=secure")
        for i, devargs in enumerate(self.vdevs):
            self._vsctl("add-port", "br0", f"p{i + 1}", "--", "set", "Interface", f"p{i + 1}", "type=dpdk",
                        f"options:dpdk-devargs={devargs}", f"ofport_request={i + 1}")
            # add-port succeeds even when the device cannot be configured (a net_pcap capture
            # larger than OVS's mbuf pool, for one): the interface then has no OpenFlow port.
            if self._vsctl("get", "Interface", f"p{i + 1}", "ofport").strip() != str(i + 1):
                error = self._vsctl("get", "Interface", f"p{i + 1}", "error").strip()
                raise RuntimeError(f"port p{i + 1} ({devargs.split(',')[0]}) was not added: {error}")

    def max_meters(self):
        out = self._ofctl("meter-features", self.mgmt)
        return int(out.split("max_meter:")[1].split()[0])

    def configure(self, mode, identities=(), node_rate=None, public_ports=(), public_rate=0):
        """plain: port 1 to port 2. meters: one meter and flow per identity address
        (identities: [address]; node_rate(i): its packets per second), one shared meter for
        TCP and UDP to the public ports, nothing else."""
        if mode == "plain":
            self._ofctl("add-flow", self.mgmt, "in_port=1,actions=output:2")
            return
        shared = len(identities) + 1
        load_meters(self.mgmt, [(i + 1, node_rate(i)) for i in range(len(identities))] + [(shared, public_rate)])
        flows = f"{self.dir}/flows.txt"
        with open(flows, "w") as f:
            for i, addr in enumerate(identities):
                match = f"ipv6,ipv6_src={addr}" if ipaddress.ip_address(addr).version == 6 else f"ip,nw_src={addr}"
                f.write(f"priority=10,in_port=1,{match},actions=meter:{i + 1},output:2\n")
            for port in public_ports:
                for proto in ("tcp", "udp", "tcp6", "udp6"):
                    f.write(f"priority=5,in_port=1,{proto},tp_dst={port},actions=meter:{shared},output:2\n")
        self._ofctl("--bundle", "add-flows", self.mgmt, flows, version="OpenFlow14")

    def rx_packets(self):
        out = self._ofctl("dump-ports", self.mgmt, "1")
        if "rx pkts=" not in out:
            raise RuntimeError(f"no statistics for port 1: {out.strip()}")
        return int(out.split("rx pkts=")[1].split(",")[0])

    def sample_rates(self, seconds):
        """Per-second input-port rates in Mpps, the first (warm-up) sample dropped."""
        rates, last, t_last = [], self.rx_packets(), time.monotonic()
        while len(rates) < seconds + 1:
            time.sleep(1)
            now, t = self.rx_packets(), time.monotonic()
            rates.append((now - last) / (t - t_last) / 1e6)
            last, t_last = now, t
        return rates[1:]

    def stop(self):
        # The bridge first: ovs-vswitchd leaves a kernel tap behind otherwise.
        try:
            self._vsctl("--if-exists", "del-br", "br0")
        except (RuntimeError, subprocess.TimeoutExpired):
            pass
        for name in ("vswitchd", "ovsdb"):
            try:
                pid = int(open(f"{self.dir}/{name}.pid").read())
            except (OSError, ValueError):
                continue
            try:
                os.kill(pid, signal.SIGTERM)
                for _ in range(100):
                    if not _alive(pid):
                        break
                    time.sleep(0.1)
                else:
                    os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _alive(pid):
    """Running (a zombie waiting for whoever adopted it counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
