"""The shipped Prometheus alert rules (config/monitoring): `promtool check rules` and the
rule unit tests `promtool test rules` (each alert fires on the series it is meant for,
with the labels and annotations an operator sees, and not on the ones it is not)."""
import os
import re
import subprocess

from common import SOURCE, check, finish

mon = os.path.join(SOURCE, "config", "monitoring")
rules = open(os.path.join(mon, "stakegate-alerts.yml")).read()
alerts = re.findall(r"^\s*- alert: (\w+)$", rules, re.M)
check(len(alerts) >= 11, f"the rules file names its alerts ({alerts})")
p = subprocess.run(["promtool", "check", "rules", "stakegate-alerts.yml"], cwd=mon, capture_output=True, text=True)
check(p.returncode == 0 and f"SUCCESS: {len(alerts)} rules found" in p.stdout, f"promtool check rules: {p.stdout.strip()} {p.stderr.strip()}")
# The rule unit tests: minute-scale alerts in one file, epoch-scale ones (evaluated every
# 10 minutes) in another.
test_files = sorted(f for f in os.listdir(mon) if f.endswith(".test.yml"))
check(len(test_files) >= 2, f"the rule unit test files ({test_files})")
p = subprocess.run(["promtool", "test", "rules", *test_files], cwd=mon, capture_output=True, text=True)
check(p.returncode == 0 and p.stdout.count("SUCCESS") == len(test_files), f"promtool test rules: {p.stdout.strip()} {p.stderr.strip()}")
# Every alert shipped has a rule unit test that expects it to fire.
tests = "".join(open(os.path.join(mon, f)).read() for f in test_files)
for alert in alerts:
    check(re.search(rf"alertname: {alert}\n\s+exp_alerts:\n\s+- exp_labels", tests) is not None,
          f"{alert} has a rule unit test in which it fires")
finish()
