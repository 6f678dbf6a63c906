#!/usr/bin/env python3
"""Faults against the running binary, forwarding at full speed (docs/reliability.md):
  - SIGHUP with a broken config, a truncated identity file, duplicate NodeIDs, duplicate
    addresses and a table over the slot capacity: each refused with a message naming the
    file and the problem, the running table and generation unchanged, counters intact;
    the same tables through the API get a 4xx with the same reasons;
  - the control socket under abuse: slow requests (slowloris) past the connection limit,
    oversized headers and bodies, garbage: each answered or closed as documented, the data
    path keeps forwarding meanwhile, and the API answers again afterwards."""
import json
import os
import signal
import socket
import time

import yaml

from common import Gateway, TempDir, UnixHTTPConnection, check, endless, finish, generate, read_yaml


def live(d):
    cfg = endless(read_yaml(os.path.join(d, "config.yaml")), d, max_body_bytes=1048576)
    cfg["limits"] = {"sources": 32}
    return yaml.safe_dump(cfg, sort_keys=False)  # text: the test also writes broken versions of it


def status(api):
    s, st = api.call("Status")
    return st


def log_of(gw):
    return gw.log()


with TempDir() as d:
    generate(d, "--duration-ms", 20, "--format", "node-infos", "--ejected", 0, "--nodes-per-role", 4)
    cfg_path = os.path.join(d, "live.yaml")
    good_cfg = live(d)
    open(cfg_path, "w").write(good_cfg)
    ids_path = os.path.join(d, "node-infos.pub.json")
    good_ids = open(ids_path).read()
    nodes = json.loads(good_ids)

    gw = Gateway(cfg_path, f"{d}/ctl.sock")
    api = gw.api()
    time.sleep(0.5)
    st0 = status(api)
    gen0, table0 = st0["identity_generation"], sorted(n["node_id"] for n in api.call("GetIdentities")[1]["nodes"])

    # --- refused reloads -------------------------------------------------------------
    dup_id = nodes + [dict(nodes[0], Address="198.18.200.1:3569")]
    dup_addr = nodes + [dict(nodes[1], NodeID="ee" * 32)]
    over = nodes + [dict(nodes[0], NodeID=f"{i:064x}", Address=f"198.18.201.{i}:3569") for i in range(1, 30)]
    cases = [
        ("broken config", cfg_path, good_cfg.replace("capacity:", "capacity: [", 1), ["live.yaml", "not valid YAML"]),
        ("truncated identity file", ids_path, good_ids[: len(good_ids) // 2], ["node-infos.pub.json", "not valid JSON"]),
        ("duplicate NodeIDs", ids_path, json.dumps(dup_id), ["node-infos.pub.json", nodes[0]["NodeID"]]),
        ("duplicate addresses", ids_path, json.dumps(dup_addr), [nodes[1]["Address"], nodes[1]["NodeID"], "ee" * 32]),
        ("table over the slot capacity", ids_path, json.dumps(over), ["node-infos.pub.json", "capacity is 32"]),
    ]
    for what, path, text, words in cases:
        before = status(api)
        open(path, "w").write(text)
        mark = len(log_of(gw))
        gw.proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 10
        while time.time() < deadline and "SIGHUP:" not in log_of(gw)[mark:]:
            time.sleep(0.05)
        line = next((l for l in log_of(gw)[mark:].splitlines() if "SIGHUP" in l), "")
        check("reload refused" in line and all(w in line for w in words),
              f"SIGHUP with a {what}: refused, naming {words}: {line[line.find('SIGHUP'):][:160]}")
        after = status(api)
        table = sorted(n["node_id"] for n in api.call("GetIdentities")[1]["nodes"])
        grew = int(after["outside_packets"]) > int(before["outside_packets"])
        kept = all(int(after["drops_by_reason"].get(k, 0)) >= int(v) for k, v in before["drops_by_reason"].items())
        check(after["identity_generation"] == gen0 and table == table0 and grew and kept,
              f"...the running table and generation unchanged, still forwarding, no counter went back")
        open(cfg_path, "w").write(good_cfg)
        open(ids_path, "w").write(good_ids)

    # The same tables through the API: refused with the same reasons, nothing changed.
    for what, body, code, word in (("truncated", good_ids[: len(good_ids) // 2], 400, "not valid JSON"),
                                   ("duplicate NodeIDs", json.dumps(dup_id), 400, nodes[0]["NodeID"]),
                                   ("duplicate addresses", json.dumps(dup_addr), 400, "ee" * 32),
                                   ("over capacity", json.dumps(over), 422, "capacity")):
        s, r = api.call("ReplaceIdentities", body)
        check(s == code and word in r.get("message", ""), f"ReplaceIdentities {what}: HTTP {s}, {r.get('message', '')[:120]}")
    check(status(api)["identity_generation"] == gen0, "no refused change moved the generation")

    # --- the control socket under abuse ------------------------------------------------
    def connect():
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(5)
        s.connect(f"{d}/ctl.sock")
        return s

    def exchange(payload):
        s = connect()
        data = b""
        try:
            s.sendall(payload)
        except OSError:  # the server may answer and close before it has read everything
            pass
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        except (socket.timeout, ConnectionResetError):
            pass
        s.close()
        return data

    r = exchange(b"POST /v1/Status HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 16384 + b"\r\n\r\n")
    check(r.startswith(b"HTTP/1.1 431"), f"16 KiB of headers: {r[:40]!r}")
    r = exchange(b"POST /v1/ReplaceIdentities HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 5000000\r\n\r\n" + b"[" * 10)
    check(r.startswith(b"HTTP/1.1 413"), f"a 5 MB body against max_body_bytes 1 MiB: {r[:40]!r}")
    r = exchange(bytes(range(256)) * 4)
    check(r.startswith(b"HTTP/1.1 400") or r == b"", f"garbage: {r[:40]!r}")

    before = status(api)
    api.conn.close()  # its keep-alive connection would count against the limit
    time.sleep(0.2)
    t0 = time.time()
    slow = []
    for _ in range(80):  # more than the 64-connection limit
        try:
            s = connect()
            s.sendall(b"POST /v1/Status HTTP/1.1\r\nHo")
            slow.append(s)
        except OSError:
            break
    time.sleep(1.0)
    refused = 0
    for s in slow[64:]:  # the ones over the limit were closed by the server at once
        try:
            s.settimeout(2)
            refused += s.recv(1) == b""
        except OSError:
            refused += 1
    check(refused == len(slow) - 64, f"{len(slow)} slow connections: the {len(slow) - 64} over the limit of 64 are closed at once")
    # Each keeps dribbling a byte a second; the server's 10 s read timeout ends them.
    closed_at = None
    while time.time() - t0 < 20:
        for s in slow[:64]:
            try:
                s.send(b"x")
            except OSError:
                pass
        try:
            slow[0].settimeout(0.01)
            if slow[0].recv(1) == b"":
                closed_at = time.time() - t0
                break
        except socket.timeout:
            pass
        except OSError:
            closed_at = time.time() - t0
            break
        time.sleep(1)
    check(closed_at is not None and 9 <= closed_at <= 13, f"a request still incomplete after the 10 s read timeout is closed ({closed_at and round(closed_at, 1)} s)")
    for s in slow:
        s.close()
    api = UnixHTTPConnection(f"{d}/ctl.sock")
    after = status(api)
    dt = time.time() - t0
    rate = (int(after["outside_packets"]) - int(before["outside_packets"])) / dt
    check(rate > 100000, f"the data path kept forwarding during the abuse ({rate / 1e6:.2f} Mpps)")
    s, st = UnixHTTPConnection(f"{d}/ctl.sock").call("Status")
    check(s == 200, "the API answers again afterwards")

    rc, out, err = gw.stop()
    check(rc == 0, f"gateway exits 0 after all of it (rc {rc})")

finish()
