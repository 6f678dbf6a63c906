"""/metrics as Prometheus sees it: `promtool check metrics` on a live scrape, and a real
Prometheus server (Debian's, on loopback, in a temporary folder) scraping the gateway:
a PromQL query over its HTTP API returns the drop counts the gateway itself reports.
Then a metrics port another process holds at start: the gateway forwards and answers on its
socket all the same, and serves /metrics once the port is free."""
import json
import os
import re
import socket
import subprocess
import time
import urllib.parse
import urllib.request

from common import (SOURCE, Gateway, TempDir, check, finish, free_port, generate, metric_values, read_yaml, scrape,
                    write_yaml)

with TempDir() as d:
    exp = generate(d, "--duration-ms", 50, "--flood-stake", 0.3)
    mport, pport = free_port(), free_port()
    cfg = os.path.join(d, "prom.yaml")
    c = read_yaml(os.path.join(d, "config.yaml"))
    c["control"] = {"socket": f"{d}/ctl.sock", "metrics": f"127.0.0.1:{mport}"}
    write_yaml(cfg, c)
    gw = Gateway(cfg, f"{d}/ctl.sock")
    api = gw.api()
    for _ in range(100):  # the capture is finite: wait until it has all gone through
        s, st = api.call("Status")
        if int(st["outside_packets"]) == exp["outside_pcap_packets"]:
            break
        time.sleep(0.1)
    check(int(st["outside_packets"]) == exp["outside_pcap_packets"], f"the gateway saw all {exp['packets']} packets")

    body = scrape(mport)
    p = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True, text=True)
    check(p.returncode == 0, f"promtool check metrics: rc {p.returncode} {p.stdout.strip()} {p.stderr.strip()}")
    for name in ["stakegate_packets_total", "stakegate_bytes_total", "stakegate_drops_total", "stakegate_identity_nodes",
                 "stakegate_identity_generation", "stakegate_port_rx_missed_total", "stakegate_port_rx_nombuf_total",
                 "stakegate_port_rx_errors_total",
                 "stakegate_worker_busy_ratio", "stakegate_graylisted_nodes", "stakegate_build_info"]:
        check(f"# TYPE {name} " in body, f"{name} is exposed with HELP/TYPE")

    # Per-node drops: the node the gateway itself ranks first has series with its counts.
    s, top = api.call("Top", {"limit": 1})
    first = top["nodes"][0]
    series = {k: v for k, v in metric_values(body).items()
              if k.startswith("stakegate_node_drops_total{") and f'node_id="{first["node_id"]}"' in k}
    want = {r: int(first["counters"].get(r, 0)) for r in ("blocklisted", "ejected", "port_denied", "over_rate",
                                                         "request_over_rate", "session_over_rate")}
    got = {re.search(r'reason="([a-z_]+)"', k).group(1): int(v) for k, v in series.items()}
    check(got == {r: v for r, v in want.items() if v} and all(f'role="{first["role"]}"' in k for k in series),
          f"stakegate_node_drops_total for the most dropped node {first['node_id'][:8]}: {got} (API: {want})")
    nodes_with_series = {re.search(r'node_id="([0-9a-f]+)"', k).group(1) for k in metric_values(body)
                         if k.startswith("stakegate_node_drops_total{")}
    s, ids = api.call("GetIdentities", method="GET")
    check(0 < len(nodes_with_series) <= len(ids["nodes"]), f"per-node series for {len(nodes_with_series)} nodes, "
          f"only nodes with drops, at most the table's {len(ids['nodes'])}")

    prom_cfg = os.path.join(d, "prometheus.yml")
    write_yaml(prom_cfg, {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                          "scrape_configs": [{"job_name": "stakegate", "static_configs": [{"targets": [f"127.0.0.1:{mport}"]}]}]})
    prom = subprocess.Popen(["prometheus", f"--config.file={prom_cfg}", f"--storage.tsdb.path={d}/tsdb",
                             f"--web.listen-address=127.0.0.1:{pport}", "--log.level=warn"],
                            stdout=subprocess.DEVNULL, stderr=open(f"{d}/prometheus.log", "w"))
    try:
        want = {k: int(v) for k, v in st["drops_by_reason"].items()}
        got = {}
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                q = urllib.parse.quote("sum by (reason) (stakegate_drops_total)")
                with urllib.request.urlopen(f"http://127.0.0.1:{pport}/api/v1/query?query={q}", timeout=5) as r:
                    res = json.load(r)["data"]["result"]
                got = {x["metric"]["reason"]: int(float(x["value"][1])) for x in res}
                if got == want:
                    break
            except OSError:
                pass
            time.sleep(0.5)
        check(got == want and sum(want.values()) > 0, f"PromQL sum by (reason) (stakegate_drops_total) = the gateway's own counts {want}")

        # The shipped Grafana dashboard and alert rules: every query is valid PromQL for
        # this server, and every metric they name is one the gateway exports.
        mon = os.path.join(SOURCE, "config", "monitoring")
        dash = json.load(open(os.path.join(mon, "stakegate-dashboard.json")))
        exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
        rules = open(os.path.join(mon, "stakegate-alerts.yml")).read()
        names = set(re.findall(r"stakegate_[a-z_]+", " ".join(exprs) + rules))
        missing = sorted(n for n in names if f"# TYPE {n} " not in body)
        check(not missing and len(names) >= 12, f"the dashboard and rules use {len(names)} metrics, all exported (missing: {missing})")
        deadline = time.time() + 20
        while True:  # rates need a few scrapes (one a second here)
            bad, with_data = [], 0
            for e in exprs:
                q = e.replace("$__rate_interval", "1m").replace('instance=~"$instance"', 'instance=~".*"')
                with urllib.request.urlopen(f"http://127.0.0.1:{pport}/api/v1/query?query={urllib.parse.quote(q)}", timeout=5) as r:
                    res = json.load(r)
                if res["status"] != "success":
                    bad.append(e)
                with_data += bool(res["data"]["result"])
            if bad or with_data == len(exprs) or time.time() > deadline:
                break
            time.sleep(1)
        check(not bad and len(exprs) >= 14, f"all {len(exprs)} dashboard queries run on Prometheus (failed: {bad})")
        check(with_data == len(exprs), f"{with_data} of them return data from the gateway")
    finally:
        prom.terminate()
        prom.wait(timeout=20)
    rc, _, _ = gw.stop()
    check(rc == 0, "gateway exits 0")

