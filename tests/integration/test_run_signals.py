"""`stakegate run` forwarding endless traffic (DPDK net_null) stops cleanly on SIGTERM and
SIGINT: exit code 0 within a second, final counters logged, the per-class table printed.
Its state_dir cannot be made (a file is in the way): a warning at start, and it runs.

Signals while it starts (here: as the EAL initialises, long before the control loop's
handlers): SIGHUP (a reload) does not end it, it reloads once it runs; SIGTERM stops it
cleanly once started, exit code 0 and the final counters logged. And when whoever reads
its log goes away, it forwards on (SIGPIPE would end it). Signals while it stops do not
cut the stop short."""
import os
import re
import signal
import subprocess
import time

from common import STAKEGATE, TempDir, check, finish, generate, read_yaml, write_yaml


def stop(p, sig=None, timeout=10):
    """Sends `sig` (if any) and waits for `p` (killed after `timeout` s); its remaining output."""
    if sig is not None:
        p.send_signal(sig)
    try:
        return p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        return p.communicate()


with TempDir() as d:
    generate(d, "--duration-ms", 10)
    cfg = os.path.join(d, "config.yaml")
    c = read_yaml(cfg)
    c["dataplane"].update(outside={"vdev": "net_null0"}, inside={"vdev": "net_null1"}, stats_interval_s=0.3)
    open(os.path.join(d, "a-file"), "w").close()
    c["state_dir"] = os.path.join(d, "a-file", "state")
    write_yaml(cfg, c)

    for sig in (signal.SIGTERM, signal.SIGINT):
        p = subprocess.Popen([STAKEGATE, "run", "--config", cfg], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(2.5)
        check(p.poll() is None, f"[{sig.name}] gateway still running after 2.5 s")
        t0 = time.monotonic()
        out, err = stop(p, sig)
        took = time.monotonic() - t0
        check(p.returncode == 0, f"[{sig.name}] exit code {p.returncode}")
        check(took < 1.0, f"[{sig.name}] exited {took:.2f} s after the signal")
        summaries = [l for l in err.splitlines() if "outside rx" in l and "final:" not in l]
        check(len(summaries) >= 3, f"[{sig.name}] periodic one-line summaries while running ({len(summaries)})")
        final = [l for l in err.splitlines() if "final:" in l]
        m = re.search(r"outside rx (\d+)", final[0]) if final else None
        check(m is not None and int(m.group(1)) > 0, f"[{sig.name}] final counters logged: {final[0] if final else None}")
        check("passed" in out and "l2" in out, f"[{sig.name}] per-class table printed on stdout")
        check(f"state_dir: {d}/a-file is not a folder: blocks made through the API" in err,
              f"[{sig.name}] the state_dir it cannot write is warned about at start, and it runs")

    def at_start(sig):
        """The gateway sent `sig` as soon as the EAL speaks; its stderr lines and the process."""
        p = subprocess.Popen([STAKEGATE, "run", "--config", cfg], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        lines = []
        for line in p.stderr:
            lines.append(line)
            if line.startswith("EAL:"):
                p.send_signal(sig)
                break
        return p, lines

    p, lines = at_start(signal.SIGHUP)
    for line in p.stderr:
        lines.append(line)
        if "reload" in line and "SIGHUP" in line and "while starting" not in line:
            break
    time.sleep(0.5)
    check(p.poll() is None and any("SIGHUP while starting: reloading" in l for l in lines),
          f"[SIGHUP while starting] it runs on, and reloads once started: {''.join(lines[-3:]).strip()}")
    stop(p, signal.SIGTERM)
    check(p.returncode == 0, f"[SIGHUP while starting] then stops on SIGTERM: exit code {p.returncode}")

    p, lines = at_start(signal.SIGTERM)
    out, err = stop(p, timeout=30)
    err = "".join(lines) + err
    check(p.returncode == 0 and "signal 15 while starting: stopping" in err and "final:" in err,
          f"[SIGTERM while starting] stops once started: exit code {p.returncode}, {err.strip().splitlines()[-1:]}")

    # Signals while it stops (a second SIGTERM, a SIGHUP: an impatient operator, a log
    # rotation) do not cut the stop short: exit code 0, final counters.
    p = subprocess.Popen([STAKEGATE, "run", "--config", cfg], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in p.stderr:
        if "control API" in line:
            break
    time.sleep(0.5)
    p.send_signal(signal.SIGTERM)
    sent = 0
    while p.poll() is None and sent < 2000:
        p.send_signal(signal.SIGHUP if sent % 2 else signal.SIGTERM)
        sent += 1
        time.sleep(0.001)
    out, err = stop(p)
    check(p.returncode == 0 and "final:" in err, f"[signals while stopping] {sent} more sent: exit code {p.returncode}")

    # Its log's reader goes away (a collector restarted, `| tee` ended): it forwards on, and
    # still stops cleanly.
    p = subprocess.Popen([STAKEGATE, "run", "--config", cfg], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in p.stderr:
        if "forwarding" in line:
            break
    p.stdout.close()
    p.stderr.close()
    time.sleep(1.5)  # summaries every 0.3 s: each a write to a pipe nobody reads
    check(p.poll() is None, f"[log reader gone] the gateway runs on (exit code {p.returncode})")
    stop(p, signal.SIGTERM)
    check(p.returncode == 0, f"[log reader gone] then stops on SIGTERM: exit code {p.returncode}")

finish()
