"""Helpers for integration tests: run the real binaries, read captures, compare counts."""
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

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
