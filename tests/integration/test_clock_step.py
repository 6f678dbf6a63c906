#!/usr/bin/env python3
"""The wall clock stepped while the gateway runs: evidence is dated by the corrected clock,
and a temporary block lasts the time it was given (docs/reliability.md).

An appliance often starts before its clock is right (a dead RTC battery, a VM restored
from a snapshot), and NTP steps it later; the gateway must not wait for that (it would
forward nothing meanwhile). With tests/faultsim/clock_step.cc preloaded, the process's
wall clock reads ten years behind until the test "corrects" it. An operator's evidence
case opened after the correction must carry the real date in report.json and flip.md:
a governance report dated ten years back would not hold up. A block an operator made for
an hour before the correction must still be there after it (by the wall clock it ended ten
years ago), and one made for seconds must end in seconds after the clock steps back a day.
"""
import json
import os
import time

from common import Gateway, TempDir, check, finish, one_node_config, wait_for, write_yaml

CLOCKSTEP = os.environ["STAKEGATE_CLOCKSTEP"]
A = "ab" * 32  # one_node_config's node
DECADE = 10 * 365 * 86400

with TempDir() as d:
    step = f"{d}/clock-step"
    with open(step, "w") as f:
        f.write(str(-DECADE))
    write_yaml(f"{d}/gw.yaml", one_node_config(d, "net_null0", "net_null1,no-rx=1",
                                               evidence={"dir": f"{d}/ev", "on_graylist": False, "window_s": 1}))
    gw = Gateway(f"{d}/gw.yaml", f"{d}/ctl.sock", env=dict(os.environ, LD_PRELOAD=CLOCKSTEP, STAKEGATE_CLOCK_STEP_FILE=step))
    api = gw.api()
    s, r = api.call("Block", {"cidr": "198.18.77.0/24", "reason": "incident", "expires_in_s": 3600})
    check(s == 200, f"an hour's block made while the clock is behind: {r}")
    time.sleep(0.5)
    with open(step, "w") as f:  # NTP steps the clock ten years forward: now it is right
        f.write("0")
    time.sleep(1.5)  # the control loop's expiry runs every tick
    blocks = {e["cidr"]: e for e in api.call("ListBlocklist")[1].get("entries", [])}
    hour = blocks.get("198.18.77.0/24", {})
    left = int(hour.get("expires_at_unix", 0)) - time.time()
    check(3500 < left <= 3600, f"after the step the hour's block is in force and ends in an hour by the corrected "
                               f"clock ({left:.0f} s): {hour}")
    s, r = api.call("OpenEvidence", {"node_id": A})
    check(s == 200 and r.get("open"), f"an operator's case opened after the step: {r}")
    case = wait_for(lambda: next((c for c in api.call("ListEvidence")[1]["cases"]
                                  if c["id"] == r.get("id") and not c["open"]), None), 15) or {}
    report = json.load(open(os.path.join(case["dir"], "report.json"))) if case.get("dir") else {}
    window = report.get("window", {})
    now = time.time()
    start, end = window.get("start_unix", 0), window.get("end_unix", 0)
    check(abs(start - now) < 120 and abs(end - now) < 120 and 0.5 < end - start < 30,
          f"report.json's window is dated by the corrected clock: {window.get('start')} to {window.get('end')} "
          f"({start - now:+.0f} s and {end - now:+.0f} s from now)")
    flip = open(os.path.join(case["dir"], "flip.md")).read() if case.get("dir") else ""
    check(window.get("start", "?") in flip and time.strftime("%Y", time.gmtime(now)) in flip,
          "flip.md gives the same dates")
    s, r = api.call("Block", {"cidr": "198.18.78.0/24", "reason": "short", "expires_in_s": 2})
    check(s == 200, f"a two-second block: {r}")
    with open(step, "w") as f:  # and a step back of a day
        f.write(str(-86400))
    gone = wait_for(lambda: all(e["cidr"] != "198.18.78.0/24" for e in api.call("ListBlocklist")[1].get("entries", [])), 10)
    check(gone, "after a step back of a day the two-second block ends within seconds")
    rc, _, err = gw.stop()
    check(rc == 0, f"the gateway stops cleanly (exit code {rc})")

finish()
