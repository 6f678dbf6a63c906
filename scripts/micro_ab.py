#!/usr/bin/env python3
"""Paired microbenchmark of two builds: both builds' classify_bench run at the same time,
one per CPU, and swap CPUs every round. On a shared, noisy machine a neighbour slows
both alike, so the ratio within a round holds where times across runs swing by 30 %;
swapping CPUs cancels the difference between the two CPUs (the geometric mean of a pair
of rounds). Needs two CPUs.

  scripts/micro_ab.py --baseline /tmp/base/build [--build build-bench] [--rounds 8]

Prints, per benchmark, baseline / this build for every round (above 1: this build is
faster), the median of those, and the geometric mean over pairs of rounds.

Its floor, measured (docs/performance.md): two builds with the same outside path read
0.93-1.02 on it, so only a difference beyond about 7 % that holds in every invocation
means anything; the DPDK runs (bench.py --baseline) have the last word.

--one-cpu runs the two builds one after the other on the same CPU instead (the order
alternating every round), for a machine whose two CPUs differ by more than a neighbour
does (a VM here read one CPU up to 2x slower than the other, and the per-round ratios
of the default mode swung with the CPU). It also prints each build's median ns per
packet.
"""
import argparse
import math
import os
import re
import statistics
import subprocess
import sys

p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
p.add_argument("--baseline", required=True, help="the other build folder (e.g. a worktree of the commit before)")
p.add_argument("--build", default="build-bench", help="this build folder (default build-bench)")
p.add_argument("--rounds", type=int, default=8, help="rounds, an even number (default 8)")
p.add_argument("--filter", default="nodes:(1000/workload:0|100000/workload:[0123])/",
               help="--benchmark_filter of classify_bench (default: staked at 1k, every workload at 100k)")
p.add_argument("--min-time", default="0.3", help="--benchmark_min_time (default 0.3)")
p.add_argument("--one-cpu", action="store_true",
               help="run the builds one after the other on one CPU, not side by side on two")
a = p.parse_args()

bins = {name: os.path.join(d, "tests", "classify_bench") for name, d in (("baseline", a.baseline), ("this", a.build))}
for name, b in bins.items():
    if not os.access(b, os.X_OK):
        sys.exit(f"micro_ab: no {b} (ninja -C {os.path.dirname(os.path.dirname(b))} tests/classify_bench)")
if len(os.sched_getaffinity(0)) < 2 and not a.one_cpu:
    sys.exit("micro_ab: needs two CPUs (or --one-cpu)")
cpus = sorted(os.sched_getaffinity(0))[:2] if not a.one_cpu else [sorted(os.sched_getaffinity(0))[-1]]


def parse(text):
    out = {}
    for line in text.splitlines():
        m = re.match(r"BM_ClassifyPolice/(nodes:\d+/workload:\d+)\S*\s+([\d.]+) ns", line)
        if m:
            out[m.group(1)] = float(m.group(2))
    return out


# One benchmark at a time, both builds on it together: were they left to run through the
# list, the faster build would be on the next benchmark while the other is still on this
# one, and each would be measured beside a different neighbour.
listed = subprocess.run([bins["this"], f"--benchmark_filter={a.filter}", "--benchmark_list_tests"],
                        capture_output=True, text=True).stdout.split()
if not listed:
    sys.exit(f"micro_ab: --filter {a.filter} selects no benchmark")
ratios, times = {}, {}


def run(name, exact, cpu):
    return subprocess.Popen(["taskset", "-c", str(cpu), bins[name], f"--benchmark_filter={exact}",
                             f"--benchmark_min_time={a.min_time}"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


for r in range(a.rounds):
    order = ("baseline", "this") if r % 2 == 0 else ("this", "baseline")
    for bench in listed:
        exact = "^" + re.escape(bench) + "$"
        if a.one_cpu:  # one after the other, on the same CPU
            got = {name: parse(run(name, exact, cpus[0]).communicate()[0]) for name in order}
        else:
            procs = {name: run(name, exact, cpu) for name, cpu in zip(order, cpus)}
            got = {name: parse(pr.communicate()[0]) for name, pr in procs.items()}
        for k, t in got["this"].items():
            if k in got["baseline"]:
                ratios.setdefault(k, []).append(got["baseline"][k] / t)
                for name in ("baseline", "this"):
                    times.setdefault((k, name), []).append(got[name][k] / 32)  # a benchmark iteration is 32 packets
    where = f"both on CPU {cpus[0]}, {order[0]} first" if a.one_cpu else f"baseline on CPU {cpus[order.index('baseline')]}"
    print(f"round {r + 1}/{a.rounds}: {where}", file=sys.stderr)

names = ["staked", "mixed", "sessions", "inside"]
print(f"baseline / this build ({a.baseline} / {a.build}), {a.rounds} paired rounds; above 1: this build is faster")
for k in sorted(ratios, key=lambda s: (int(s.split("/")[0].split(":")[1]), s)):
    rs = ratios[k]
    pairs = [math.sqrt(rs[i] * rs[i + 1]) for i in range(0, len(rs) - 1, 2)]
    nodes, wl = k.split("/")
    label = f"{names[int(wl.split(':')[1])]} {int(nodes.split(':')[1]):,}"
    gm = math.exp(sum(math.log(x) for x in pairs) / len(pairs)) if pairs else float("nan")
    ns = "  ns/packet: baseline {:.1f}, this {:.1f}".format(*(statistics.median(times[(k, n)]) for n in ("baseline", "this")))
    print(f"{label:18s} rounds: {' '.join(f'{x:.2f}' for x in rs)}  median {statistics.median(rs):.3f}  "
          f"pairs' geometric mean {gm:.3f}{ns}")
