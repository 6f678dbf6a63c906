"""DNS cannot take the gateway down: the identity table's host names against a resolver
the test controls (dnsmasq on a loopback port, answers from a hosts file it re-reads on
SIGHUP, TTL 2 s).

- check-config and the start with one name that does not exist (NXDOMAIN): the gateway
  runs with the rest of the table, the warning names the node, the metric counts it;
- an address change behind a name is followed within its TTL (a new snapshot);
- a name that starts failing keeps its last known address, across a reload too; the name
  that never resolved is picked up once it exists;
- a restart with the resolver down starts with the addresses saved in state_dir/dns.json.
"""
import json
import os
import signal
import subprocess
import threading
import time

from common import (STAKEGATE, STAKEGATECTL, Gateway, TempDir, check, finish, free_port, metric_values, node_infos, run, scrape,
                    wait_for, write_yaml)

C1, C2, GONE, LIT = ("c1" * 32, "c2" * 32, "de" * 32, "e4" * 32)


class Resolver:
    def __init__(self, d, port):
        self.hosts, self.port, self.d = f"{d}/hosts", port, d
        self.proc = None

    def write(self, entries):
        with open(self.hosts, "w") as f:
            f.writelines(f"{ip} {name}\n" for name, ip in entries.items())

    def start(self):
        self.proc = subprocess.Popen(
            ["dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
             f"--addn-hosts={self.hosts}", "--local=/dns.test/", "--local-ttl=2", "--bind-interfaces",
             "--listen-address=127.0.0.1", f"--port={self.port}", f"--pid-file={self.d}/dnsmasq.pid", "--user=root",
             "--log-facility=-"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 10
        while time.time() < deadline:
            if self.answers("c1.dns.test"):
                return
            time.sleep(0.1)
        raise RuntimeError("dnsmasq did not answer")

    def answers(self, name):
        """Whether dnsmasq answers `name` now (a plain query over UDP, built here)."""
        import socket
        import struct
        q = struct.pack("!HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0)
        q += b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0" + struct.pack("!HH", 1, 1)
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(0.5)
        try:
            s.sendto(q, ("127.0.0.1", self.port))
            r = s.recv(512)
            return struct.unpack("!H", r[6:8])[0] > 0
        except OSError:
            return False
        finally:
            s.close()

    def reread(self):
        self.proc.send_signal(signal.SIGHUP)  # dnsmasq re-reads --addn-hosts and clears its cache
        time.sleep(0.3)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


def ips(api):
    s, r = api.call("GetIdentities", method="GET")
    return {n["node_id"]: n.get("ips", []) for n in r["nodes"]}


def dns_metrics(port):
    m = metric_values(scrape(port))
    return {st: m.get(f'stakegate_dns_names{{state="{st}"}}') for st in ("resolved", "stale", "unresolved")}


with TempDir() as d:
    dns = Resolver(d, free_port())
    dns.write({"c1.dns.test": "198.18.60.1", "c2.dns.test": "198.18.60.2"})
    dns.start()
    try:
        with open(f"{d}/node-infos.pub.json", "w") as f:
            f.write(node_infos([(C1, "consensus", "c1.dns.test:3569", 100), (C2, "consensus", "c2.dns.test:3569", 100),
                                (GONE, "consensus", "gone.dns.test:3569", 100), (LIT, "access", "198.18.60.4:9000", 100)]))
        mport = free_port()
        cfg = {"dataplane": {"eal": ["--no-huge", "-m", "512", "--no-pci", "--no-shconf"],
                             "outside": {"vdev": "net_null0,no-rx=1"}, "inside": {"vdev": "net_null1,no-rx=1"}},
               "capacity": {"pps": 100000},
               "identity": {"flow_node_infos": "node-infos.pub.json",
                            "dns": {"servers": [f"127.0.0.1:{dns.port}"], "timeout_s": 2, "min_refresh_s": 1,
                                    "refresh_s": 60, "retry_s": 1}},
               "roles": {"consensus": {"share": 0.5}, "access": {"share": 0.1, "ports": [9000]}},
               "cluster": {"prefixes": ["198.18.61.0/24"]},
               "state_dir": f"{d}/state",
               "control": {"socket": f"{d}/ctl.sock", "metrics": f"127.0.0.1:{mport}"}}
        write_yaml(f"{d}/gw.yaml", cfg)

        print("\n== one name does not exist: check-config and the start")
        p = run([STAKEGATE, "check-config", f"{d}/gw.yaml"], expect_rc=None)
        check(p.returncode == 0 and f"node {GONE} (consensus): host 'gone.dns.test' does not resolve (the name does not exist"
              in p.stdout, f"check-config passes and names the node: {p.stdout[-600:]}")
        check(not os.path.exists(f"{d}/state/dns.json"), "check-config does not write the state directory")
        t0 = time.time()
        gw = Gateway(f"{d}/gw.yaml", f"{d}/ctl.sock")
        api = gw.api()
        check(time.time() - t0 < 30, f"the gateway is up in {time.time() - t0:.1f} s")
        got = ips(api)
        check(got[C1] == ["198.18.60.1"] and got[C2] == ["198.18.60.2"] and got[LIT] == ["198.18.60.4"] and got[GONE] == [],
              f"the rest of the table runs, the missing name's node has no address: {got}")
        check("host 'gone.dns.test' does not resolve" in gw.log(), "the journal names the failing name")
        check(dns_metrics(mport) == {"resolved": 2, "stale": 0, "unresolved": 1}, f"metrics: {dns_metrics(mport)}")
        saved = json.load(open(f"{d}/state/dns.json"))
        check(saved["names"]["c1.dns.test"]["addresses"] == ["198.18.60.1"], "addresses saved in state_dir/dns.json")

        print("\n== an address moves behind its name (TTL 2 s)")
        _, st = api.call("Status")
        gen = int(st["identity_generation"])
        dns.write({"c1.dns.test": "198.18.60.11", "c2.dns.test": "198.18.60.2"})
        dns.reread()
        t0 = time.time()
        moved = wait_for(lambda: ips(api)[C1] == ["198.18.60.11"], 15)
        took = time.time() - t0
        # TTL 2 s, due names looked up each second: within the TTL plus a round and a
        # margin for a loaded machine.
        check(moved and took <= 2 + 4, f"followed in {took:.1f} s (TTL 2 s, checked each second)")
        _, st = api.call("Status")
        check(int(st["identity_generation"]) > gen, "a new snapshot was published")
        check("dns: c1.dns.test: 198.18.60.1 -> 198.18.60.11" in gw.log(), "the journal says what moved")

        print("\n== a name starts failing; a reload; the missing name appears")
        dns.write({"c1.dns.test": "198.18.60.11"})
        dns.reread()
        stale = wait_for(lambda: dns_metrics(mport)["stale"] == 1, 15)
        check(stale and ips(api)[C2] == ["198.18.60.2"], f"c2 keeps its last known address: {ips(api)[C2]}")
        p = run([STAKEGATECTL, "--socket", f"{d}/ctl.sock", "reload"], expect_rc=None)
        check(p.returncode == 0, f"a reload with a failing name is applied: {p.stdout}{p.stderr}")
        got = ips(api)
        check(got[C2] == ["198.18.60.2"] and got[C1] == ["198.18.60.11"], f"after the reload: {got}")
        check("keeping its last known addresses 198.18.60.2" in gw.log(), "the journal says c2 runs on its last address")
        dns.write({"c1.dns.test": "198.18.60.11", "gone.dns.test": "198.18.60.3"})
        dns.reread()
        check(wait_for(lambda: ips(api)[GONE] == ["198.18.60.3"], 15),
              f"the name that never resolved is picked up once it exists: {ips(api)[GONE]}")

        print("\n== a replace waits on DNS, the control plane does not")
        # The resolver stops answering (SIGSTOP: the queries sit in its socket). A replace that
        # brings a new name waits for its lookup (timeout_s 2); meanwhile the API and the
        # metrics answer at once, and the replace then applies with the name unresolved.
        NEW = "ab" * 32
        table = node_infos([(C1, "consensus", "c1.dns.test:3569", 100), (C2, "consensus", "c2.dns.test:3569", 100),
                            (GONE, "consensus", "gone.dns.test:3569", 100), (LIT, "access", "198.18.60.4:9000", 100),
                            (NEW, "consensus", "new.dns.test:3569", 100)])
        result = {}

        def replace():
            t = time.time()
            result["reply"] = gw.api().call("ReplaceIdentities", table)
            result["took"] = time.time() - t

        dns.proc.send_signal(signal.SIGSTOP)
        try:
            th = threading.Thread(target=replace)
            th.start()
            time.sleep(0.4)
            t = time.time()
            s_status, _ = gw.api().call("Status")
            status_took = time.time() - t
            t = time.time()
            scrape(mport)
            scrape_took = time.time() - t
            busy = th.is_alive()
            th.join(30)
        finally:
            dns.proc.send_signal(signal.SIGCONT)
        # Waiting on the control thread, Status took the rest of the lookup (1.6 s).
        check(busy and s_status == 200 and status_took < 1.0 and scrape_took < 1.0,
              f"while the replace waited on DNS: Status in {status_took:.2f} s, metrics in {scrape_took:.2f} s")
        status, reply = result.get("reply", (None, None))
        warnings = " ".join((reply or {}).get("warnings", []))
        check(status == 200 and result["took"] >= 1.0 and f"node {NEW} (consensus): host 'new.dns.test' does not resolve"
              in warnings, f"the replace applied after its lookup ({result.get('took', 0):.1f} s): {status} {reply}")
        got = ips(api)
        check(len(got) == 5 and got[NEW] == [] and got[C1] == ["198.18.60.11"], f"the new table runs: {got}")
        rc, _, err = gw.stop()
        check(rc == 0, f"stopped: rc {rc}")

        print("\n== a restart with the resolver down")
        dns.stop()
        gw = Gateway(f"{d}/gw.yaml", f"{d}/ctl.sock")
        api = gw.api()
        got = ips(api)
        check(got[C1] == ["198.18.60.11"] and got[C2] == ["198.18.60.2"] and got[GONE] == ["198.18.60.3"],
              f"the saved addresses are used: {got}")
        m = dns_metrics(mport)
        check(m == {"resolved": 0, "stale": 3, "unresolved": 0}, f"metrics: {m}")
        fails = metric_values(scrape(mport)).get("stakegate_dns_lookup_failures_total", 0)
        check(fails >= 3, f"failed lookups counted: {fails}")
        rc, _, err = gw.stop()
        check(rc == 0, f"stopped: rc {rc}")
    finally:
        dns.stop()
finish()
