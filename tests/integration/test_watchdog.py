#!/usr/bin/env python3
"""systemd's service protocol (docs/deployment.md): the gateway tells systemd when it is
ready, feeds the watchdog while the control loop and every worker's loop turn, stops
feeding it when a worker hangs (so that systemd restarts the gateway), and says when it
stops.

The test plays systemd: a Unix datagram socket as NOTIFY_SOCKET and WATCHDOG_USEC of 1 s
(pings every 0.5 s). A worker is made to hang inside its driver by a preloaded model
(tests/faultsim/worker_stall.cc: an RX callback that waits while a file exists)."""
import os
import socket
import time

from common import Gateway, TempDir, check, finish, one_node_config, write_yaml

STALL = os.environ["STAKEGATE_WORKERSTALL"]


class Systemd:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.05)

    def messages(self, seconds):
        """Every (arrival time, line) the gateway sends within `seconds`."""
        out, end = [], time.time() + seconds
        while time.time() < end:
            try:
                data = self.sock.recv(4096).decode()
            except socket.timeout:
                continue
            out += [(time.time(), line) for line in data.splitlines()]
        return out


def pings(msgs):
    return [t for t, line in msgs if line == "WATCHDOG=1"]


with TempDir() as d:
    cfg = one_node_config(d, "net_null0", "net_null1,no-rx=1")
    cfg["dataplane"]["stats_interval_s"] = 1
    write_yaml(f"{d}/gw.yaml", cfg)
    systemd = Systemd(f"{d}/notify")
    stall = f"{d}/stall"
    env = dict(os.environ, NOTIFY_SOCKET=f"{d}/notify", WATCHDOG_USEC="1000000", LD_PRELOAD=STALL,
               STAKEGATE_STALL_FILE=stall)
    env.pop("WATCHDOG_PID", None)  # set by a systemd above the test, it would name another process
    gw = Gateway(f"{d}/gw.yaml", f"{d}/ctl.sock", env=env)

    first = systemd.messages(2.0)
    lines = [line for _, line in first]
    check("READY=1" in lines and any(line.startswith("STATUS=forwarding") for line in lines),
          f"READY=1 with a status once the gateway forwards: {lines[:4]}")
    n = len(pings(first))
    check(2 <= n <= 6, f"the watchdog is fed every 0.5 s while the loops turn: {n} pings in 2 s")
    rates = [line for line in lines if line.startswith("STATUS=forwarding; generation 1; outside ")]
    check(len(rates) >= 1 and "Mpps" in rates[-1], f"the status line carries the rates each stats interval: {rates[-1:]}")

    print("\n== a worker hangs in its driver")
    t0 = time.time()
    open(stall, "w").close()
    during = systemd.messages(2.5)
    # A ping sent just before may still be read, and the first check after the hang may
    # still ping (its worker moved since the check before); every later check (each 0.5 s)
    # finds it standing still: none after 1.2 s.
    late = [round(t - t0, 2) for t in pings(during) if t > t0 + 1.2]
    check(len(late) == 0, f"no ping once the worker hung: {len(pings(during))} in 2.5 s, none late ({late})")
    check("worker 0 has not turned its loop" in gw.log() and gw.log().count("has not turned its loop") == 1,
          "the log says once which worker and why the watchdog is not fed")
    check(gw.proc.poll() is None, "the process itself runs on (systemd would restart it)")

    print("\n== the worker goes on")
    os.remove(stall)
    after = systemd.messages(2.0)
    check(len(pings(after)) >= 2 and "every worker's loop runs again" in gw.log(),
          f"the pings resume and the log says so: {len(pings(after))} in 2 s")
    rc, _, _ = gw.stop()
    check(rc == 0, f"stopped: rc {rc}")
    check("STOPPING=1" in [line for _, line in systemd.messages(0.3)], "STOPPING=1 on the way out")

    print("\n== without systemd")
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")}
    gw = Gateway(f"{d}/gw.yaml", f"{d}/ctl.sock", env=env)
    time.sleep(1)
    check(gw.proc.poll() is None and "systemd watchdog" not in gw.log(), "nothing of it outside systemd")
    rc, _, _ = gw.stop()
    check(rc == 0, f"stopped: rc {rc}")
finish()