# It is inline: a metrics port that another process holds must not stop it (the nodes
# behind it would go down with it). It forwards, and binds the port once it is free.
with TempDir() as d:
    generate(d, "--duration-ms", 50)
    mport = free_port()
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.bind(("127.0.0.1", mport))
    holder.listen()
    cfg = os.path.join(d, "busy.yaml")
    c = read_yaml(os.path.join(d, "config.yaml"))
    c["control"] = {"socket": f"{d}/ctl.sock", "metrics": f"127.0.0.1:{mport}"}
    write_yaml(cfg, c)
    gw = Gateway(cfg, f"{d}/ctl.sock")
    time.sleep(0.5)
    s, st = gw.api().call("Status")
    check(s == 200 and int(st["outside_packets"]) > 0 and gw.proc.poll() is None,
          f"the metrics port is held: the gateway forwards ({st['outside_packets']} packets) and answers on its socket")
    check(f"control.metrics: listener 127.0.0.1:{mport}: Address already in use: not served until it binds" in gw.log(),
          "the log names the key, the address and the problem")
    holder.close()
    t0 = time.monotonic()
    body = ""
    while time.monotonic() - t0 < 10 and not body:
        try:
            body = scrape(mport)
        except OSError:
            time.sleep(0.2)
    check("stakegate_packets_total" in body and "control.metrics: bound" in gw.log(),
          f"once the port is free, /metrics is served ({time.monotonic() - t0:.1f} s after; it tries every 5 s)")
    rc, _, _ = gw.stop()
    check(rc == 0, "gateway exits 0")

finish()
