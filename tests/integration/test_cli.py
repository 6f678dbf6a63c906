"""check-config, argument and config errors as a user meets them on the command line."""
import os

from common import EXAMPLES, STAKEGATE, TempDir, check, finish, generate, run

with TempDir() as d:
    generate(d, "--duration-ms", 10)
    cfg = os.path.join(d, "config.yaml")
    p = run([STAKEGATE, "check-config", cfg])
    check(f"{cfg}: OK" in p.stdout, "check-config accepts a generated config")
    check("consensus" in p.stdout and "rate_pps" in p.stdout and "198.18.1.0:3569" in p.stdout,
          "check-config prints the per-role and per-node plan")
    check(" ejected" in p.stdout and "blocklist: 1 entries" in p.stdout, "the plan shows ejected nodes and the blocklist")

    text = open(cfg).read()

    def refused(name, new_text, needle):
        bad = os.path.join(d, name)
        with open(bad, "w") as f:
            f.write(new_text)
        p = run([STAKEGATE, "check-config", bad], expect_rc=1)
        check(needle.format(file=bad) in p.stderr, f"check-config refuses {name}: {p.stderr.strip()}")

    refused("share.yaml", text.replace("consensus:    {share: 0.30", "consensus:    {share: 1.7"),
            "{file}: roles.consensus.share: must be between 0 and 1, got 1.7")
    refused("sum.yaml", text.replace("consensus:    {share: 0.30", "consensus:    {share: 0.90"),
            "{file}: roles: shares sum to 1.6 (collection 0.15 + consensus 0.9")
    refused("role.yaml", text.replace("  access:", "  miner: {share: 0.1}\n  access:"), "{file}: roles.miner: unknown key")
    refused("key.yaml", text.replace("capacity: {pps:", "capacity: {ppx: 1, pps:"), "{file}: capacity.ppx: unknown key")
    refused("cidr.yaml", text.replace("198.19.255.0/24", "198.19.255.0/40"), "{file}: blocklist[0].cidr: bad CIDR")
    refused("port.yaml", text.replace("ports: [3569, 9000, 9001]", "ports: [3569, 99999]"),
            "{file}: roles.access.ports[1]: must be a port number between 1 and 65535")
    refused("missing-id.yaml", text.replace("root-protocol-state-snapshot.json", "gone.json"),
            "{file}: identity.flow_snapshot: cannot open '" + d + "/gone.json'")
    refused("missing-stakes.yaml", text.replace("stakes.json", "nostakes.json"),
            "{file}: identity.stake_file: cannot open")

    p = run([STAKEGATE, "check-config", os.path.join(d, "nope.yaml")], expect_rc=1)
    check("nope.yaml: cannot open" in p.stderr, "a missing config file is named")

    # Both Flow examples load (their DNS names pinned through identity.hosts).
    for key, name in [("flow_node_infos", "node-infos.pub.json"), ("flow_snapshot", "root-protocol-state-snapshot.excerpt.json")]:
        ex = os.path.join(d, f"example-{key}.yaml")
        with open(ex, "w") as f:
            f.write(f"""dataplane:
  outside: {{vdev: net_null0}}
  inside: {{vdev: net_null1}}
capacity: {{pps: 10000}}
identity:
  {key}: {EXAMPLES}/{name}
  hosts: {{consensus-001.example-operator.net: 198.18.0.1, access-007.example-operator.net: "2001:2::7"}}
roles:
  consensus: {{share: 0.5}}
  collection: {{share: 0.2}}
  access: {{share: 0.2, ports: [3569, 9000]}}
""")
        p = run([STAKEGATE, "check-config", ex])
        check("79a7f711ba44dfdcfe774769eb97af6af732337fbcf96b788dbe6c51d29c5ec6" in p.stdout and "2001:2::7" in p.stdout,
              f"the shared example {name} loads")

    p = run([STAKEGATE, "replay", "--config", cfg], expect_rc=2)
    check("replay needs --config FILE and --pcap IN" in p.stderr, "replay without --pcap explains its usage")
    p = run([STAKEGATE, "replay", "--config", cfg, "--pcap", os.path.join(d, "none.pcap")], expect_rc=1)
    check("none.pcap: cannot read capture" in p.stderr, "replay names a missing capture")
    p = run([STAKEGATE, "frobnicate"], expect_rc=2)
    check("unknown command 'frobnicate'" in p.stderr, "an unknown command is refused with usage")
    p = run([STAKEGATE, "run", "--config", os.path.join(d, "share.yaml")], expect_rc=1)
    check("roles.consensus.share: must be between 0 and 1" in p.stderr, "run refuses a bad config before touching DPDK")

    two = os.path.join(d, "two-workers.yaml")
    with open(two, "w") as f:
        f.write(text.replace("workers: 1", "workers: 2").replace('"512"', '"256"'))
    p = run([STAKEGATE, "run", "--config", two], expect_rc=1, timeout=60)
    check("workers need 2 RX queues" in p.stdout + p.stderr, "run explains why a net_pcap port cannot feed 2 workers")

finish()
