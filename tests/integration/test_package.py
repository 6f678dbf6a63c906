#!/usr/bin/env python3
"""The Debian package (docs/deployment.md): scripts/package.sh builds it from the tree;
its contents, control fields and maintainer scripts are checked; then it is installed on
this machine (CI's machine is a clean Debian 12), where the systemd unit must pass
`systemd-analyze verify`, the service user must exist, the installed binary must run as
that user, the default config must be refused with a clear message until it is edited,
and `dpkg --purge` must remove it all again. If a stakegate package is already
installed here, the install part is not run (and the test says so in its output)."""
import os
import re
import signal
import subprocess
import tempfile
import time

from common import SOURCE, check, finish, one_node_config, run, write_yaml

EXPOSURE = 2.2  # `systemd-analyze security` of the unit; docs/deployment.md

out = os.path.join(os.environ.get("STAKEGATE_BUILD_ROOT", tempfile.mkdtemp()), "pkg")
# The tree's build, when configured as the package needs (scripts/build.sh makes it so),
# is packaged as it is rather than built again.
p = run(["bash", os.path.join(SOURCE, "scripts", "package.sh"), out],
        env=dict(os.environ, STAKEGATE_SKIP_SETUP="1", STAKEGATE_PACKAGE_BUILD=os.environ.get("STAKEGATE_BUILD_ROOT", "")),
        timeout=900)
deb = p.stdout.strip().splitlines()[-1]
check(os.path.isfile(deb) and deb.endswith("_amd64.deb"), f"scripts/package.sh built {os.path.basename(deb)}")

info = run(["dpkg-deb", "--field", deb]).stdout
fields = dict(line.split(": ", 1) for line in info.splitlines() if ": " in line and not line.startswith(" "))
check(fields.get("Package") == "stakegate" and fields.get("Version") == run([os.environ["STAKEGATE"], "--version"]).stdout.split()[1],
      f"control: package stakegate, version {fields.get('Version')}")
for dep in ("librte-ethdev23", "libprotobuf32", "libyaml-cpp0.7", "dpdk", "adduser"):
    check(dep in fields.get("Depends", ""), f"Depends names {dep}")
files = set(line.split()[-1].lstrip(".") for line in run(["dpkg-deb", "-c", deb]).stdout.splitlines())
for f in ("/usr/bin/stakegate", "/usr/bin/stakegatectl", "/usr/bin/stakegate-scenario", "/usr/sbin/stakegate-host-setup",
          "/etc/stakegate/stakegate.yaml", "/usr/lib/systemd/system/stakegate.service",
          "/usr/share/stakegate/monitoring/stakegate-alerts.yml",
          "/usr/share/stakegate/monitoring/stakegate-alerts.test.yml",
          "/usr/share/stakegate/monitoring/stakegate-alerts-epochs.test.yml",
          "/usr/share/stakegate/monitoring/stakegate-dashboard.json", "/usr/share/doc/stakegate/deployment.md",
          "/usr/share/doc/stakegate/tuning.md"):
    check(f in files, f"the package holds {f}")
with tempfile.TemporaryDirectory() as ctl:
    run(["dpkg-deb", "--control", deb, ctl])
    check(open(os.path.join(ctl, "conffiles")).read().split() == ["/etc/stakegate/stakegate.yaml"],
          "the config is a conffile (upgrades keep the operator's edits)")
    for script in ("postinst", "prerm", "postrm"):
        path = os.path.join(ctl, script)
        check(os.access(path, os.X_OK) and subprocess.run(["sh", "-n", path]).returncode == 0, f"{script} is executable, valid sh")

installed = subprocess.run(["dpkg-query", "-W", "-f=${Status}", "stakegate"], capture_output=True, text=True).stdout
if "install ok installed" in installed:
    print("NOTE: a stakegate package is already installed on this machine: install/purge checks not run")
