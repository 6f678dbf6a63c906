#!/usr/bin/env python3
"""Memory running out on the control thread does not stop the gateway (docs/reliability.md).

An exception out of any handler of the control loop (std::bad_alloc from a metrics
scrape, a request, a reload or a timer) once ended `stakegate run`, and with it every
node behind the appliance. With tests/faultsim/alloc_fail.cc preloaded, every allocation
of the control thread fails while a file exists:
- the gateway runs on and the workers keep forwarding;
- each exception is counted (stakegate_control_loop_errors_total) and logged, at most
  once a second;
- once memory is back, the control API and /metrics accept connections again (a pending
  accept lost inside Asio is restarted), SIGHUP reloads, and the gateway stops cleanly.
"""
import os
import signal
import socket
import time

from common import (Gateway, TempDir, check, finish, free_port, metric_values, node_infos, scrape, wait_for,
                    write_yaml)

ALLOCFAIL = os.environ["STAKEGATE_ALLOCFAIL"]
A = "a1" * 32


def outside_packets(gw):
    return int(gw.api().call("Status")[1]["outside_packets"])


def _try_status(gw):
    try:
        return gw.api().call("Status")[0] == 200
    except OSError:
        return False


def poke(path=None, port=None):
    """A request while memory is short: any answer, or none, is fine; it must not kill."""
    try:
        s = socket.socket(socket.AF_UNIX) if path else socket.socket()
        s.settimeout(1)
        s.connect(path or ("127.0.0.1", port))
        s.sendall(b"POST /v1/Status HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n" if path else
                  b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        s.recv(100)
        s.close()
    except OSError:
        pass


with TempDir() as d:
    short = f"{d}/no-memory"
    with open(f"{d}/node-infos.pub.json", "w") as f:
        f.write(node_infos([(A, "consensus", "198.18.71.1:3569", 100)]))
    mport = free_port()
    write_yaml(f"{d}/gw.yaml", {
        "dataplane": {"eal": ["--no-huge", "-m", "512", "--no-pci", "--no-shconf"],
                      "outside": {"vdev": "net_null0"}, "inside": {"vdev": "net_null1,no-rx=1"}},
        "capacity": {"pps": 100000},
        "identity": {"flow_node_infos": "node-infos.pub.json"},
        "roles": {"consensus": {"share": 0.5}},
        "control": {"socket": f"{d}/ctl.sock", "metrics": f"127.0.0.1:{mport}"}})
    env = dict(os.environ, LD_PRELOAD=ALLOCFAIL, STAKEGATE_ALLOC_FAIL_FILE=short)
    gw = Gateway(f"{d}/gw.yaml", f"{d}/ctl.sock", env=env)
    errors = lambda: metric_values(scrape(mport)).get("stakegate_control_loop_errors_total")
    check(errors() == 0, "no control loop error at the start")
    before = outside_packets(gw)

    print("\n== the control thread cannot allocate")
    open(short, "w").close()
    t0 = time.time()
    for _ in range(3):
        poke(path=f"{d}/ctl.sock")
        poke(port=mport)
        time.sleep(0.2)
    gw.proc.send_signal(signal.SIGHUP)
    time.sleep(1)
    alive = gw.proc.poll() is None
    check(alive, "the gateway runs on" + ("" if alive else f": {gw.log()[-1500:]}"))
    if not alive:
        finish()

    print("\n== memory is back")
    os.remove(short)
    seconds = time.time() - t0
    check(wait_for(lambda: _try_status(gw), 5), "the control API accepts connections again")
    check(outside_packets(gw) > before, "the workers forwarded throughout")
    n = wait_for(lambda: errors(), 5)
    check(n and n >= 1, f"the exceptions are counted: stakegate_control_loop_errors_total {n}")
    logged = gw.log().count("control loop: std::bad_alloc (the data path keeps forwarding;")
    check(1 <= logged <= seconds + 2 and logged < n,
          f"and logged at most once a second: {logged} line(s) in {seconds:.1f} s for {n} exceptions")
    gen = gw.api().call("Status")[1]["identity_generation"]
    gw.proc.send_signal(signal.SIGHUP)
    check(wait_for(lambda: gw.api().call("Status")[1]["identity_generation"] != gen, 10), "SIGHUP reloads again")
    rc, _, _ = gw.stop()
    check(rc == 0, f"stopped cleanly: rc {rc}")
finish()
