"""Following epochs by itself: the gateway fetches the latest protocol state snapshot from
a fake Flow Access API (python3-grpcio on loopback, real-format snapshots), while traffic
from two addresses flows endlessly through a net_pcap port.

- the first endpoint is unreachable, the second answers: stakes come from the Cadence
  script (which names the configured staking contract), the epoch is exported; while the
  script fails, the running stakes stay;
- an epoch change mid-run is applied: the new node's packets are counted on it, the
  removed node is gone from the table and its packets are unregistered;
- a truncated snapshot, a malformed one, an endpoint answering UNAVAILABLE, a change
  removing most nodes, and no endpoint at all: each keeps the running table and raises
  stakegate_identity_fetch_failures_total;
- identity.watch: a snapshot file renamed over the configured one is applied, one cut
  short is refused and the running table stays; a reload turns the watch off and on;
- a restart with no endpoint answering starts on the last fetched table (kept in
  state_dir), unless the configured file changed after it;
- identity.stake_file without stakes_contract: the fetched table runs with the file's stakes.
"""
import os
import time

from common import (STAKEGATE, Gateway, TempDir, check, finish, free_port, ipv4_frame, metric_values, run, scrape,
                    wait_for, write_pcap, write_yaml)
from flow_access_fake import FakeAccessAPI, snapshot

A, B, C, D, E = ("a1" * 32, "b2" * 32, "c3" * 32, "d4" * 32, "e5" * 32)
EPOCH10 = [(A, "consensus", "198.18.70.1:3569", 100), (B, "consensus", "198.18.70.2:3569", 100),
           (C, "access", "198.18.70.3:9000", 100), (D, "consensus", "198.18.70.4:3569", 100)]
EPOCH11 = EPOCH10[:3] + [(E, "consensus", "198.18.70.5:3569", 100)]
CONTRACT = "0x8624b52f9ddcd04a"


def node_total(api, node_id):
    """Every packet counted on the node (passed or dropped, any channel); None when unknown."""
    s, r = api.call("GetNode", {"node_id": node_id})
    if s != 200:
        return None
    return sum(int(v) for v in r.get("counters", {}).values())


