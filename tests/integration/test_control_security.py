#!/usr/bin/env python3
"""The control plane cannot be turned against the appliance (docs/api.md, "Security model").

Against the real binary, each part with a gateway of its own:
1. A flood of TCP connections declaring 64 MiB bodies with a wrong token is refused on the
   headers (401, closed; the address then backs off), the process's memory stays within a
   small bound, and the admin Unix socket answers all along.
2. TLS with client certificates: stakegatectl with the CA and a client certificate the CA
   signed works; one signed by another CA, or none, is refused in the handshake; /metrics
   in TLS with bcrypt basic auth refuses a scrape without or with a wrong password.
3. Roles and audit: the read-only socket and the read-only token can read but not change
   the policy (403); each change is logged with its caller (uid and pid of the Unix peer).
4. Token rotation: after a new token file and a reload, the old token is refused and the
   new one works; a token file others may read is refused at start.
5. A restart keeps the blocks made through the API (state_dir), with who made them.
6. Reloads read files off the control thread: a FIFO or an oversized file as the identity
   table is refused at once, a table too slow to load is refused at its deadline while
   /metrics answers meanwhile; `stakegatectl reload` exits 1 each time, the running
   policy stays and stakegate_last_reload_success says 0.
7. What the listeners need of the host (TLS files that load and match, the sockets' groups
   and folders, owner-only token files): check-config refuses what run would, and run refuses it
   before DPDK touches a device.
"""
import base64
import json
import os
import signal
import socket
import ssl
import subprocess
import threading
import time
import urllib.request

from common import (STAKEGATECTL, Gateway, TempDir, UnixHTTPConnection, check, finish, free_port, metric_values,
                    one_node_config, read_yaml, write_yaml)

NODE = "ab" * 32


def token_file(d, name, value, mode=0o600):
    path = os.path.join(d, name)
    with open(path, "w") as f:
        f.write(value + "\n")
    os.chmod(path, mode)
    return path


def base_config(d, **control):
    c = one_node_config(d, "net_null0", "net_null1,no-rx=1", evidence={"dir": f"{d}/evidence"})
    c["control"].update(control)
    return write_yaml(os.path.join(d, "stakegate.yaml"), c)


