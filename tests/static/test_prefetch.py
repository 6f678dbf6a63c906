#!/usr/bin/env python3
"""Every prefetch in the sources goes through stakegate::prefetch_line
(include/stakegate/base/prefetch.h): GCC 12 at -O3 silently deletes a
__builtin_prefetch under a condition, and the data path's speed at large tables rests
on its prefetches being there."""
import os
import re
import sys

ROOT = os.environ.get("STAKEGATE_SOURCE", os.path.join(os.path.dirname(__file__), "..", ".."))
ALLOWED = os.path.join("include", "stakegate", "base", "prefetch.h")
CALL = re.compile(r"__builtin_prefetch\s*\(")

found, checked = [], 0
for top in ("src", "include", "tests"):
    for dirpath, _, files in os.walk(os.path.join(ROOT, top)):
        for name in files:
            if not name.endswith((".h", ".cc")):
                continue
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, ROOT)
            checked += 1
            with open(path) as f:
                for n, line in enumerate(f, 1):
                    if CALL.search(line) and rel != ALLOWED:
                        found.append(f"{rel}:{n}: {line.strip()}")
if checked < 50:
    sys.exit(f"only {checked} source files found under {ROOT}: wrong STAKEGATE_SOURCE?")
if found:
    print("__builtin_prefetch outside base/prefetch.h (use stakegate::prefetch_line):")
    print("\n".join(found))
    sys.exit(1)
print(f"{checked} files checked: every prefetch goes through prefetch_line")
