"""Monitor mode (`mode: monitor`): every packet is decided and counted as when enforcing,
and forwarded whatever its verdict.

1. `run` on net_pcap devices over a generated cluster's traffic (floods, probes, blocked,
   malformed and non-IP frames), once enforcing and once in monitor mode: in monitor mode
   the inside port sends every outside frame, in order and unchanged; both runs count the
   same verdicts; the report says the mode, and `monitor_forwarded` is the number of
   frames dropped when enforcing. `replay` in monitor mode writes every frame too.
2. A gateway forwarding endlessly is switched to monitor mode and back by reloading its
   config: `stakegate_enforcing` and `stakegate_monitor_forwarded_total` follow, the log,
   the summary line and `stakegatectl status` say it, and drops stop and resume without a
   restart."""
import json
import os
import subprocess
import time

from common import (STAKEGATE, STAKEGATECTL, Gateway, TempDir, check, endless, finish, free_port, generate,
                    metric_values, read_pcap, read_yaml, run, scrape, wait_for, write_yaml)


def outside_capture(cfg):
    vdev = cfg["dataplane"]["outside"]["vdev"]
    return next(a for a in vdev.split(",") if a.startswith("rx_pcap=")).split("=", 1)[1]


def run_once(d, cfg, mode, name):
    c = dict(cfg, mode=mode)
    path = os.path.join(d, f"{name}.yaml")
    write_yaml(path, c)
    p = run([STAKEGATE, "run", "--config", path, "--exit-on-idle", "1", "--report", os.path.join(d, f"{name}.json")],
            timeout=120)
    forwarded = read_pcap(os.path.join(d, "pass.pcap"))
    os.rename(os.path.join(d, "pass.pcap"), os.path.join(d, f"{name}.pcap"))
    return json.load(open(os.path.join(d, f"{name}.json"))), forwarded, p.stderr


def capture_case():
    with TempDir() as d:
        exp = generate(d, "--duration-ms", 80, "--honest-fraction", 0.5, "--unregistered-sources", 12,
                       "--unregistered-fraction", 0.2, "--ipv6-fraction", 0.3, "--vlan-fraction", 0.3, "--block-nodes", 1)
        cfg = read_yaml(os.path.join(d, "config.yaml"))
        # As in test_run_pcap: no verdict may depend on how fast run reads.
        cfg["unregistered"]["per_source_pps"] = 100000
        outside = read_pcap(os.path.join(d, outside_capture(cfg)))

        enforce, passed, _ = run_once(d, cfg, "enforce", "enforce")
        monitor, forwarded, log = run_once(d, cfg, "monitor", "monitor")
        dropped = sum(enforce["drops_by_reason"].values())
        check(dropped > 0 and len(passed) == len(outside) - dropped,
              f"enforcing: {len(passed)} of the {len(outside)} outside frames forwarded, {dropped} dropped")
        check(forwarded == outside, f"monitor mode: the inside port sent every outside frame, in order and unchanged "
                                    f"({len(forwarded)} of {len(outside)})")
        check(monitor["drops_by_reason"] == enforce["drops_by_reason"],
              f"monitor mode counts the verdicts enforcing drops: {monitor['drops_by_reason']}")
        check(enforce["mode"] == "enforce" and enforce["monitor_forwarded"] == 0,
              f"the enforcing run's report: mode {enforce['mode']}, monitor_forwarded {enforce['monitor_forwarded']}")
        check(monitor["mode"] == "monitor" and monitor["monitor_forwarded"] == dropped,
              f"the monitor run's report: mode {monitor['mode']}, monitor_forwarded {monitor['monitor_forwarded']} "
              f"(= {dropped} dropped when enforcing)")
        check("mode: monitor: every packet is decided and counted" in log and "monitor mode forwarded" in log,
              "the log warns of monitor mode at start and counts what it forwarded at the end")

        # replay: the same choice for --out. It reads the outside capture alone here (without
        # the cluster's SYN-ACKs, so more drop verdicts), and takes the frames claiming a
        # cluster source as the cluster's own (not written: they went out).
        write_yaml(os.path.join(d, "replay.yaml"), dict(cfg, mode="monitor"))
        run([STAKEGATE, "replay", "--config", os.path.join(d, "replay.yaml"), "--pcap",
                 os.path.join(d, outside_capture(cfg)), "--out", os.path.join(d, "replayed.pcap"), "--report",
                 os.path.join(d, "replay.json")])
        rep = json.load(open(os.path.join(d, "replay.json")))
        replayed = read_pcap(os.path.join(d, "replayed.pcap"))
        check(rep["mode"] == "monitor" and rep["monitor_forwarded"] == sum(rep["drops_by_reason"].values()) > 0
              and len(replayed) == len(outside) - exp["spoofed_outside_only"],
              f"replay in monitor mode writes all {len(replayed)} frames and counts {rep['monitor_forwarded']} "
              f"forwarded against their verdict")


