"""check-config, argument and config errors as a user meets them on the command line."""
import copy
import os

from common import EXAMPLES, STAKEGATE, STAKEGATECTL, TempDir, check, finish, generate, read_yaml, run, write_yaml

# Both programs say which version they are, as operators and bug reports ask first.
for prog, name in ((STAKEGATE, "stakegate"), (STAKEGATECTL, "stakegatectl")):
    p = run([prog, "--version"])
    check(p.stdout.startswith(f"{name} ") and len(p.stdout.split()) == 2, f"{name} --version: {p.stdout.strip()}")

# Without a command, each lists its commands (exit 2, as for any usage error).
for prog, first in ((STAKEGATE, "check-config"), (STAKEGATECTL, "evidence")):
    p = run([prog], expect_rc=2)
    check("Subcommands:" in p.stderr and first in p.stderr, f"{os.path.basename(prog)} alone lists its commands")

with TempDir() as d:
    generate(d, "--duration-ms", 10)
    cfg = os.path.join(d, "config.yaml")
    p = run([STAKEGATE, "check-config", cfg])
    check(f"{cfg}: OK" in p.stdout, "check-config accepts a generated config")
    p2 = run([STAKEGATE, "check-config", "--config", cfg])
    check(p2.stdout == p.stdout, "check-config --config FILE (as run and replay take it) says the same")
    check("consensus" in p.stdout and "rate_pps" in p.stdout and "198.18.1.0:3569" in p.stdout,
          "check-config prints the per-role and per-node plan")
    check(" ejected" in p.stdout and "blocklist: 1 entries" in p.stdout, "the plan shows ejected nodes and the blocklist")

    good = read_yaml(cfg)

    # Warnings: a config that runs but leaves something unprotected says so, and names the fix.
    warn = "infra.neighbours is not set: the upstream router's ARP and neighbour solicitations"
    check(f"{cfg}: {warn}" in p.stdout, "check-config warns while infra.neighbours is empty, naming the file")
    listed = copy.deepcopy(good)
    listed.setdefault("infra", {})["neighbours"] = ["02:00:00:00:fe:01"]
    p = run([STAKEGATE, "check-config", write_yaml(os.path.join(d, "neighbours.yaml"), listed)])
    check(warn not in p.stdout and "02:00:00:00:fe:01" in p.stdout,
          "with the router's MAC listed: no such warning, and the plan shows the MAC")

    def refused(name, change, needle):
        c = copy.deepcopy(good)
        change(c)
        bad = write_yaml(os.path.join(d, name), c)
        p = run([STAKEGATE, "check-config", bad], expect_rc=1)
        check(needle.format(file=bad) in p.stderr, f"check-config refuses {name}: {p.stderr.strip()}")

    # Shares summing to exactly 1 without a sessions key (DESIGN.md's example, configs from
    # before sessions): accepted, the default sessions share on top, and said so.
    full = copy.deepcopy(good)
    full.pop("sessions", None)
    others = sum(r["share"] for r in full["roles"].values()) + full["unregistered"]["share"]
    full["roles"]["consensus"]["share"] = round(full["roles"]["consensus"]["share"] + 1.0 - others, 6)
    p = run([STAKEGATE, "check-config", write_yaml(os.path.join(d, "full.yaml"), full)])
    check("sessions.share is not set: its default 0.05" in p.stdout and "up to 1.05 x capacity" in p.stdout,
          f"shares summing to 1 without sessions.share: accepted, warned: {p.stdout[-600:]}")

    refused("share.yaml", lambda c: c["roles"]["consensus"].update(share=1.7),
            "{file}: roles.consensus.share: must be between 0 and 1, got 1.7")
    refused("sum.yaml", lambda c: c["roles"]["consensus"].update(share=0.9),
            "{file}: roles: shares sum to 1.6 (collection 0.15 + consensus 0.9")
    refused("role.yaml", lambda c: c["roles"].update(miner={"share": 0.1}), "{file}: roles.miner: unknown key")
    refused("key.yaml", lambda c: c["capacity"].update(ppx=1), "{file}: capacity.ppx: unknown key")
    refused("cidr.yaml", lambda c: c["blocklist"][0].update(cidr="198.19.255.0/40"), "{file}: blocklist[0].cidr: bad CIDR")
    refused("port.yaml", lambda c: c["roles"]["access"].update(ports=[3569, 99999]),
            "{file}: roles.access.ports[1]: must be a port number between 1 and 65535")
    refused("missing-id.yaml", lambda c: c["identity"].update(flow_snapshot="gone.json"),
            "{file}: identity.flow_snapshot: cannot read '" + d + "/gone.json': No such file or directory")
    refused("missing-stakes.yaml", lambda c: c["identity"].update(stake_file="nostakes.json"),
            "{file}: identity.stake_file: cannot read")
    os.mkfifo(os.path.join(d, "fifo.json"))
    refused("fifo-id.yaml", lambda c: c["identity"].update(flow_snapshot="fifo.json"),
            "{file}: identity.flow_snapshot: cannot read '" + d + "/fifo.json': not a regular file")

    p = run([STAKEGATE, "check-config", os.path.join(d, "nope.yaml")], expect_rc=1)
    check("nope.yaml: cannot read" in p.stderr and "No such file or directory" in p.stderr, "a missing config file is named")

    # Both Flow examples load (their DNS names pinned through identity.hosts).
    for key, name in [("flow_node_infos", "node-infos.pub.json"), ("flow_snapshot", "root-protocol-state-snapshot.excerpt.json")]:
        ex = write_yaml(os.path.join(d, f"example-{key}.yaml"), {
            "dataplane": {"outside": {"vdev": "net_null0"}, "inside": {"vdev": "net_null1"}},
            "capacity": {"pps": 10000},
            "identity": {key: f"{EXAMPLES}/{name}",
                         "hosts": {"consensus-001.example-operator.net": "198.18.0.1",
                                   "access-007.example-operator.net": "2001:2::7"}},
            "roles": {"consensus": {"share": 0.5}, "collection": {"share": 0.2},
                      "access": {"share": 0.2, "ports": [3569, 9000]}}})
        p = run([STAKEGATE, "check-config", ex])
        check("79a7f711ba44dfdcfe774769eb97af6af732337fbcf96b788dbe6c51d29c5ec6" in p.stdout and "2001:2::7" in p.stdout,
              f"the shared example {name} loads")

    p = run([STAKEGATE, "replay", "--config", cfg], expect_rc=2)
    check("--pcap is required" in p.stderr, "replay without --pcap explains its usage")
    for sub in ("run", "replay", "check-config"):
        p = run([STAKEGATE, sub, "--help"])
        check(f"Usage: stakegate {sub}" in p.stdout, f"stakegate {sub} --help")
    p = run([STAKEGATE, "run", "--config", cfg, "--exit-on-idle", "soon"], expect_rc=2)
    check("--exit-on-idle" in p.stderr, "a bad --exit-on-idle value is a usage error, not a crash")
    p = run([STAKEGATE, "replay", "--config", cfg, "--pcap", os.path.join(d, "none.pcap")], expect_rc=1)
    check("none.pcap: cannot read capture" in p.stderr, "replay names a missing capture")
    p = run([STAKEGATE, "frobnicate"], expect_rc=2)
    check("unknown command 'frobnicate'" in p.stderr, "an unknown command is refused with usage")
    p = run([STAKEGATE, "run", "--config", os.path.join(d, "share.yaml")], expect_rc=1)
    check("roles.consensus.share: must be between 0 and 1" in p.stderr, "run refuses a bad config before touching DPDK")

    two_workers = copy.deepcopy(good)
    two_workers["dataplane"]["workers"] = 2
    two_workers["dataplane"]["eal"][two_workers["dataplane"]["eal"].index("-m") + 1] = "256"
    two = write_yaml(os.path.join(d, "two-workers.yaml"), two_workers)
    p = run([STAKEGATE, "run", "--config", two], expect_rc=1, timeout=60)
    check("workers need 2 RX queues" in p.stdout + p.stderr, "run explains why a net_pcap port cannot feed 2 workers")

finish()
