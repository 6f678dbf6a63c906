"""The control API against the running binary: every RPC's success and error cases over
the Unix socket, stakegatectl's tables, SIGHUP reloads (a broken config changes
nothing), and the TCP listener's bearer token. A second gateway on the same control socket
is refused."""
import json
import os
import re
import signal
import stat
import subprocess
import time

from common import (STAKEGATE, STAKEGATECTL, Gateway, TempDir, check, endless, finish, free_port,
                    generate, read_yaml, run, write_yaml)


with TempDir() as d:
    exp = generate(d, "--duration-ms", 20, "--format", "node-infos", "--ejected", 0)
    cfg = os.path.join(d, "live.yaml")
    base = endless(read_yaml(os.path.join(d, "config.yaml")), d)
    # Evidence only on request here (the endless replay at full speed graylists nodes).
    base["evidence"] = {"dir": f"{d}/ev", "on_graylist": False, "window_s": 1, "max_samples": 20}
    write_yaml(cfg, base)
    infos = json.load(open(os.path.join(d, "node-infos.pub.json")))
    node0 = infos[0]["NodeID"]

    gw = Gateway(cfg, f"{d}/ctl.sock")
    api = gw.api()
    mode = stat.S_IMODE(os.stat(f"{d}/ctl.sock").st_mode)
    check(mode == 0o660, f"control socket mode {oct(mode)}")

    s, st = api.call("Status")
    check(s == 200 and st["nodes"] == 20 and st["identity_generation"] == "1", f"Status: {st['nodes']} nodes, generation {st['identity_generation']}")
    # A second gateway on the same config (a manual run while the service runs): refused
    # before it touches a device; the first keeps its socket.
    p = run([STAKEGATE, "run", "--config", cfg], expect_rc=1, timeout=60)
    check(f"control.socket: {d}/ctl.sock: another process serves it" in p.stderr and "EAL" not in p.stderr,
          f"a second gateway on the same control socket is refused: {p.stderr.strip()[-200:]}")
    s, st = api.call("Status")
    check(s == 200 and os.path.exists(f"{d}/ctl.sock"), "the first still answers on its socket")
    time.sleep(1.2)
    s, st = api.call("Status")
    check(int(st["outside_packets"]) > 0, f"traffic flows: {st['outside_packets']} packets")
    wl = st.get("worker_load", [])
    check(len(wl) == 1 and 0 < wl[0].get("cycles_per_packet", 0) < 1e6 and 0 < wl[0].get("busy_ratio", 0) <= 1,
          f"the worker's load while traffic flows: {wl}")
    p = run([STAKEGATECTL, "--socket", f"{d}/ctl.sock", "status"])
    check(re.search(r"worker 0: busy \d+ %, \d+ cycles/packet", p.stdout), f"stakegatectl status shows it: {p.stdout[:300]}")
    # Attention lines only for what happened: the scenario's forged frames claim cluster
    # sources to cluster addresses; it has no guarded neighbour and no inside traffic.
    dg = st.get("diagnostics", {})
    attention = [l for l in p.stdout.splitlines() if l.startswith("attention: ")]
    check(int(dg.get("spoofed_internal", 0)) > 0 and int(dg.get("neighbour_impostors", 0)) == 0
          and int(dg.get("inside_foreign", 0)) == 0 and len(attention) == 1
          and "from one cluster address to another" in attention[0],
          f"stakegatectl status: an attention line for each diagnostic that counted, and only those ({attention}, {dg})")
    s, ids = api.call("GetIdentities", method="GET")
    check(s == 200 and len(ids["nodes"]) == 20, "GetIdentities (GET) lists the table")

    # ReplaceIdentities: the Flow file as it is; then refusals that change nothing.
    s, r = api.call("ReplaceIdentities", json.dumps(infos[:10]))
    check(s == 200 and r["nodes"] == 10 and r["removed"] == 10 and r["generation"] == "2", f"ReplaceIdentities: {r}")
    s, r = api.call("ReplaceIdentities", "[{\"Role\": \"consensus\",")
    check(s == 400 and r["code"] == "invalid_argument" and "not valid JSON" in r["message"], f"bad JSON: {r}")
    s, r = api.call("ReplaceIdentities", json.dumps(infos[:2] + infos[:1]))
    check(s == 400 and "appears twice" in r["message"], f"duplicate NodeID refused: {r['message']}")
    s, st = api.call("Status")
    check(st["identity_generation"] == "2" and st["nodes"] == 10, "refused tables left generation 2 running")
    one = {"nodes": {"nodes": [{"node_id": node0, "role": "consensus", "address": "198.18.9.9:3569"}]}, "stake_json": json.dumps({node0: 5})}
    s, r = api.call("ReplaceIdentities", json.dumps(one))
    check(s == 409 and "removes 9 of the 10 running nodes" in r.get("message", ""), f"a table removing most nodes needs force: {r}")
    s, st = api.call("Status")
    check(st["identity_generation"] == "2" and st["nodes"] == 10, "the refused table left generation 2 running")
    s, r = api.call("ReplaceIdentities", json.dumps({**one, "force": True}))
    check(s == 200 and r["nodes"] == 1, "ReplaceIdentities in the proto form, with stakes, forced")
    api.call("ReplaceIdentities", json.dumps(infos))

    # Block / unblock.
    s, r = api.call("Block", {"cidr": "198.51.100.0/24", "reason": "scanner", "expires_in_s": 3600})
    check(s == 200 and r["entry"]["origin"] == "api" and int(r["entry"]["expires_at_unix"]) > time.time(), f"Block CIDR: {r['entry']}")
    s, r = api.call("Block", {"cidr": "198.51.100.0/33"})
    check(s == 400 and "bad CIDR" in r["message"], f"bad CIDR: {r['message']}")
    s, r = api.call("Block", {"node_id": "f" * 64})
    check(s == 404 and r["code"] == "not_found", f"unknown node: {r['message']}")
    s, r = api.call("Block", {"cidr": "198.51.100.0/24", "node_id": node0})
    check(s == 400, "both cidr and node_id refused")
    s, r = api.call("ListBlocklist")
    check(len(r["entries"]) == 2, f"ListBlocklist: config entry + API entry ({len(r['entries'])})")
    s, r = api.call("Unblock", {"cidr": "198.51.100.0/24"})
    check(s == 200 and r["removed"] == 1, "Unblock")
    s, r = api.call("Unblock", {"cidr": "198.51.100.0/24"})
    check(s == 404, "Unblock of what is not blocked: not_found")

    # QoS and nodes.
    s, r = api.call("GetRoleQos", {"role": "access"})
    check(s == 200 and r["roles"][0]["ports"] == [3569, 9000, 9001], f"GetRoleQos access: {r['roles'][0]}")
    s, r = api.call("SetRoleQos", {"role": "access", "share": 0.9})
    check(s == 400 and "shares sum to" in r["message"], f"share over the limit refused: {r['message']}")
    s, r = api.call("SetRoleQos", {"role": "access", "share": 0.08, "min_pps": 60})
    check(s == 200 and abs(r.get("qos", {}).get("role_pps", 0) - 0.08 * 200000) < 1e-6, f"SetRoleQos: {r}")
    s, r = api.call("GetNode", {"node_id": node0})
    check(s == 200 and r["node"]["node_id"] == node0 and "counters" in r, "GetNode")
    s, r = api.call("GetNode", {"node_id": "nope"})
    check(s == 400 and r["code"] == "invalid_argument", "GetNode with a malformed NodeID: invalid_argument")
    s, r = api.call("GetNode", {"node_id": "f" * 64})
    check(s == 404 and r["code"] == "not_found", "GetNode unknown: not_found")
    s, r = api.call("Top", {"limit": 3})
    check(s == 200 and len(r["nodes"]) <= 3 and len(r["roles"]) == 9, "Top")
    s, r = api.call("Nope")
    check(s == 404 and r["code"] == "not_found", "unknown RPC")

    # Peer score and evidence. Replayed endlessly at full speed, the 20 ms capture is a
    # flood from every node: they are graylisted.
    deadline = time.time() + 10
    while time.time() < deadline and api.call("ListNodes", {"graylisted_only": True})[1]["graylisted"] == 0:
        time.sleep(0.1)
    s, r = api.call("ListNodes", {"graylisted_only": True})
    check(s == 200 and r["graylisted"] >= 1 and len(r["nodes"]) >= 1 and all(n["graylisted"] for n in r["nodes"])
          and r["nodes"][0]["score"] < -100 and int(r["graylist_entries"]) >= r["graylisted"],
          f"ListNodes graylisted_only: {r['graylisted']} graylisted, lowest score {r['nodes'][0]['score'] if r['nodes'] else None}")
    # A graylisted node floods its verified connections at ten times its cut rate: which
    # nodes the endless replay pushes over their rates depends on the build's speed, so the
    # operator's case below is opened on one of them rather than on a fixed node.
    gray = r["nodes"][0] if r["nodes"] else {"node_id": node0, "address": infos[0]["Address"]}
    s, r = api.call("ListNodes", {})
    check(s == 200 and len(r["nodes"]) == 20 and [n["score"] for n in r["nodes"]] == sorted(n["score"] for n in r["nodes"]),
          "ListNodes: every node, lowest score first")
    p = run([STAKEGATECTL, "--socket", f"{d}/ctl.sock", "nodes", "--graylisted"])
    check(p.stdout.split()[:10] == ["node_id", "role", "address", "rate_pps", "score", "graylisted", "passed", "over_rate",
                                    "request_passed", "request_over_rate"] and " yes " in p.stdout,
          "stakegatectl nodes --graylisted")
    # The request channel's columns hold the node's counters, as GetNode gives them.
    row = next(line.split() for line in p.stdout.splitlines() if line.startswith(gray["node_id"]))
    s, one = api.call("GetNode", {"node_id": gray["node_id"]})
    got = one.get("counters", {})
    check(s == 200 and int(row[8]) <= int(got.get("request_passed", 0)) and int(row[9]) <= int(got.get("request_over_rate", 0))
          and int(row[9]) + int(row[8]) > 0,
          f"stakegatectl nodes: request channel columns {row[8:10]} (GetNode after: {got})")
    s, r = api.call("OpenEvidence", {"node_id": "nope"})
    check(s == 400, "OpenEvidence with a bad NodeID: invalid_argument")
    s, r = api.call("OpenEvidence", {"node_id": gray["node_id"]})
    check(s == 200 and r["reason"] == "operator" and r["open"] and r["node_id"] == gray["node_id"],
          f"OpenEvidence: case {r.get('id')}")
    deadline = time.time() + 10
    case = {}
    while time.time() < deadline:
        case = next((c for c in api.call("ListEvidence")[1]["cases"] if c["id"] == r.get("id")), {})
        if case and not case["open"]:
            break
        time.sleep(0.1)
    samples = int(case.get("samples", 0))
    report = json.load(open(os.path.join(case["dir"], "report.json"))) if case.get("dir") else {"sample": {}}
    # max_samples dropped packets of its verified connections, and at most a quarter as many others.
    verified = report["sample"].get("verified", 0)
    dropped = report.get("counters", {}).get("verified", {}).get("over_rate", 0)
    check(case.get("open") is False and 20 <= samples <= 25 and verified == 20 and not case.get("error"),
          f"the operator's case is written after its 1 s window with max_samples verified packets: {verified} "
          f"verified samples of {dropped} verified drops, {samples} in all: {case}")
    srcs = subprocess.run(["tshark", "-r", os.path.join(case.get("dir", d), "sample.pcapng"), "-T", "fields", "-e", "ip.src"],
                          capture_output=True, text=True).stdout.split()
    gray_ip = gray["address"].rsplit(":", 1)[0]
    check(len(srcs) == samples and set(srcs) == {gray_ip}, f"its sample holds only {gray_ip}'s packets ({len(srcs)})")
    p = run([STAKEGATECTL, "--socket", f"{d}/ctl.sock", "evidence"])
    check(r.get("id", "?") in p.stdout and "written" in p.stdout, "stakegatectl evidence lists the case")
    s, r = api.call("Status", "{}", content_type="text/plain")
    check(s == 415, "unsupported content type refused")

    # stakegatectl, human-readable and --json.
    ctl = [STAKEGATECTL, "--socket", f"{d}/ctl.sock"]
    # Its tables show every reason the API counts, each figure between the API's just
    # before and just after (traffic flows; counters only grow).
    def between(name, got, lo, hi):
        return lo <= int(got) <= hi or print(f"  {name}: {got} not in [{lo}, {hi}]")

    _, st0 = api.call("Status")
    p = run(ctl + ["status"])
    _, st1 = api.call("Status")
    reasons = list(st0["drops_by_reason"])
    rows = dict(l.split() for l in p.stdout.splitlines()[p.stdout.splitlines().index("reason                  dropped") + 1:])
    check("identity: generation" in p.stdout and len(reasons) == 12 and set(rows) == set(reasons) and all(
        between(k, rows[k], int(st0["drops_by_reason"][k]), int(st1["drops_by_reason"][k])) for k in reasons),
          f"stakegatectl status: all {len(reasons)} drop reasons, as the API counts them")
    check(any(int(st1["drops_by_reason"][k]) > 0 for k in ("spoofed", "l2_denied", "request_over_rate")),
          "the traffic has drops of a reason added after the first seven")
    m = re.search(r"sessions: (\d+) opened or accepted, (\d+) verified, (\d+) evicted for room \((\d+) entries per worker\)",
                  p.stdout)
    ss0, ss1 = st0["sessions"], st1["sessions"]
    check(m is not None and int(ss1["created"]) > 0 and int(m.group(4)) == int(ss1["table_entries"]) > 0 and all(
        between(k, m.group(i + 1), int(ss0.get(k, 0)), int(ss1.get(k, 0))) for i, k in enumerate(["created", "verified", "evicted"])),
          f"stakegatectl status: the sessions, as the API counts them ({m.group(0) if m else p.stdout[-300:]})")
    _, top0 = api.call("Top")
    p = run(ctl + ["top"])
    _, top1 = api.call("Top")
    lines = [l.split() for l in p.stdout.split("\n\n")[0].splitlines()]
    by_role = {r["role"]: r for r in top0["roles"]}, {r["role"]: r for r in top1["roles"]}
    header = lines[0]
    check(header[:2] == ["role", "passed"] and sorted(header[2:]) == sorted(reasons) and len(lines) == 10 and all(
        between(f"{l[0]} {k}", l[2 + i], int(by_role[0][l[0]]["dropped"][k]), int(by_role[1][l[0]]["dropped"][k]))
        for l in lines[1:] for i, k in enumerate(header[2:])),
          "stakegatectl top: passed and every drop reason per role, as the API counts them")
    _, n0 = api.call("GetNode", {"node_id": node0})
    p = run(ctl + ["node", node0])
    _, n1 = api.call("GetNode", {"node_id": node0})
    lines = p.stdout.splitlines()
    head = lines.index(next(l for l in lines if l.startswith("passed")))
    cells = dict(zip(lines[head].split(), lines[head + 1].split()))
    names = ["passed", "over_rate", "request_passed", "request_over_rate", "session_passed", "session_over_rate",
             "port_denied", "blocklisted", "ejected"]
    check(list(cells) == names and int(cells["request_passed"]) > 0 and all(
        between(k, cells[k], int(n0["counters"].get(k, 0)), int(n1["counters"].get(k, 0))) for k in names),
          f"stakegatectl node: its verified and unverified counters ({cells})")
    p = run(ctl + ["--json", "node", node0])
    check(json.loads(p.stdout)["node"]["node_id"] == node0, "stakegatectl --json node")
    p = run(ctl + ["qos"])
    check("consensus" in p.stdout and "3569" in p.stdout, "stakegatectl qos")
    p = run(ctl + ["block", "198.51.100.7/32", "--reason", "manual"])
    check("ok: generation" in p.stdout, "stakegatectl block")
    p = run(ctl + ["blocklist"])
    check("198.51.100.7/32" in p.stdout and "manual" in p.stdout, "stakegatectl blocklist")
    p = run(ctl + ["unblock", "198.51.100.8/32"], expect_rc=1)
    check("not_found" in p.stderr, f"stakegatectl explains a refusal: {p.stderr.strip()}")
    # A node by a unique start of its NodeID (the short IDs of tables and folder names).
    p = run(ctl + ["--json", "node", node0[:8].upper()])
    check(json.loads(p.stdout)["node"]["node_id"] == node0, f"stakegatectl node {node0[:8].upper()}: the node it starts")
    absent = next(x for x in (f"{i:012x}" for i in range(100)) if not any(n["NodeID"].startswith(x) for n in infos))
    p = run(ctl + ["node", absent], expect_rc=1)
    check(f"no node of the running identity table has a NodeID starting with '{absent}'" in p.stderr,
          f"a start of no NodeID is refused: {p.stderr.strip()}")
    twins = [f"abcdef{i}" + "0" * 57 for i in (1, 2)]
    s, r = api.call("ReplaceIdentities", json.dumps({"nodes": {"nodes": [
        {"node_id": twins[0], "role": "consensus", "address": "198.18.9.1:3569"},
        {"node_id": twins[1], "role": "execution", "address": "198.18.9.2:3569"}]}, "force": True}))
    check(s == 200, f"a table of two nodes whose IDs start alike: {r}")
    p = run(ctl + ["node", "abcdef"], expect_rc=1)
    check("'abcdef' starts 2 NodeIDs (abcdef1000000000..., abcdef2000000000...): give more of it" in p.stderr,
          f"an ambiguous start is refused, naming both: {p.stderr.strip()}")
    p = run(ctl + ["block", "nothing"], expect_rc=1)
    check("bad CIDR 'nothing'" in p.stderr, f"a target that is neither hex nor a CIDR is judged as a CIDR: {p.stderr.strip()}")
    run(ctl + ["block", "abcdef2", "--reason", "by prefix"])
    _, bl = api.call("ListBlocklist")
    check(any(e.get("node_id") == twins[1] and e.get("reason") == "by prefix" for e in bl["entries"]),
          "stakegatectl block abcdef2 blocks that node")
    run(ctl + ["unblock", "ABCDEF2"])
    _, bl = api.call("ListBlocklist")
    check(not any(e.get("node_id") == twins[1] for e in bl["entries"]), "stakegatectl unblock ABCDEF2 lifts it")
    p = run(ctl + ["identities", "replace", os.path.join(d, "node-infos.pub.json"), "--stakes", os.path.join(d, "stakes.json"),
                   "--force"])
    check("ok: generation" in p.stdout, "stakegatectl identities replace --stakes")

    # Reload: through the API and by SIGHUP; a broken file changes nothing.
    s, before = api.call("Status")
    write_yaml(cfg, {**base, "capacity": {"pps": "lots"}})
    s, r = api.call("Reload")
    check(s == 400 and "capacity.pps" in r["message"], f"Reload of a broken config refused: {r['message']}")
    gw.proc.send_signal(signal.SIGHUP)
    time.sleep(0.5)
    s, after = api.call("Status")
    check(gw.proc.poll() is None and after["identity_generation"] == before["identity_generation"],
          "SIGHUP with a broken config: still running, same generation")
    check(int(after["outside_packets"]) >= int(before["outside_packets"]), "counters intact after the refused reload")
    write_yaml(cfg, {**base, "capacity": {"pps": 300000}})
    gw.proc.send_signal(signal.SIGHUP)
    time.sleep(0.5)
    s, r = api.call("GetRoleQos", {"role": "consensus"})
    check(abs(r["capacity_pps"] - 300000) < 1e-6, "SIGHUP with a good config applies it")
    s, r = api.call("Reload")
    check(s == 200, "Reload RPC")
    rc, out, err = gw.stop()
    check(rc == 0, "gateway exits 0")
    check("SIGHUP: reload refused" in err and "the running policy is unchanged" in err and "capacity.pps" in err,
          "the refused SIGHUP is logged with its reason")

    # TCP control listener: only with a token, and then every request needs it.
    tcp = f"127.0.0.1:{free_port()}"
    write_yaml(cfg, endless(read_yaml(os.path.join(d, "config.yaml")), d, tcp=tcp))
    p = run([STAKEGATE, "run", "--config", cfg], expect_rc=1, timeout=30)
    check("control.tcp: a TCP control listener needs control.token_file" in p.stderr, "refuses TCP without a token")
    token = os.path.join(d, "token")
    open(token, "w").write("s3cret-token-0123456789\n")
    os.chmod(token, 0o600)  # owner-only: a token others could read is refused
    write_yaml(cfg, endless(read_yaml(os.path.join(d, "config.yaml")), d, tcp=tcp, token_file=token))
    gw = Gateway(cfg, f"{d}/ctl.sock")
    import http.client
    host, port = tcp.split(":")
    for header, want in [(None, 401), ("Bearer wrong-token-0123456789", 401), ("Bearer s3cret-token-0123456789", 200)]:
        c = http.client.HTTPConnection(host, int(port), timeout=10)
        c.request("POST", "/v1/Status", body="{}", headers={"Authorization": header} if header else {})
        r = c.getresponse()
        body = r.read()
        check(r.status == want, f"TCP with {header or 'no token'}: HTTP {r.status}")
    p = run([STAKEGATECTL, "--url", f"http://{tcp}", "--token-file", token, "status"])
    check("identity: generation" in p.stdout, "stakegatectl --url --token-file")
    rc, _, _ = gw.stop(signal.SIGKILL)  # a crash: its socket stays behind, stale
    check(rc == -9 and os.path.exists(f"{d}/ctl.sock"), "a killed gateway leaves its control socket behind")
    gw = Gateway(cfg, f"{d}/ctl.sock")
    check(gw.api().call("Status")[0] == 200, "the next one replaces the stale socket and answers there")
    rc, _, _ = gw.stop()
    check(rc == 0, "gateway with TCP listener exits 0")

finish()