else:
    try:
        r = subprocess.run(["dpkg", "-i", deb], capture_output=True, text=True)
        check(r.returncode == 0, f"dpkg -i: {r.stdout.strip().splitlines()[-1] if r.stdout.strip() else r.stderr}")
        v = subprocess.run(["systemd-analyze", "verify", "/usr/lib/systemd/system/stakegate.service"], capture_output=True, text=True)
        check(v.returncode == 0 and not v.stderr.strip(), f"systemd-analyze verify stakegate.service: {v.stderr.strip() or 'clean'}")
        unit = open("/usr/lib/systemd/system/stakegate.service").read()
        for line in ("User=stakegate", "ExecReload=/usr/bin/stakegatectl --socket /run/stakegate/control.sock --timeout 60 reload",
                     "Restart=always", "StartLimitIntervalSec=0", "After=network-online.target nss-lookup.target",
                     "AmbientCapabilities=CAP_IPC_LOCK CAP_NET_RAW CAP_NET_ADMIN", "UMask=0027", "DevicePolicy=closed",
                     "SystemCallFilter=@system-service", "StandardError=journal"):
            check(line in unit, f"the unit has {line}")
        # The sandbox, scored by systemd itself: docs/deployment.md records the figure, and
        # this fails if a change makes it worse.
        sec = subprocess.run(["systemd-analyze", "security", "--offline=yes", "/usr/lib/systemd/system/stakegate.service"],
                             capture_output=True, text=True)
        m = re.search(r"Overall exposure level for stakegate.service: ([0-9.]+)", sec.stdout)
        exposure = float(m.group(1)) if m else 99
        check(exposure <= EXPOSURE, f"systemd-analyze security: exposure {exposure} (at most {EXPOSURE}, docs/deployment.md)")
        check(not any(f.startswith("/usr/lib/udev") for f in files),
              "no blanket udev rule: stakegate-host-setup writes one for the two ports' VFIO groups")
        u = subprocess.run(["id", "-u", "stakegate"], capture_output=True, text=True)
        check(u.returncode == 0 and int(u.stdout) < 1000, f"system user stakegate exists (uid {u.stdout.strip()})")
        c = subprocess.run(["/usr/bin/stakegate", "check-config", "/etc/stakegate/stakegate.yaml"], capture_output=True, text=True)
        check(c.returncode == 1 and "identity.flow_node_infos: cannot read '/var/lib/stakegate/node-infos.pub.json'" in c.stderr,
              f"the unedited default config is refused, naming the key and file: {c.stderr.strip()}")
        h = subprocess.run(["/usr/sbin/stakegate-host-setup"], capture_output=True, text=True)
        check(h.returncode == 0 and "dry run: nothing changed" in h.stdout, "the installed stakegate-host-setup dry-runs")

        # The installed binary forwards as the unprivileged service user (net_null ports, no hugepages).
        with tempfile.TemporaryDirectory() as d:
            os.chmod(d, 0o777)
            cfg = os.path.join(d, "s.yaml")
            c = one_node_config(d, "net_null0", "net_null1,no-rx=1", evidence={"dir": f"{d}/evidence"})
            c["dataplane"]["eal"][2] = "256"
            write_yaml(cfg, c)

            g = subprocess.Popen(["/usr/bin/stakegate", "run", "--config", cfg], user="stakegate", cwd=d,
                                 env={"PATH": "/usr/bin:/bin", "XDG_RUNTIME_DIR": d}, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
            deadline = time.time() + 20
            while time.time() < deadline and not os.path.exists(f"{d}/ctl.sock") and g.poll() is None:
                time.sleep(0.1)
            time.sleep(0.5)
            g.send_signal(signal.SIGTERM)
            o, e = g.communicate(timeout=20)
            check(g.returncode == 0 and "final: outside rx" in e and "l2" in o,
                  f"the installed binary forwards as user stakegate and stops on SIGTERM (rc {g.returncode})")
    finally:
        r = subprocess.run(["dpkg", "--purge", "stakegate"], capture_output=True, text=True)
        check(r.returncode == 0, "dpkg --purge stakegate")
        left = [f for f in ("/usr/bin/stakegate", "/etc/stakegate", "/usr/lib/systemd/system/stakegate.service",
                            "/var/lib/stakegate") if os.path.exists(f)]
        check(not left and subprocess.run(["id", "stakegate"], capture_output=True).returncode != 0,
              f"purge removes the files, the state folder and the user (left: {left})")
finish()