with TempDir() as d:
    fake = FakeAccessAPI(free_port())
    fake.snapshot_bytes = snapshot(EPOCH10, 10)
    fake.stakes = {A: 1500.0, B: 500.0, C: 250.0, D: 750.0}
    fake.start()
    try:
        with open(f"{d}/bootstrap.json", "wb") as f:
            f.write(snapshot(EPOCH10, 10))
        # D and E send to the cluster, forever.
        write_pcap(f"{d}/in.pcap", [ipv4_frame("198.18.70.4", "198.18.71.1"), ipv4_frame("198.18.70.5", "198.18.71.1")] * 50)
        mport, dead = free_port(), free_port()
        cfg = {"dataplane": {"eal": ["--no-huge", "-m", "512", "--no-pci", "--no-shconf"],
                             "outside": {"vdev": f"net_pcap0,rx_pcap={d}/in.pcap,infinite_rx=1"},
                             "inside": {"vdev": "net_null1,no-rx=1"}, "mbufs": 8191},
               "capacity": {"pps": 100000},
               "identity": {"flow_snapshot": "bootstrap.json",
                            "access_api": {"endpoints": [f"127.0.0.1:{dead}", f"127.0.0.1:{fake.port}"],
                                           "interval_s": 1, "timeout_s": 3, "stakes_contract": CONTRACT}},
               "roles": {"consensus": {"share": 0.5}, "access": {"share": 0.1, "ports": [9000]}},
               "cluster": {"prefixes": ["198.18.71.0/24"]},
               "state_dir": f"{d}/state",
               "control": {"socket": f"{d}/ctl.sock", "metrics": f"127.0.0.1:{mport}"}}
        write_yaml(f"{d}/gw.yaml", cfg)
        p = run([STAKEGATE, "check-config", f"{d}/gw.yaml"], expect_rc=None)
        check(p.returncode == 0, f"check-config accepts identity.access_api: {p.stderr[-300:]}")

        gw = Gateway(f"{d}/gw.yaml", f"{d}/ctl.sock")
        api = gw.api()
        m = lambda: metric_values(scrape(mport))  # noqa: E731

        print("\n== the first fetch: stakes from the staking contract, the epoch exported")
        weights = lambda: {n["node_id"]: n.get("weight") for n in api.call("GetIdentities", method="GET")[1]["nodes"]}  # noqa: E731
        got = wait_for(lambda: weights().get(A) == 1500 and weights(), 20)
        check(got and got[D] == 750, f"stakes applied from ExecuteScriptAtLatestBlock: {got}")
        check(fake.scripts and f"import FlowIDTableStaking from {CONTRACT}" in fake.scripts[-1],
              f"the script reads the configured contract: {fake.scripts[-1].splitlines()[0] if fake.scripts else '(none)'}")
        mm = m()
        check(mm["stakegate_identity_epoch"] == 10 and mm['stakegate_identity_epoch_phase{phase="staking"}'] == 1,
              "epoch 10, staking phase, exported")
        check(mm["stakegate_identity_fetch_last_success_timestamp_seconds"] > time.time() - 60 and
              mm["stakegate_identity_fetch_endpoints"] == 2, "the unreachable first endpoint is skipped for the second")

        print("\n== an epoch change while traffic flows")
        d_before = node_total(api, D)
        time.sleep(1)
        check(node_total(api, E) is None and node_total(api, D) > d_before, "before: D is staked and counted, E unknown")
        _, st = api.call("Status")
        gen, unreg = int(st["identity_generation"]), int(st["drops_by_reason"].get("unregistered", 0))
        fake.stakes = {A: 1500.0, B: 500.0, C: 250.0, E: 900.0}
        fake.snapshot_bytes = snapshot(EPOCH11, 11, "committed")
        t0 = time.time()
        applied = wait_for(lambda: node_total(api, E) is not None, 20)
        check(applied, f"epoch 11 applied in {time.time() - t0:.1f} s")
        e0 = node_total(api, E)
        time.sleep(1)
        check(node_total(api, E) > e0, "the new node E is staked: its packets are counted on it")
        check(node_total(api, D) is None, "the removed node D is out of the table")
        _, st = api.call("Status")
        unreg_mid = int(st["drops_by_reason"].get("unregistered", 0))
        time.sleep(1)
        _, st = api.call("Status")
        check(int(st["drops_by_reason"].get("unregistered", 0)) > unreg_mid > unreg and int(st["identity_generation"]) > gen,
              "D's packets are now unregistered; a new generation runs")
        mm = m()
        check(mm["stakegate_identity_epoch"] == 11 and mm['stakegate_identity_epoch_phase{phase="committed"}'] == 1,
              "epoch 11, committed phase, exported")
        check("identity fetch: epoch 11 (committed)" in gw.log() and "applied" in gw.log(), "the journal says what was applied")

        print("\n== the stakes script fails: the running stakes stay")
        _, st = api.call("Status")
        gen = st["identity_generation"]
        check(weights().get(E) == 900, f"E runs with its fetched stake: {weights().get(E)}")
        fake.stakes = None
        calls = fake.calls
        wait_for(lambda: fake.calls >= calls + 3, 20)
        _, st = api.call("Status")
        w = weights()
        check(st["identity_generation"] == gen and w.get(A) == 1500 and w.get(E) == 900,
              f"no new generation, stakes kept while the script fails: {w}")
        check("the running stakes are kept" in gw.log(), "the journal says the stakes script failed")
        fake.stakes = {A: 1500.0, B: 500.0, C: 250.0, E: 900.0}

        print("\n== bad answers keep the running table")
        for mode, what in (("truncated", "a truncated snapshot"), ("garbage", "a malformed snapshot"),
                           ("unavailable", "an endpoint answering UNAVAILABLE")):
            _, st = api.call("Status")
            gen = st["identity_generation"]
            fails = m()["stakegate_identity_fetch_failures_total"]
            fake.mode = mode
            raised = wait_for(lambda: m()["stakegate_identity_fetch_failures_total"] > fails, 20)
            _, st = api.call("Status")
            check(raised and st["identity_generation"] == gen and node_total(api, E) is not None and st["nodes"] == 4,
                  f"{what}: failures counted, generation {gen} and the table stay")
        fake.mode = "ok"
        fake.snapshot_bytes = snapshot(EPOCH11[:1], 12)
        fails = m()["stakegate_identity_fetch_failures_total"]
        raised = wait_for(lambda: m()["stakegate_identity_fetch_failures_total"] > fails, 20)
        _, st = api.call("Status")
        check(raised and st["nodes"] == 4 and "removes 3 of the 4 running nodes" in gw.log(),
              "a snapshot removing 3 of 4 nodes is refused by the guard, with the numbers in the journal")
        fake.stop()
        fails = m()["stakegate_identity_fetch_failures_total"]
        check(wait_for(lambda: m()["stakegate_identity_fetch_failures_total"] > fails, 20),
              "no endpoint reachable: failures counted")
        _, st = api.call("Status")
        check(st["nodes"] == 4 and int(st["outside_packets"]) > 0, "the gateway keeps running epoch 11")
        rc, _, err = gw.stop()
        check(rc == 0, f"stopped: rc {rc}")

        print("\n== a restart while no endpoint answers: the last fetched table, not the older configured one")
        check(os.path.exists(f"{d}/state/identity-fetched.json"), "the last fetched table is kept in state_dir")
        gw = Gateway(f"{d}/gw.yaml", f"{d}/ctl.sock")
        api = gw.api()
        check(node_total(api, E) is not None and node_total(api, D) is None, "it starts on epoch 11: E in, D out")
        check("starting on the table fetched from" in gw.log() and "(epoch 11" in gw.log(),
              "the journal says which table it starts on, and why")
        w = weights()
        check(m()["stakegate_identity_epoch"] == 11 and w.get(E) == 900 and w.get(A) == 1500,
              f"epoch 11 exported from the start, with the stakes it ran with: {w}")
        rc, _, err = gw.stop()
        check(rc == 0, f"stopped: rc {rc}")
        later = time.time() + 5
        os.utime(f"{d}/bootstrap.json", (later, later))  # the operator put a newer file in place
        gw = Gateway(f"{d}/gw.yaml", f"{d}/ctl.sock")
        api = gw.api()
        check(node_total(api, D) is not None and node_total(api, E) is None and "changed after the table fetched" in gw.log(),
              "a configured file changed after the last fetch wins: it starts on epoch 10")
        rc, _, err = gw.stop()
        check(rc == 0, f"stopped: rc {rc}")

        print("\n== identity.watch: a snapshot file replaced by the operator")
        del cfg["identity"]["access_api"]
        cfg["identity"]["watch"] = True
        write_yaml(f"{d}/gw.yaml", cfg)
        gw = Gateway(f"{d}/gw.yaml", f"{d}/ctl.sock")
        api = gw.api()
        check(node_total(api, E) is None and node_total(api, D) is not None, "started on the bootstrap table (epoch 10)")
        with open(f"{d}/snapshot.tmp", "wb") as f:  # as `flow snapshot save` then `mv` would
            f.write(snapshot(EPOCH11, 11))
        os.rename(f"{d}/snapshot.tmp", f"{d}/bootstrap.json")
        check(wait_for(lambda: node_total(api, E) is not None and node_total(api, D) is None, 15),
              "the file renamed over it is applied: E in, D out")
        _, st = api.call("Status")
        gen = st["identity_generation"]
        with open(f"{d}/bootstrap.json", "wb") as f:  # rewritten in place, and cut short
            f.write(snapshot(EPOCH10, 10)[:1000])
        check(wait_for(lambda: "identity watch: " in gw.log() and "the running table stays" in gw.log(), 15),
              "a file cut short is refused with the reason")
        _, st = api.call("Status")
        check(st["identity_generation"] == gen and node_total(api, E) is not None, "and the running table stays")

        def put(nodes, epoch):  # as `flow snapshot save` then `mv` would
            with open(f"{d}/snapshot.tmp", "wb") as f:
                f.write(snapshot(nodes, epoch))
            os.rename(f"{d}/snapshot.tmp", f"{d}/bootstrap.json")

        print("\n== identity.watch follows a reload")
        put(EPOCH11, 11)
        cfg["identity"]["watch"] = False
        write_yaml(f"{d}/gw.yaml", cfg)
        s, r = api.call("Reload")
        check(s == 200 and wait_for(lambda: "is no longer watched" in gw.log(), 5), f"a reload turns the watch off: {s} {r}")
        put(EPOCH10, 10)
        time.sleep(2.5)
        check(node_total(api, E) is not None and node_total(api, D) is None, "a file renamed over it now is not applied")
        cfg["identity"]["watch"] = True
        write_yaml(f"{d}/gw.yaml", cfg)
        s, r = api.call("Reload")  # reads the file as it is: epoch 10
        check(s == 200 and node_total(api, D) is not None and
              wait_for(lambda: gw.log().count("is applied when it changes") == 2, 5), f"a reload turns it on again: {s} {r}")
        put(EPOCH11, 11)
        check(wait_for(lambda: node_total(api, E) is not None and node_total(api, D) is None, 15),
              "and the next file renamed over it is applied")
        rc, _, err = gw.stop()
        check(rc == 0, f"stopped: rc {rc}")

        print("\n== identity.stake_file without stakes_contract: it applies to fetched tables too")
        fake = FakeAccessAPI(free_port())
        fake.snapshot_bytes = snapshot(EPOCH11, 11)
        fake.start()
        with open(f"{d}/bootstrap.json", "wb") as f:
            f.write(snapshot(EPOCH10, 10))
        with open(f"{d}/stakes.json", "w") as f:
            f.write(f'{{"{A}": 1234, "{E}": 4321}}')
        cfg["identity"] = {"flow_snapshot": "bootstrap.json", "stake_file": "stakes.json",
                           "access_api": {"endpoints": [f"127.0.0.1:{fake.port}"], "interval_s": 1, "timeout_s": 3}}
        write_yaml(f"{d}/gw.yaml", cfg)
        gw = Gateway(f"{d}/gw.yaml", f"{d}/ctl.sock")
        api = gw.api()
        got = wait_for(lambda: E in weights() and weights(), 20)
        check(got and got[E] == 4321 and got[A] == 1234 and got[B] == 100 and D not in got,
              f"the fetched epoch 11 runs with the file's stakes (E 4321, A 1234), the others their weights: {got}")
        check(not fake.scripts, "and no Cadence script was run")
        rc, _, err = gw.stop()
        check(rc == 0, f"stopped: rc {rc}")
    finally:
        fake.stop()
finish()
