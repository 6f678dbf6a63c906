#!/usr/bin/env python3
"""Benchmark driver (see docs/performance.md).

For every (frame size, workload, table size) it generates the workload with
`stakegate-scenario --bench`, then alternates runs of dpdk-testpmd (forward modes io
and macswap) and `stakegate run` on the same devices, those of the generated config:
the outside port loops bench.pcap (net_pcap infinite_rx=1), the inside port reads the
cluster's own frames once (its SYN-ACKs and queries: they open the sessions) and drops
what it transmits; for the `inside` workload the inside port loops them and the outside
is net_null,no-rx=1. One forwarding core each, the same mbuf pool (count and 1 KiB data
room) for both; the rate measured is the looped port's. A run's figure is the median of its
per-second input-port rates after warm-up; a configuration's figure is the median of
its runs. Then: the Google Benchmark of classify+police (ns/packet) and callgrind
instruction counts per packet. Writes RESULTS/results.json, results.md and mpps.png.
With --baseline BUILD, another build's stakegate runs beside this one's in every run
(each first in every other run), so a change's effect is a ratio measured in the same invocation.

Open vSwitch with DPDK runs on the same devices too (scripts/bench_ovs.py): plain
forwarding, and one OpenFlow meter plus one flow per identity address (not for the
inside workload, and not where the table has more identities than OVS has meters).
"""
import argparse
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import time

import yaml

import bench_ovs

p = argparse.ArgumentParser()
p.add_argument("--build", default="build-bench")
p.add_argument("--out", default="build-bench/results")
p.add_argument("--sizes", default="1000,10000,100000,1000000")
p.add_argument("--workloads", default="mixed,staked,sessions,inside")
p.add_argument("--frames", default="64,512")
p.add_argument("--runs", type=int, default=None, help="runs per configuration (default 3, 2 with --quick)")
p.add_argument("--seconds", type=float, default=6, help="measured seconds per run, after warm-up")
p.add_argument("--no-micro", action="store_true", help="skip the microbenchmark and instruction counts")
p.add_argument("--quick", action="store_true", help="1k and 100k nodes, 64-byte frames, 2 runs")
p.add_argument("--no-ovs", action="store_true", help="leave Open vSwitch out")
p.add_argument("--profile", action="store_true",
               help="one more run of testpmd macswap and of stakegate per configuration under perf (cpu-clock "
                    "sampling, which works where a VM hides the PMU): the forwarding core's ns/packet in the "
                    "device driver and in the program")
p.add_argument("--baseline", metavar="BUILD",
               help="the build folder of another version (e.g. the commit before a change): its stakegate runs "
                    "beside this one's in every run (each first in every other run), on the same configurations, "
                    "so a change is measured as a ratio within one invocation")
p.add_argument("--mbuf-data-room", type=int, default=1024,
               help="packet bytes per mbuf, for both programs (2048 is DPDK's default; 2M-packet captures need 1024)")
a = p.parse_args()
if a.quick:
    a.sizes, a.frames = "1000,100000", "64"
a.runs = a.runs or (2 if a.quick else 3)
sizes = [int(x) for x in a.sizes.split(",")]
workloads = a.workloads.split(",")
frames = [int(x) for x in a.frames.split(",")]
build = os.path.abspath(a.build)
out = os.path.abspath(a.out)
os.makedirs(out, exist_ok=True)
STAKEGATE = f"{build}/src/stakegate"
SCENARIO = f"{build}/src/stakegate-scenario"
MICRO = f"{build}/tests/classify_bench"
BASELINE = f"{os.path.abspath(a.baseline)}/src/stakegate" if a.baseline else None
if BASELINE and not os.access(BASELINE, os.X_OK):
    raise SystemExit(f"--baseline {a.baseline}: no {BASELINE} (build it there first)")
OVS = not a.no_ovs and bench_ovs.available()
if not a.no_ovs and not OVS:
    print("Open vSwitch with DPDK is not installed (openvswitch-switch-dpdk): its rows are left out", flush=True)


