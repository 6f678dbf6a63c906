"""The README's demo command, minus the package install and build (done by the test command)."""
import os

from common import SOURCE, check, finish, run

env = dict(os.environ, STAKEGATE_SKIP_SETUP="1", STAKEGATE_BUILD_DIR=os.path.dirname(os.path.dirname(os.environ["STAKEGATE"])))
p = run(["bash", os.path.join(SOURCE, "scripts", "demo.sh")], env=env, timeout=240)
out = p.stdout
check("class" in out and "over_rate" in out, "the demo prints the per-role table")
for role in ["collection", "consensus", "execution", "verification", "access", "unregistered", "l2"]:
    check(any(line.startswith(role) for line in out.splitlines()), f"the demo table has a {role} row")
# The replay part: the five flooders (one per role) are graylisted, each gets a bundle.
check(out.count("warning: graylisted: ") == 5, f"the demo shows five graylisted flooders ({out.count('warning: graylisted: ')})")
check("evidence bundles: 5 in build-demo/evidence/" in out and "## Evidence summary" in out,
      "the demo writes five evidence bundles and shows a flip.md summary")
finish()
