"""The shipped Prometheus alert rules (config/monitoring): `promtool check rules` and the
rule unit tests `promtool test rules` (each alert fires on the series it is meant for,
with the labels and annotations an operator sees, and not on the ones it is not)."""
import os
import subprocess

from common import SOURCE, check, finish

mon = os.path.join(SOURCE, "config", "monitoring")
p = subprocess.run(["promtool", "check", "rules", "stakegate-alerts.yml"], cwd=mon, capture_output=True, text=True)
check(p.returncode == 0 and "SUCCESS: 10 rules found" in p.stdout, f"promtool check rules: {p.stdout.strip()} {p.stderr.strip()}")
p = subprocess.run(["promtool", "test", "rules", "stakegate-alerts.test.yml"], cwd=mon, capture_output=True, text=True)
check(p.returncode == 0 and "SUCCESS" in p.stdout, f"promtool test rules: {p.stdout.strip()} {p.stderr.strip()}")
tests = open(os.path.join(mon, "stakegate-alerts.test.yml")).read()
for alert in ("StakegateDown", "StakegateDropRateSpike", "StakegateNodeGraylisted", "StakegateRxMissed", "StakegateRxNoMbuf",
              "StakegateTxDropped", "StakegateIdentityTableStale", "StakegateReloadFailed", "StakegateDnsNamesFailing",
              "StakegateIdentityFetchFailing"):
    check(f"alertname: {alert}" in tests, f"{alert} has a rule unit test")
finish()