def sh(cmd):
    return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip()


def sample_rates(cmd, parse, seconds):
    """Runs cmd until it has produced `seconds` non-zero rate samples (plus one for
    warm-up), then stops it with SIGINT. Returns the samples in Mpps."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    rates, deadline = [], time.monotonic() + seconds + 120
    for line in proc.stdout:
        r = parse(line)
        if r is not None and r > 0:
            rates.append(r)
            if len(rates) >= seconds + 1:
                break
        if time.monotonic() > deadline:
            break
    proc.send_signal(signal.SIGINT)
    try:
        proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
    return rates[1:]  # the first sample spans start-up


class TestpmdParser:
    """testpmd --stats-period prints a block per port; we want the looped port's Rx-pps."""
    def __init__(self, port=0):
        self.port = None
        self.want = port

    def __call__(self, line):
        m = re.search(r"NIC statistics for port (\d+)", line)
        if m:
            self.port = int(m.group(1))
            return None
        m = re.search(r"Rx-pps:\s+(\d+)", line)
        if m and self.port == self.want:
            return int(m.group(1)) / 1e6
        return None


def stakegate_parser(direction):
    def parse(line):
        m = re.search(direction + r" rate ([0-9.]+) Mpps", line)
        return float(m.group(1)) if m else None
    return parse


def eal_memory(cfg):
    eal = yaml.safe_load(open(cfg))["dataplane"]["eal"]
    return str(eal[eal.index("-m") + 1])


def ovs_meter_plan(d, conf):
    """The per-source OpenFlow configuration for a generated workload: the identity
    addresses, each node's rate (its role's share of capacity.pps split over the role's
    nodes: the bench's stakes are equal), the public ports and their shared rate."""
    nodes = json.load(open(os.path.join(d, conf["identity"]["flow_node_infos"])))
    cap = conf["capacity"]["pps"]
    count = {}
    for n in nodes:
        count[n["Role"]] = count.get(n["Role"], 0) + 1
    addrs = [n["Address"].rsplit(":", 1)[0].strip("[]") for n in nodes]
    rates = [conf["roles"][n["Role"]]["share"] * cap / count[n["Role"]] for n in nodes]
    return addrs, rates, conf["unregistered"]["ports"], conf["unregistered"]["share"] * cap


def run_ovs(d, conf, vdevs, mode, memory_mb):
    """One OVS run: start, load the flow table, sample, stop. None when OVS cannot hold it."""
    peer = bench_ovs.OvsPeer(f"{d}/ovs", vdevs, memory_mb)
    try:
        try:
            peer.start()
        except (RuntimeError, subprocess.TimeoutExpired) as e:  # e.g. a capture larger than its mbuf pool
            print(f"  ovs {mode}: could not start on these devices ({e}); its log: {d}/ovs/vswitchd.log", flush=True)
            return None
        if mode == "meters":
            addrs, rates, ports, public = ovs_meter_plan(d, conf)
            if len(addrs) + 1 > peer.max_meters():
                return None
            t = time.monotonic()
            peer.configure("meters", addrs, lambda i: rates[i], ports, public)
            print(f"  ovs: {len(addrs) + 1} meters and flows loaded in {time.monotonic() - t:.1f} s", flush=True)
        else:
            peer.configure("plain")
        time.sleep(1)
        s = peer.sample_rates(a.seconds)
        return statistics.median(s) if s else 0
    finally:
        peer.stop()