def live_switch():
    with TempDir() as d:
        generate(d, "--duration-ms", 200, "--honest-fraction", 0.5, "--unregistered-sources", 50,
                 "--unregistered-fraction", 0.5)
        mport = free_port()
        cfg = endless(read_yaml(os.path.join(d, "config.yaml")), d, metrics=f"127.0.0.1:{mport}")
        cfg["dataplane"]["stats_interval_s"] = 1
        path = os.path.join(d, "config.yaml")
        write_yaml(path, cfg)
        gw = Gateway(path, f"{d}/ctl.sock")
        try:
            def metrics():
                return metric_values(scrape(mport))

            def dropped(m):
                return sum(v for k, v in m.items() if k.startswith("stakegate_drops_total{"))

            def reload(mode):
                write_yaml(path, dict(cfg, mode=mode))
                r = subprocess.run([STAKEGATECTL, "--socket", f"{d}/ctl.sock", "reload"], capture_output=True, text=True)
                check(r.returncode == 0, f"stakegatectl reload to {mode}: {r.stdout.strip()[:200]} {r.stderr.strip()[:200]}")

            time.sleep(1)
            m0 = metrics()
            check(m0.get("stakegate_enforcing") == 1 and m0.get("stakegate_monitor_forwarded_total") == 0
                  and dropped(m0) > 0, f"enforcing: stakegate_enforcing 1, nothing forwarded against its verdict, "
                                       f"{dropped(m0):.0f} drops")
            reload("monitor")
            m1 = metrics()
            time.sleep(1.5)
            m2 = metrics()
            grew = m2["stakegate_monitor_forwarded_total"] - m1["stakegate_monitor_forwarded_total"]
            # (A scrape reads the verdict counters and the forwarded count a few packets apart:
            # at most a burst, 32 packets, at each end of the interval; 128 leaves room.)
            check(m2.get("stakegate_enforcing") == 0 and grew > 0 and abs(grew - (dropped(m2) - dropped(m1))) <= 128,
                  f"after the reload to monitor: stakegate_enforcing 0, and every drop verdict is forwarded "
                  f"({grew:.0f} of {dropped(m2) - dropped(m1):.0f})")
            def ctl(*args):
                return subprocess.run([STAKEGATECTL, "--socket", f"{d}/ctl.sock", *args], capture_output=True,
                                      text=True).stdout
            check("mode: MONITOR" in ctl("status"), "stakegatectl status says monitor mode")
            check(ctl("top").startswith("MONITOR MODE: nothing is dropped; the drops below are what enforcing"),
                  "stakegatectl top says first that its drops were forwarded")
            check(wait_for(lambda: "MONITOR MODE: nothing dropped" in gw.log(), 5),
                  "the summary line says monitor mode while it lasts")
            reload("enforce")
            m3 = metrics()
            time.sleep(1.5)
            m4 = metrics()
            check(m4.get("stakegate_enforcing") == 1
                  and m4["stakegate_monitor_forwarded_total"] == m3["stakegate_monitor_forwarded_total"]
                  and dropped(m4) > dropped(m3),
                  f"back to enforce by a reload: drops resume, nothing more forwarded against its verdict "
                  f"({dropped(m4) - dropped(m3):.0f} drops)")
            check(not ctl("top").startswith("MONITOR") and "MONITOR" not in ctl("status"),
                  "stakegatectl top and status no longer say monitor mode")
        finally:
            rc, _, err = gw.stop()
            check(rc == 0, f"gateway exited {rc} after SIGTERM")


capture_case()
live_switch()
finish()
