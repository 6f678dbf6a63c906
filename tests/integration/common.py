"""Helpers for integration tests: run the real binaries, read captures, compare counts."""
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import signal

import yaml  # Debian's python3-yaml: tests run under /usr/bin/python3 (DESIGN.md pitfalls)

STAKEGATE = os.environ["STAKEGATE"]
SCENARIO = os.environ["STAKEGATE_SCENARIO"]
SOURCE = os.environ["STAKEGATE_SOURCE"]
EXAMPLES = os.environ["STAKEGATE_EXAMPLES"]

_failures = []


def check(cond, what):
    """Records a failed expectation (and keeps going, so one run shows every failure)."""
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        _failures.append(what)


def finish():
    if _failures:
        print(f"{len(_failures)} check(s) failed", file=sys.stderr)
        sys.exit(1)
    print("all checks passed")


def run(args, expect_rc=0, timeout=240, **kw):
    p = subprocess.run(args, capture_output=True, text=True, timeout=timeout, **kw)
    if expect_rc is not None and p.returncode != expect_rc:
        print(f"command {args} exited {p.returncode}, expected {expect_rc}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}",
              file=sys.stderr)
        sys.exit(1)
    return p


class TempDir:
    def __enter__(self):
        self.path = tempfile.mkdtemp(prefix="stakegate-it-")
        return self.path

    def __exit__(self, *exc):
        shutil.rmtree(self.path, ignore_errors=True)


def generate(out, *opts):
    run([SCENARIO, "--out", out, *map(str, opts)])
    with open(os.path.join(out, "expected.json")) as f:
        return json.load(f)


def replay(config, pcap, out=None, report=None):
    args = [STAKEGATE, "replay", "--config", config, "--pcap", pcap]
    if out:
        args += ["--out", out]
    if report:
        args += ["--report", report]
    p = run(args)
    with open(report) as f:
        return json.load(f), p.stdout


def read_pcap(path):
    """Frames of a classic pcap file (micro- or nanosecond magic, either byte order)."""
    with open(path, "rb") as f:
        data = f.read()
    magic = data[:4]
    order = {b"\xd4\xc3\xb2\xa1": "<", b"\x4d\x3c\xb2\xa1": "<", b"\xa1\xb2\xc3\xd4": ">", b"\xa1\xb2\x3c\x4d": ">"}[magic]
    frames, off = [], 24
    while off + 16 <= len(data):
        _, _, caplen, _ = struct.unpack(order + "IIII", data[off:off + 16])
        frames.append(data[off + 16:off + 16 + caplen])
        off += 16 + caplen
    return frames

STAKEGATECTL = os.environ.get("STAKEGATECTL", "")


# Configs are data: tests read, change and write them with yaml, never as text.
def read_yaml(path):
    with open(path) as f:
        return yaml.safe_load(f)


def write_yaml(path, data):
    with open(path, "w") as f:
        yaml.safe_dump(data, f, sort_keys=False)
    return path


def one_node_config(d, outside, inside, **extra):
    """A small config: one consensus node, the given vdevs, the control socket in `d`."""
    cfg = {"dataplane": {"eal": ["--no-huge", "-m", "512", "--no-pci", "--no-shconf"],
                         "outside": {"vdev": outside}, "inside": {"vdev": inside}},
           "capacity": {"pps": 100000},
           "identity": {"nodes": [{"node_id": "ab" * 32, "role": "consensus", "address": "198.18.7.1:3569"}]},
           "roles": {"consensus": {"share": 0.5}},
           "control": {"socket": f"{d}/ctl.sock", "metrics": None}}
    cfg.update(extra)
    return cfg


def endless(cfg, d, mbufs=32767, **control):
    """A generated config changed to replay its capture endlessly into a null port, with its
    control socket in `d` and no metrics listener (unless `control` says otherwise)."""
    dp = cfg["dataplane"]
    dp["outside"]["vdev"] = dp["outside"]["vdev"].split(",tx_pcap=")[0] + ",infinite_rx=1"
    # The cluster's own packets (the SYN-ACKs that open its connections) once, then silence;
    # what passes goes nowhere.
    inside = [a for a in dp["inside"]["vdev"].split(",") if a.startswith("rx_pcap=")]
    dp["inside"]["vdev"] = f"net_pcap1,{inside[0]},tx_pcap=/dev/null" if inside else "net_null1,no-rx=1"
    dp["mbufs"] = mbufs
    cfg["control"] = {"socket": f"{d}/ctl.sock", "metrics": None, **control}
    return cfg


def wait_for(cond, timeout, every=0.2):
    """cond()'s first truthy value within `timeout` seconds, or None."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(every)
    return None


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class UnixHTTPConnection:
    """http.client over a Unix socket (keep-alive capable)."""
    def __init__(self, path):
        import http.client
        import socket

        class Conn(http.client.HTTPConnection):
            def connect(self):
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.settimeout(30)
                self.sock.connect(path)
        self.conn = Conn("localhost")

    def call(self, rpc, body=None, method="POST", content_type="application/json", raw=False):
        data = body if isinstance(body, (bytes, str)) or body is None else json.dumps(body)
        headers = {"Content-Type": content_type} if data is not None else {}
        self.conn.request(method, "/v1/" + rpc, body=data, headers=headers)
        r = self.conn.getresponse()
        payload = r.read()
        if raw:
            return r.status, payload
        return r.status, json.loads(payload) if payload else None


def scrape(port):
    import urllib.request
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        return r.read().decode()


def metric_values(text):
    """{'name{labels}': value} from an exposition text."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            out[key] = float(value)
    return out