def profile_run(cmd, parse, data, program):
    """One run of cmd under `perf record -e cpu-clock`. Returns the run's rate and where the
    forwarding core's time went, in ns/packet: the DPDK device driver (librte_net_*), the
    program itself, everything else (DPDK libraries, libc, kernel). The forwarding core
    polls without pause, so its share of samples is its share of the run's time."""
    rates = sample_rates(["perf", "record", "-q", "-e", "cpu-clock", "-F", "999", "-o", data, "--", *cmd], parse,
                         a.seconds)
    rep = subprocess.run(["perf", "report", "-i", data, "--stdio", "-q", "-n", "--no-children", "--sort", "comm,dso"],
                         capture_output=True, text=True).stdout
    os.remove(data) if os.path.exists(data) else None
    threads = {}
    for line in rep.splitlines():
        f = line.split()
        if len(f) >= 4 and f[0].endswith("%") and f[1].isdigit():
            threads.setdefault(f[2], {})[f[3]] = int(f[1])
    # The forwarding core's thread: DPDK names it after its lcore ("rte-worker-1", "lcore-worker-1").
    fwd = [samples for comm, samples in threads.items() if "worker" in comm]
    if not rates or not fwd:
        return None
    dsos = max(fwd, key=lambda samples: sum(samples.values()))
    total = sum(dsos.values())
    ns = 1e3 / statistics.median(rates)  # Mpps -> ns/packet
    driver = sum(v for k, v in dsos.items() if k.startswith("librte_net_")) / total * ns
    own = dsos.get(program, 0) / total * ns
    return {"mpps": statistics.median(rates), "driver_ns": driver, "program_ns": own, "other_ns": ns - driver - own}


