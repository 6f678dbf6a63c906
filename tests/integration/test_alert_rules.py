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
p = subprocess.run(["promtool", "test", "rules", "stakegate-alerts.test.yml"], cwd=mon, capture_output=True, text=True)
check(p.returncode == 0 and "SUCCESS" in p.stdout, f"promtool test rules: {p.stdout.strip()} {p.stderr.strip()}")
# Every alert shipped has a rule unit test that expects it to fire.
tests = open(os.path.join(mon, "stakegate-alerts.test.yml")).read()
for alert in alerts:
    check(re.search(rf"alertname: {alert}\n\s+exp_alerts:\n\s+- exp_labels", tests) is not None,
          f"{alert} has a rule unit test in which it fires")
finish()