def die_with_parent():
    """preexec_fn: the child gets SIGTERM if the test process dies (even by SIGKILL), so no
    gateway is left polling a core after a killed test."""
    import ctypes
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Gateway:
    """`stakegate run` in the background; stop() sends SIGTERM and returns (rc, stdout, stderr)."""
    def __init__(self, config, socket_path, extra=(), env=None):
        self.socket = socket_path
        self._args = [STAKEGATE, "run", "--config", config, *extra]
        self._env = env
        self._start()

    def _start(self):
        # Output goes to files opened for appending: a pipe nobody reads would fill and
        # block the gateway's logging, and with a shared file offset reading the log while
        # it runs would move where the gateway writes next. log() reads by path.
        self._dir = tempfile.mkdtemp(prefix="stakegate-gw-")
        self.out_path, self.err_path = os.path.join(self._dir, "stdout"), os.path.join(self._dir, "stderr")
        with open(self.out_path, "a") as out, open(self.err_path, "a") as err:
            self.proc = subprocess.Popen(self._args, stdout=out, stderr=err, text=True, preexec_fn=die_with_parent,
                                         env=self._env)
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"stakegate exited {self.proc.returncode}:\n{self.log()}")
            if os.path.exists(self.socket):
                try:
                    if UnixHTTPConnection(self.socket).call("Status")[0] == 200:
                        return
                except OSError:
                    pass
            time.sleep(0.1)
        raise RuntimeError("stakegate did not open its control socket")

    def restart(self):
        """SIGTERM and the same command again, as an upgrade does: (rc, stdout, stderr) of the
        one stopped; log() then reads the new one's."""
        stopped = self.stop()
        self._start()
        return stopped

    def api(self):
        return UnixHTTPConnection(self.socket)

    def rss_kb(self):
        for line in open(f"/proc/{self.proc.pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def log(self):
        """What the gateway has written to stderr so far."""
        with open(self.err_path) as f:
            return f.read()

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        self.proc.wait(timeout=30)
        with open(self.out_path) as f:
            out = f.read()
        err = self.log()
        shutil.rmtree(self._dir, ignore_errors=True)
        return self.proc.returncode, out, err


def ipv4_frame(src, dst="198.18.255.1", dport=3569, proto=6, size=64):
    """An Ethernet/IPv4/TCP-or-UDP frame, built here independently of the C++ builder."""
    def ip(a):
        return bytes(int(x) for x in a.split("."))
    l4 = (struct.pack("!HHIIBBHHH", 40000, dport, 0, 0, 0x50, 0x10, 65535, 0, 0) if proto == 6
          else struct.pack("!HHHH", 40000, dport, 8, 0))
    total = max(size - 14, 20 + len(l4))
    iph = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, 0, 0, 64, proto, 0, ip(src), ip(dst))
    frame = b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01\x08\x00" + iph + l4
    return frame + b"\x00" * (size - len(frame)) if len(frame) < size else frame


def write_pcap(path, frames):
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 65535, 1))
        for i, fr in enumerate(frames):
            f.write(struct.pack("<IIII", 1700000000, i, len(fr), len(fr)) + fr)


def pcap_records(path):
    """(magic, records) of a classic pcap file: each record (seconds, fraction, frame, wire length)."""
    data = open(path, "rb").read()
    order = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    out, off = [], 24
    while off + 16 <= len(data):
        sec, frac, caplen, wire = struct.unpack(order + "IIII", data[off:off + 16])
        out.append((sec, frac, data[off + 16:off + 16 + caplen], wire))
        off += 16 + caplen
    return struct.unpack(order + "I", data[:4])[0], out


def relink_pcap(src, dst, linktype, convert):
    """The Ethernet capture `src` written as one of link type `linktype`: each frame through
    convert(frame) -> bytes of the new link type, or None to leave it out; the wire length
    changes by as much as the header did."""
    magic, recs = pcap_records(src)
    with open(dst, "wb") as f:
        f.write(struct.pack("<IHHiIII", magic, 2, 4, 0, 0, 262144, linktype))
        for sec, frac, frame, wire in recs:
            new = convert(frame)
            if new is not None:
                f.write(struct.pack("<IIII", sec, frac, len(new), wire + len(new) - len(frame)) + new)


def sll(frame):
    """An Ethernet frame as tcpdump -i any writes it (LINUX_SLL, link type 113): packet type
    0 (to us), ARPHRD_ETHER, the sender's MAC, the EtherType, then what followed it."""
    return struct.pack("!HHH", 0, 1, 6) + frame[6:12] + b"\0\0" + frame[12:]


def sll2(frame):
    """The same as LINUX_SLL2 (link type 276): protocol, reserved, interface index 7,
    ARPHRD_ETHER, packet type, address length, address."""
    return frame[12:14] + struct.pack("!HIHBB", 0, 7, 1, 0, 6) + frame[6:12] + b"\0\0" + frame[14:]


def raw_ip(frame):
    """An untagged IP frame's packet (link type RAW, 101); None for any other frame."""
    return frame[14:] if frame[12:14] in (b"\x08\x00", b"\x86\xdd") else None


def node_infos(nodes):
    """node-infos.pub.json text for [(node_id, role, address, weight)]."""
    return json.dumps([{"Role": r, "Address": a, "NodeID": i, "Weight": w} for i, r, a, w in nodes])