def run_config(frame, workload, nodes):
    d = f"{out}/w-{workload}-{nodes}-{frame}"
    if not os.path.exists(f"{d}/bench.yaml"):
        subprocess.run([SCENARIO, "--out", d, "--bench", workload, "--table-nodes", str(nodes), "--frame-size", str(frame)],
                       check=True, capture_output=True)
    cfg = f"{d}/bench.yaml"
    conf = yaml.safe_load(open(cfg))
    mbufs = conf["dataplane"]["mbufs"]
    if a.mbuf_data_room != 1024:  # same pool, other buffer size: a copy of the config
        dp = conf["dataplane"]
        dp["mbuf_data_room"] = a.mbuf_data_room
        dp["eal"][dp["eal"].index("-m") + 1] = str(768 + mbufs * (a.mbuf_data_room + 1024) // (1 << 20))
        cfg = f"{d}/bench-{a.mbuf_data_room}.yaml"
        yaml.safe_dump(conf, open(cfg, "w"))
    dp = conf["dataplane"]
    vdevs = ["--vdev", dp["outside"]["vdev"], "--vdev", dp["inside"]["vdev"]]
    looped = 1 if workload == "inside" else 0
    eal = ["--no-huge", "-m", eal_memory(cfg), "--no-pci", "--no-shconf", "-l", "0,1"]
    res = {"testpmd-io": [], "testpmd-macswap": [], "stakegate": []}
    ovs_modes = (["plain"] + (["meters"] if workload != "inside" else [])) if OVS else []
    ovs_vdevs = [dp["inside"]["vdev"], dp["outside"]["vdev"]] if looped else [dp["outside"]["vdev"], dp["inside"]["vdev"]]
    for mode in ovs_modes:
        res[f"ovs-{mode}"] = []
    if BASELINE:
        res["baseline"] = []
    def testpmd(mode):
        return ["dpdk-testpmd", *eal, "--file-prefix", f"bench-tp-{os.getpid()}", *vdevs, "--", f"--forward-mode={mode}",
                "--no-flush-rx", "--stats-period", "1", f"--total-num-mbufs={mbufs}",
                f"--mbuf-size={a.mbuf_data_room + 128}"]
    gateway, gateway_rate = [STAKEGATE, "run", "--config", cfg], stakegate_parser("inside" if looped else "outside")
    for r in range(a.runs):
        for mode in ("io", "macswap"):
            s = sample_rates(testpmd(mode), TestpmdParser(looped), a.seconds)
            res[f"testpmd-{mode}"].append(statistics.median(s) if s else 0)
        gateways = [("stakegate", gateway)] + ([("baseline", [BASELINE, *gateway[1:]])] if BASELINE else [])
        for key, cmd in (gateways if r % 2 == 0 else gateways[::-1]):  # each goes first in every other run
            s = sample_rates(cmd, gateway_rate, a.seconds)
            res[key].append(statistics.median(s) if s else 0)
        for mode in ovs_modes:
            res[f"ovs-{mode}"].append(run_ovs(d, conf, ovs_vdevs, mode, 2048))
        print(f"  run {r + 1}: " + ", ".join(f"{k} {v[-1]:.2f}" if v[-1] is not None else f"{k} -" for k, v in res.items()),
              flush=True)
    med = {k: (statistics.median(v) if None not in v else None) for k, v in res.items()}
    if a.profile:
        med["profile"] = {
            "testpmd-macswap": profile_run(testpmd("macswap"), TestpmdParser(looped), f"{d}/perf.data", "dpdk-testpmd"),
            "stakegate": profile_run(gateway, gateway_rate, f"{d}/perf.data", "stakegate")}
        for prog, pr in med["profile"].items():
            if pr:
                print(f"  profile {prog}: {pr['mpps']:.2f} Mpps under perf; ns/packet: driver {pr['driver_ns']:.1f}, "
                      f"{prog.split('-')[0]} {pr['program_ns']:.1f}, other {pr['other_ns']:.1f}", flush=True)
    for mode in ovs_modes:
        if med[f"ovs-{mode}"] is not None and med["testpmd-macswap"]:
            med[f"ovs-{mode}_ratio_macswap"] = med[f"ovs-{mode}"] / med["testpmd-macswap"]
    med["ratio_macswap"] = med["stakegate"] / med["testpmd-macswap"] if med["testpmd-macswap"] else 0
    med["ratio_io"] = med["stakegate"] / med["testpmd-io"] if med["testpmd-io"] else 0
    if BASELINE:
        med["baseline_ratio_macswap"] = med["baseline"] / med["testpmd-macswap"] if med["testpmd-macswap"] else 0
        med["change"] = med["stakegate"] / med["baseline"] if med["baseline"] else 0
    med["runs"] = res
    return med


def cell(r, key):
    """A table cell: the figure, "—" where the program was not run for this workload, and
    "n/a" where it could not hold the configuration (OVS: meters beyond its limit, or a
    capture larger than its mbuf pool)."""
    if key not in r:
        return "—"
    return "n/a" if r[key] is None else f"{r[key]:.2f}"


machine = {
    "cpu": sh("lscpu | sed -n 's/^Model name: *//p'"),
    "cpus": os.cpu_count(),
    "kernel": platform.release(),
    "dpdk": sh("pkg-config --modversion libdpdk"),
    "compiler": sh("c++ --version | head -1"),
    "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
}
results = {"machine": machine, "method": {"runs": a.runs, "seconds": a.seconds, "mbuf_data_room": a.mbuf_data_room,
                                          "baseline": BASELINE},
           "dpdk": [], "micro": [], "instructions": []}
print(f"machine: {machine}")

for frame in frames:
    for workload in workloads:
        for nodes in sizes:
            print(f"{workload}, {frame}-byte frames, {nodes} identities", flush=True)
            m = run_config(frame, workload, nodes)
            results["dpdk"].append({"frame": frame, "workload": workload, "nodes": nodes, **m})
            print(f"  median: testpmd-io {m['testpmd-io']:.2f}, testpmd-macswap {m['testpmd-macswap']:.2f}, "
                  f"ovs-plain {cell(m, 'ovs-plain')}, ovs-meters {cell(m, 'ovs-meters')}, "
                  f"stakegate {m['stakegate']:.2f} Mpps, ratio to macswap {m['ratio_macswap']:.2f}, to io "
                  f"{m['ratio_io']:.2f}" + (f"; baseline {m['baseline']:.2f} Mpps, this / baseline {m['change']:.2f}"
                                            if BASELINE else ""), flush=True)
            if nodes >= 1000000:  # large captures are cheap to regenerate and costly to keep
                subprocess.run(["rm", "-rf", f"{out}/w-{workload}-{nodes}-{frame}"])

if os.path.exists(MICRO) and not a.no_micro:
    print("microbenchmark: classify + police, bursts of 32, in memory", flush=True)
    j = json.loads(subprocess.run([MICRO, "--benchmark_format=json", "--benchmark_min_time=1",
                                   "--benchmark_filter=nodes:(" + "|".join(map(str, sizes)) + ")/"],
                                  capture_output=True, text=True, check=True).stdout)
    for b in j["benchmarks"]:
        m = re.search(r"nodes:(\d+)/workload:(\d)", b["name"])
        ns = 1e9 / b["items_per_second"]
        name = ["staked", "mixed", "sessions", "inside"][int(m.group(2))]
        if name not in workloads or int(m.group(1)) not in sizes:
            continue
        results["micro"].append({"nodes": int(m.group(1)), "workload": name, "ns_per_packet": ns})
        print(f"  {b['name']}: {ns:.1f} ns/packet", flush=True)
    print("instructions per packet (callgrind, process_outside inclusive; process_inside for inside)", flush=True)
    packets = 320000
    for nodes in sizes:
        for workload in workloads:
            cg = f"{out}/callgrind.out"
            fn = "*process_inside*" if workload == "inside" else "*process_outside*"
            p = subprocess.run(["valgrind", "--tool=callgrind", f"--toggle-collect={fn}",
                                f"--callgrind-out-file={cg}", MICRO, "--count", str(nodes), workload, str(packets)],
                               capture_output=True, text=True)
            m = re.search(r"Collected : (\d+)", p.stderr)
            ipp = int(m.group(1)) / packets if m else 0
            results["instructions"].append({"nodes": nodes, "workload": workload, "instructions_per_packet": ipp})
            print(f"  {workload} {nodes}: {ipp:.0f}", flush=True)
            os.remove(cg) if os.path.exists(cg) else None

json.dump(results, open(f"{out}/results.json", "w"), indent=2)

# Markdown tables, ready for docs/performance.md.
lines = [f"Machine: {machine['cpu']}, {machine['cpus']} CPUs, Linux {machine['kernel']}, DPDK {machine['dpdk']}, "
         f"{machine['compiler']}; {machine['date']}; {a.runs} runs x {a.seconds:.0f} s, medians; "
         f"mbuf data room {a.mbuf_data_room} B for both programs.", "",
         "Mpps. OVS plain: one flow, port to port; OVS meters: one OpenFlow meter and flow per identity "
         "(— not run for this workload, n/a: more identities than OVS has meters, or OVS could not start on the devices).", "",
         "| frame | workload | identities | testpmd io | testpmd macswap | OVS plain | OVS meters | stakegate "
         "| stakegate / macswap | stakegate / io | OVS plain / macswap | OVS meters / macswap |",
         "|---|---|---|---|---|---|---|---|---|---|---|---|"]
for r in results["dpdk"]:
    lines.append(f"| {r['frame']} B | {r['workload']} | {r['nodes']:,} | {r['testpmd-io']:.2f} | {r['testpmd-macswap']:.2f} | "
                 f"{cell(r, 'ovs-plain')} | {cell(r, 'ovs-meters')} | {r['stakegate']:.2f} | {r['ratio_macswap']:.2f} | "
                 f"{r['ratio_io']:.2f} | {cell(r, 'ovs-plain_ratio_macswap')} | {cell(r, 'ovs-meters_ratio_macswap')} |")
if BASELINE:
    lines += ["", f"This build against the baseline ({BASELINE}), both in every run:", "",
              "| frame | workload | identities | testpmd macswap | baseline | this build | baseline / macswap "
              "| this build / macswap | this build / baseline |", "|---|---|---|---|---|---|---|---|---|"]
    for r in results["dpdk"]:
        lines.append(f"| {r['frame']} B | {r['workload']} | {r['nodes']:,} | {r['testpmd-macswap']:.2f} | "
                     f"{r['baseline']:.2f} | {r['stakegate']:.2f} | {r['baseline_ratio_macswap']:.2f} | "
                     f"{r['ratio_macswap']:.2f} | {r['change']:.2f} |")
if results["micro"]:
    lines += ["", "| identities | workload | classify+police ns/packet | instructions/packet |", "|---|---|---|---|"]
    ins = {(i["nodes"], i["workload"]): i["instructions_per_packet"] for i in results["instructions"]}
    for m in results["micro"]:
        lines.append(f"| {m['nodes']:,} | {m['workload']} | {m['ns_per_packet']:.1f} | {ins.get((m['nodes'], m['workload']), 0):.0f} |")
prof = [r for r in results["dpdk"] if r.get("profile")]
if prof:
    lines += ["", "Where the forwarding core's time goes (--profile: one run each under perf, cpu-clock sampling; "
              "ns/packet at the rate of that run): the device driver's receive and transmit (net_pcap copies each "
              "packet from the capture it preloaded), the program's own code, the rest.", "",
              "| frame | workload | identities | testpmd Mpps | testpmd: driver / own / rest ns | stakegate Mpps "
              "| stakegate: driver / own / rest ns |", "|---|---|---|---|---|---|---|"]
    for r in prof:
        t, g = r["profile"]["testpmd-macswap"], r["profile"]["stakegate"]
        fmt = lambda x: (f"{x['mpps']:.2f} | {x['driver_ns']:.1f} / {x['program_ns']:.1f} / {x['other_ns']:.1f}"
                         if x else "n/a | n/a")
        lines.append(f"| {r['frame']} B | {r['workload']} | {r['nodes']:,} | {fmt(t)} | {fmt(g)} |")
open(f"{out}/results.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))

# Plot: Mpps by table size, one line per program, 64-byte frames, per workload.
dat = f"{out}/plot.dat"
with open(dat, "w") as f:
    for w in workloads:
        f.write(f"# {w}\n")
        for r in results["dpdk"]:
            if r["workload"] == w and r["frame"] == frames[0]:
                ovs = [r.get(k) if r.get(k) is not None else "NaN" for k in ("ovs-plain", "ovs-meters")]
                f.write(f"{r['nodes']} {r['testpmd-io']} {r['testpmd-macswap']} {r['stakegate']} {ovs[0]} {ovs[1]}\n")
        f.write("\n\n")
plot = "; ".join([
    f"set terminal pngcairo size 1000,{460 * ((len(workloads) + 1) // 2)} font 'sans,10'", f"set output '{out}/mpps.png'",
    f"set multiplot layout {(len(workloads) + 1) // 2},{min(2, len(workloads))}", "set logscale x", "set xlabel 'identities'", "set ylabel 'Mpps'",
    "set yrange [0:*]", "set key below horizontal", "set grid"] +
    [f"set title '{w}, {frames[0]}-byte frames'; plot '{dat}' index {i} using 1:2 with linespoints title 'testpmd io', "
     f"'' index {i} using 1:3 with linespoints title 'testpmd macswap', '' index {i} using 1:4 with linespoints lw 2 title 'stakegate'"
     + (f", '' index {i} using 1:5 with linespoints dt 2 lc rgb 'dark-orange' title 'OVS plain'" if OVS else "")
     + (f", '' index {i} using 1:6 with linespoints dt 3 lw 2 lc rgb 'dark-red' title 'OVS meters'" if OVS and w != "inside" else "")
     for i, w in enumerate(workloads)] + ["unset multiplot"])
subprocess.run(["gnuplot", "-e", plot], check=False)
print(f"results: {out}/results.json, {out}/results.md, {out}/mpps.png")
