"""`stakegate run` forwarding endless traffic (DPDK net_null) stops cleanly on SIGTERM and
SIGINT: exit code 0 within a second, final counters logged, the per-class table printed.
Its state_dir cannot be made (a file is in the way): a warning at start, and it runs."""
import os
import re
import signal
import subprocess
import time

from common import STAKEGATE, TempDir, check, finish, generate, read_yaml, write_yaml

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
        p.send_signal(sig)
        try:
            out, err = p.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
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

finish()
