"""The README's demo command, minus the package install and build (done by the test command)."""
import os

from common import SOURCE, check, finish, run

env = dict(os.environ, STAKEGATE_SKIP_SETUP="1", STAKEGATE_BUILD_DIR=os.path.dirname(os.path.dirname(os.environ["STAKEGATE"])))
p = run(["bash", os.path.join(SOURCE, "scripts", "demo.sh")], env=env, timeout=240)
out = p.stdout
check("class" in out and "over_rate" in out, "the demo prints the per-role table")
for role in ["collection", "consensus", "execution", "verification", "access", "unregistered", "l2"]:
    check(any(line.startswith(role) for line in out.splitlines()), f"the demo table has a {role} row")
finish()
