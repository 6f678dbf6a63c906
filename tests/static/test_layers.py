#!/usr/bin/env python3
"""The folders form the layers of docs/architecture.md: a folder includes only from the
layers below it, so there is no include cycle between folders, and the worker's headers
never reach the configuration model (a snapshot is data)."""
import os
import re
import sys

ROOT = os.environ.get("STAKEGATE_SOURCE", os.path.join(os.path.dirname(__file__), "..", ".."))
# Each layer may include itself and the layers listed (docs/architecture.md, "Layers").
ALLOWED = {
    "base": set(),
    "net": {"base"},
    "identity": {"base"},
    "config": {"base", "identity"},
    "policy": {"base", "net", "identity", "config"},
    "pipeline": {"base", "net", "policy"},
    "report": {"base", "net", "identity", "config", "policy", "pipeline"},
    "control": {"base", "net", "identity", "config", "policy", "pipeline", "report"},
    "flow": {"base", "identity", "config"},  # Flow's Access API: a network source of identity tables
}
INCLUDE = re.compile(r'^\s*#\s*include\s+"stakegate/([a-z_]+)/([^"]+)"', re.M)

failures = []


def includes(path):
    with open(path) as f:
        return INCLUDE.findall(f.read())


def sources(layer):
    for top in (os.path.join(ROOT, "include", "stakegate", layer), os.path.join(ROOT, "src", layer)):
        for dirpath, _, files in os.walk(top):
            for name in files:
                if name.endswith((".h", ".cc")):
                    yield os.path.join(dirpath, name)


checked = 0
for layer, allowed in ALLOWED.items():
    for path in sources(layer):
        checked += 1
        for folder, header in includes(path):
            if folder != layer and folder not in allowed:
                failures.append(f"{os.path.relpath(path, ROOT)} includes stakegate/{folder}/{header}: "
                                f"{layer} may include only {sorted(allowed) or 'nothing else'}")


def closure(header, seen):
    """Every project header `header` reaches, transitively."""
    if header in seen:
        return seen
    seen.add(header)
    path = os.path.join(ROOT, "include", "stakegate", header)
    for folder, name in includes(path):
        closure(f"{folder}/{name}", seen)
    return seen


reached = closure("pipeline/worker.h", set())
for h in sorted(reached):
    if h.split("/")[0] in ("config", "identity"):
        failures.append(f"pipeline/worker.h reaches {h}: the worker must not see the configuration model")

for f in failures:
    print("FAIL " + f)
print(f"{checked} files checked, worker.h reaches {len(reached)} headers: {' '.join(sorted(reached))}")
sys.exit(1 if failures or checked < 40 else 0)