def ctl(*args, socket_path=None, timeout=30):
    cmd = [STAKEGATECTL] + (["--socket", socket_path] if socket_path else []) + list(args)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def raw_request(port, headers, body=b"", tls_ctx=None, read=True):
    """One HTTP request on a fresh TCP connection; returns (status line, connection)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    if tls_ctx:
        s = tls_ctx.wrap_socket(s, server_hostname="127.0.0.1")
    s.sendall(headers.encode() + body)
    if not read:
        return None, s
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    except OSError:
        pass
    return data.split(b"\r\n", 1)[0].decode(errors="replace"), s


def part_flood(d):
    print("\n== 64 connections declaring 64 MiB bodies with a wrong token", flush=True)
    port = free_port()
    cfg = base_config(d, tcp=f"127.0.0.1:{port}", token_file=token_file(d, "admin.token", "A" * 32))
    gw = Gateway(cfg, f"{d}/ctl.sock")
    try:
        rss0 = gw.rss_kb()
        header = (f"POST /v1/Block HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {'B' * 32}\r\n"
                  "Content-Type: application/json\r\nContent-Length: 67108864\r\n\r\n")
        results, conns = [], []
        unix_ok, stop = [], threading.Event()

        def poll_unix():
            while not stop.is_set():
                t0 = time.time()
                try:
                    s, _ = UnixHTTPConnection(f"{d}/ctl.sock").call("Status")
                    unix_ok.append(s == 200 and time.time() - t0 < 2)
                except OSError:
                    unix_ok.append(False)
                time.sleep(0.05)
        poller = threading.Thread(target=poll_unix)
        poller.start()
        for _ in range(64):
            try:
                status, c = raw_request(port, header, b"x" * 65536)
                results.append(status)
                conns.append(c)
            except OSError as e:
                results.append(type(e).__name__)
        time.sleep(0.5)
        rss1 = gw.rss_kb()
        stop.set()
        poller.join()
        refused_on_headers = sum(r.startswith("HTTP/1.1 401") for r in results)
        closed = sum(not r.startswith("HTTP/1.1 2") for r in results)
        check(closed == 64 and refused_on_headers >= 5,
              f"all 64 refused: {refused_on_headers} with 401 on their headers, the rest closed at once "
              "(per-address limit, then back-off)")
        check(rss1 - rss0 < 16 * 1024, f"the gateway's memory grew {(rss1 - rss0) / 1024:.1f} MiB (< 16 MiB; 64 x 64 MiB declared)")
        check(unix_ok and all(unix_ok), f"the admin Unix socket answered every one of {len(unix_ok)} status calls within 2 s")
        for c in conns:
            c.close()
        log = gw.log()
        check("failed to authenticate 5 times" in log and "refused for" in log, "the back-off is logged")
    finally:
        gw.stop()


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_pki(d):
    """CA 1 signs the server (IP SAN 127.0.0.1) and a client; CA 2 signs another client."""
    for ca in ("ca1", "ca2"):
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
                "-subj", f"/CN=stakegate test {ca}", "-keyout", f"{ca}.key", "-out", f"{ca}.pem", cwd=d)
    for name, ca, extra in (("server", "ca1", "subjectAltName=IP:127.0.0.1"), ("client", "ca1", "extendedKeyUsage=clientAuth"),
                            ("stranger", "ca2", "extendedKeyUsage=clientAuth")):
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", f"/CN={name}",
                "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=d)
        with open(os.path.join(d, f"{name}.ext"), "w") as f:
            f.write(extra + "\n")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key", "-CAcreateserial",
                "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.pem", cwd=d)
        os.chmod(os.path.join(d, f"{name}.key"), 0o600)


def part_tls(d):
    print("\n== TLS: client certificates for the control listener, basic auth for /metrics", flush=True)
    make_pki(d)
    port, mport = free_port(), free_port()
    p = subprocess.run([STAKEGATECTL, "hash-password", "--cost", "4"], input="scrape-secret\n", capture_output=True, text=True)
    check(p.returncode == 0 and p.stdout.startswith("$2b$04$"), f"stakegatectl hash-password prints a bcrypt hash ({p.stdout.strip()[:7]}...)")
    cfg = base_config(d, tcp=f"127.0.0.1:{port}", token_file=token_file(d, "admin.token", "A" * 32),
                      tls={"cert": f"{d}/server.pem", "key": f"{d}/server.key", "client_ca": f"{d}/ca1.pem"},
                      metrics=f"127.0.0.1:{mport}", metrics_tls={"cert": f"{d}/server.pem", "key": f"{d}/server.key"},
                      metrics_basic_auth={"prometheus": p.stdout.strip()})
    gw = Gateway(cfg, f"{d}/ctl.sock")
    try:
        url = ["--url", f"https://127.0.0.1:{port}", "--token-file", f"{d}/admin.token", "--ca-file", f"{d}/ca1.pem"]
        r = ctl(*url, "--cert", f"{d}/client.pem", "--key", f"{d}/client.key", "status")
        check(r.returncode == 0 and "generation" in r.stdout, f"stakegatectl over https with a client certificate of the CA: {r.stderr.strip() or 'ok'}")
        r = ctl(*url, "--cert", f"{d}/stranger.pem", "--key", f"{d}/stranger.key", "status")
        check(r.returncode == 1 and "TLS" in r.stderr, f"a client certificate of another CA is refused: {r.stderr.strip()}")
        r = ctl(*url, "status")
        check(r.returncode == 1 and "TLS" in r.stderr, f"no client certificate: refused ({r.stderr.strip()})")
        r = ctl("--url", f"https://127.0.0.1:{port}", "--token-file", f"{d}/admin.token", "--cert", f"{d}/client.pem",
                "--key", f"{d}/client.key", "status")
        check(r.returncode == 1, "the server's certificate is verified (without --ca-file the test CA is unknown)")
        r = ctl(*url, "--cert", f"{d}/client.pem", "--key", f"{d}/client.key", "block", "198.18.5.0/24")
        time.sleep(0.2)
        check(r.returncode == 0 and "audit: Block by tcp 127.0.0.1 (cert /CN=client): generation" in gw.log(),
              "a change over TLS is audited with the client certificate's subject")

        ctx = ssl.create_default_context(cafile=f"{d}/ca1.pem")

        def scrape(auth=None):
            req = urllib.request.Request(f"https://127.0.0.1:{mport}/metrics")
            if auth:
                req.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
            try:
                with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
                    return resp.status, resp.read().decode()
            except urllib.error.HTTPError as e:
                return e.code, ""
        check(scrape()[0] == 401, "/metrics over TLS without credentials: 401")
        check(scrape("prometheus:wrong")[0] == 401, "/metrics with a wrong password: 401")
        s, body = scrape("prometheus:scrape-secret")
        check(s == 200 and "stakegate_build_info" in body, f"/metrics with the password: {s}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics", timeout=5)
            plain = "answered"
        except Exception:
            plain = "refused"
        check(plain == "refused", "plain HTTP to the TLS metrics listener is not answered")
        # A reload re-reads metrics_basic_auth: the new password works at once, the old one no more.
        h = subprocess.run([STAKEGATECTL, "hash-password", "--cost", "4"], input="rotated-secret\n", capture_output=True,
                           text=True).stdout.strip()
        c = read_yaml(cfg)
        c["control"]["metrics_basic_auth"] = {"prometheus": h}
        write_yaml(cfg, c)
        r = ctl("reload", socket_path=f"{d}/ctl.sock")
        new, old = scrape("prometheus:rotated-secret")[0], scrape("prometheus:scrape-secret")[0]
        check(r.returncode == 0 and new == 200 and old == 401,
              f"after a reload with a new metrics_basic_auth hash: the new password {new}, the old one {old}")
    finally:
        gw.stop()


def part_roles_and_rotation(d):
    print("\n== read-only access, the audit log, token rotation", flush=True)
    port = free_port()
    admin_tok = token_file(d, "admin.token", "A" * 32)
    read_tok = token_file(d, "read.token", "R" * 32)
    cfg = base_config(d, tcp=f"127.0.0.1:{port}", token_file=admin_tok, readonly_token_file=read_tok,
                      readonly_socket=f"{d}/ro.sock")
    gw = Gateway(cfg, f"{d}/ctl.sock")
    try:
        r = ctl("status", socket_path=f"{d}/ro.sock")
        check(r.returncode == 0, "the read-only socket serves status")
        r = ctl("block", "198.18.9.0/24", "--reason", "test", socket_path=f"{d}/ro.sock")
        check(r.returncode == 1 and "permission_denied" in r.stderr and "HTTP 403" in r.stderr,
              f"the read-only socket cannot block: {r.stderr.strip()}")
        tcp = ["--url", f"http://127.0.0.1:{port}"]
        r = ctl(*tcp, "--token-file", read_tok, "blocklist")
        check(r.returncode == 0, "the read-only token lists the blocklist")
        r = ctl(*tcp, "--token-file", read_tok, "block", "198.18.9.0/24")
        check(r.returncode == 1 and "permission_denied" in r.stderr, "the read-only token cannot block")
        r = ctl("block", "198.18.9.0/24", "--reason", "audit", socket_path=f"{d}/ctl.sock")
        check(r.returncode == 0, "the admin socket blocks")
        time.sleep(0.2)
        log = gw.log()
        check("audit: Block by unix uid 0 (root) pid" in log, "the audit log names the caller (uid, user, pid)")
        check("audit: Block by tcp 127.0.0.1: refused (HTTP 403): permission_denied: " in log,
              "refused changes are audited too, with why")
        r = ctl(*tcp, "--token-file", admin_tok, "unblock", "198.18.9.0/24")
        check(r.returncode == 0 and "audit: Unblock by tcp 127.0.0.1: generation" in gw.log(), "the admin token unblocks, audited")

        # Rotation: a new token file, then SIGHUP (as systemctl reload would); the old token
        # stops working.
        new_tok = token_file(d, "admin.token", "N" * 32)
        gw.proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 10
        while time.time() < deadline and "SIGHUP: reloaded" not in gw.log():
            time.sleep(0.05)
        check("SIGHUP: reloaded" in gw.log(), "SIGHUP after writing a new token: reloaded")
        old = token_file(d, "old.token", "A" * 32)
        r = ctl(*tcp, "--token-file", old, "status")
        check(r.returncode == 1 and "HTTP 401" in r.stderr, "the old token is refused after the reload")
        r = ctl(*tcp, "--token-file", new_tok, "status")
        check(r.returncode == 0, "the new token works")
    finally:
        gw.stop()
    # A token others could read is refused at start.
    token_file(d, "admin.token", "A" * 32, mode=0o644)
    p = subprocess.run([os.environ["STAKEGATE"], "run", "--config", cfg], capture_output=True, text=True, timeout=60)
    check(p.returncode == 1 and "control.token_file" in p.stderr and "chmod 600" in p.stderr,
          f"a group/world-readable token file is refused: {p.stderr.strip().splitlines()[-1] if p.stderr.strip() else ''}")


def part_restart(d):
    print("\n== a restart keeps the blocks made through the API", flush=True)
    cfg = base_config(d)
    c = read_yaml(cfg)
    c["state_dir"] = f"{d}/state"
    write_yaml(cfg, c)
    gw = Gateway(cfg, f"{d}/ctl.sock")
    try:
        check(ctl("block", "198.18.77.0/24", "--reason", "incident 42", "--expires", "3600", socket_path=f"{d}/ctl.sock").returncode == 0,
              "block a range through the API")
        check(ctl("block", NODE, "--reason", "misbehaving", socket_path=f"{d}/ctl.sock").returncode == 0, "block a node")
    finally:
        gw.stop()
    check(os.path.exists(f"{d}/state/blocks.json"), "the blocks are in state_dir/blocks.json")
    gw = Gateway(cfg, f"{d}/ctl.sock")
    try:
        s, r = gw.api().call("ListBlocklist")
        got = {(e.get("cidr") or e.get("node_id")): e for e in r["entries"]}
        cidr = got.get("198.18.77.0/24", {})
        check(cidr.get("origin") == "api" and cidr.get("reason") == "incident 42" and int(cidr.get("expires_at_unix", 0)) > time.time()
              and cidr.get("created_by", "").startswith("unix uid 0 (root) pid"),
              f"after a restart the range is still blocked, with its reason, expiry and who blocked it: {cidr}")
        check(got.get(NODE, {}).get("origin") == "api", "and the node too")
        r = ctl("blocklist", socket_path=f"{d}/ctl.sock")
        check("incident 42" in r.stdout and "unix uid 0 (root)" in r.stdout, "stakegatectl blocklist shows who made each block")
        check("restored 2 blocks made through the API" in gw.log(), "the restore is logged")
    finally:
        gw.stop()


def part_reload_files(d):
    print("\n== reloads that read bad or slow identity files", flush=True)
    mport = free_port()
    cfg = base_config(d, metrics=f"127.0.0.1:{mport}", reload_timeout_s=1)
    good = read_yaml(cfg)
    gw = Gateway(cfg, f"{d}/ctl.sock")
    try:
        gen0 = gw.api().call("Status")[1]["identity_generation"]
        fifo = os.path.join(d, "fifo.json")
        os.mkfifo(fifo)
        big = os.path.join(d, "huge.json")
        with open(big, "wb") as f:
            f.truncate(600 << 20)  # sparse: bigger than any identity table may be
        for what, path in (("a FIFO", fifo), ("a 600 MiB file", big)):
            c = json.loads(json.dumps(good))
            c["identity"] = {"flow_node_infos": path}
            write_yaml(cfg, c)
            t0 = time.time()
            r = ctl("reload", socket_path=f"{d}/ctl.sock")
            check(r.returncode == 1 and time.time() - t0 < 5 and "unchanged" in r.stderr,
                  f"{what} as the identity table: reload refused in {time.time() - t0:.1f} s: {r.stderr.strip()[:160]}")
        # A table that takes longer than reload_timeout_s (1 s) to load: 300,000 nodes.
        slow = os.path.join(d, "slow.json")
        with open(slow, "w") as f:
            json.dump([{"Role": "consensus", "Address": f"198.{18 + i // 65536}.{i // 256 % 256}.{i % 256}:3569",
                        "NodeID": f"{i:064x}", "Weight": 100} for i in range(1, 300001)], f)
        c = json.loads(json.dumps(good))
        c["identity"] = {"flow_node_infos": slow}
        write_yaml(cfg, c)
        scrapes, stop = [], threading.Event()

        def poll_metrics():
            while not stop.is_set():
                t0 = time.time()
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics", timeout=5) as resp:
                        scrapes.append(resp.status == 200 and time.time() - t0 < 0.5)
                except Exception:
                    scrapes.append(False)
                time.sleep(0.05)
        poller = threading.Thread(target=poll_metrics)
        poller.start()
        t0 = time.time()
        r = ctl("reload", socket_path=f"{d}/ctl.sock")
        elapsed = time.time() - t0
        stop.set()
        poller.join()
        check(r.returncode == 1 and "deadline_exceeded" in r.stderr and elapsed < 4,
              f"a table too slow to load is refused at the 1 s deadline ({elapsed:.1f} s): {r.stderr.strip()[:120]}")
        check(len(scrapes) >= 5 and all(scrapes), f"/metrics answered all {len(scrapes)} scrapes within 0.5 s meanwhile")
        time.sleep(3)  # the helper finishing late changes nothing
        st = gw.api().call("Status")[1]
        check(st["identity_generation"] == gen0 and st["nodes"] == 1, "the running policy is unchanged")
        m = metric_values(urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics", timeout=5).read().decode())
        check(m.get("stakegate_last_reload_success") == 0 and m.get("stakegate_last_reload_timestamp_seconds", 0) > time.time() - 60,
              "stakegate_last_reload_success 0, with the time of the refusal")
        write_yaml(cfg, good)
        r = ctl("reload", socket_path=f"{d}/ctl.sock")
        m = metric_values(urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics", timeout=5).read().decode())
        check(r.returncode == 0 and m.get("stakegate_last_reload_success") == 1, "a good reload: exit 0, success 1")
    finally:
        gw.stop()


def part_preflight(d):
    print("\n== what the listeners need of the host: check-config finds it, run refuses it before any device", flush=True)
    make_pki(d)
    tok = token_file(d, "admin.token", "A" * 32)
    cases = [
        ("a key that is not the certificate's", dict(tcp="127.0.0.1:1", token_file=tok,
                                                     tls={"cert": f"{d}/server.pem", "key": f"{d}/client.key"}),
         f"control.tls: TLS key {d}/client.key: key values mismatch"),
        ("a certificate that is not PEM", dict(metrics="127.0.0.1:1", metrics_tls={"cert": tok, "key": f"{d}/server.key"}),
         f"control.metrics_tls: TLS certificate {tok}: no start line"),
        ("a missing certificate", dict(metrics="127.0.0.1:1", metrics_tls={"cert": f"{d}/none.pem", "key": f"{d}/server.key"}),
         f"control.metrics_tls: TLS certificate {d}/none.pem: No such file or directory"),
        ("a socket group the host lacks", dict(socket_group="stakegate-no-such-group"),
         "control.socket_group: no group named 'stakegate-no-such-group' on this host"),
        ("a socket in a folder that cannot be made", dict(socket=f"{d}/server.pem/ctl.sock"),
         f"control.socket: cannot make the socket {d}/server.pem/ctl.sock: {d}/server.pem is not a folder"),
        ("a token file others may read", dict(tcp="127.0.0.1:1", token_file=token_file(d, "open.token", "B" * 32, 0o644)),
         "control.token_file: '" + f"{d}/open.token' may be read by its group or others (mode 0644): chmod 600 it"),
    ]
    for what, control, want in cases:
        cfg = base_config(d, **control)
        c = subprocess.run([os.environ["STAKEGATE"], "check-config", cfg], capture_output=True, text=True, timeout=60)
        r = subprocess.run([os.environ["STAKEGATE"], "run", "--config", cfg], capture_output=True, text=True, timeout=60)
        check(c.returncode == 1 and want in c.stderr and r.returncode == 1 and want in r.stderr and "EAL" not in r.stderr,
              f"{what}: check-config and run refuse it, naming the key and the file, before DPDK starts: "
              f"{(c.stderr.strip().splitlines() or [''])[-1]}")


with TempDir() as root:
    for name, part in (("flood", part_flood), ("tls", part_tls), ("roles", part_roles_and_rotation),
                       ("restart", part_restart), ("reload", part_reload_files), ("preflight", part_preflight)):
        d = os.path.join(root, name)
        os.makedirs(d)
        part(d)
finish()
