"""A fake Flow Access API for the tests: the two RPCs stakegate calls, served with
python3-grpcio's generic handlers (no generated code). Responses are encoded by hand:
both carry their payload in field 1 (bytes), as flow/access/access.proto defines.

Snapshots are real-format JSON built from the shared excerpt: its protocol state entry
with the identity table, epoch counter and phase replaced."""
import copy
import json
import os
import threading
from concurrent import futures

import grpc

EXAMPLES = os.environ.get("STAKEGATE_EXAMPLES", "")


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def field1(payload):
    return b"\x0a" + varint(len(payload)) + payload


def read_varint(msg, i):
    value, shift = 0, 0
    while True:
        b = msg[i]
        i += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, i


def read_field1(msg):
    """The first length-delimited field 1 of a protobuf message (the script of a request)."""
    i = 0
    while i < len(msg):
        key, i = read_varint(msg, i)
        length, i = read_varint(msg, i)
        if key == 0x0a:
            return msg[i:i + length]
        i += length
    return b""


def snapshot(nodes, counter, phase="staking"):
    """A protocol state snapshot for [(node_id, role, address, weight)] (all active)."""
    doc = json.load(open(os.path.join(EXAMPLES, "root-protocol-state-snapshot.excerpt.json")))
    entries = doc["SealingSegment"]["ProtocolStateEntries"]
    entry = next(iter(entries.values()))["EpochEntry"]
    template = entry["CurrentEpochIdentityTable"][0]
    table = []
    for node_id, role, address, weight in nodes:
        row = copy.deepcopy(template)
        sk = row["EncodableIdentitySkeleton"]
        sk.update({"NodeID": node_id, "Role": role, "Address": address, "InitialWeight": weight})
        row["ParticipationStatus"] = "EpochParticipationStatusActive"
        table.append(row)
    entry["CurrentEpochIdentityTable"] = table
    entry["CurrentEpochSetup"]["Counter"] = counter
    entry["EpochFallbackTriggered"] = phase == "fallback"
    if phase in ("setup", "committed"):
        entry["NextEpoch"] = {"SetupID": "ab" * 32, "CommitID": ("cd" * 32) if phase == "committed" else "00" * 32,
                              "ActiveIdentities": []}
    else:
        entry["NextEpoch"] = None
    return json.dumps(doc).encode()


def cadence_stakes(stakes):
    """A JSON-Cadence {String: UFix64} as ExecuteScriptAtLatestBlock returns it."""
    return json.dumps({"type": "Dictionary", "value": [
        {"key": {"type": "String", "value": k}, "value": {"type": "UFix64", "value": f"{v:.8f}"}}
        for k, v in stakes.items()]}).encode()


class FakeAccessAPI:
    """mode: "ok" (serve `snapshot_bytes`), "truncated", "garbage", "unavailable"."""
    def __init__(self, port):
        self.port = port
        self.mode = "ok"
        self.snapshot_bytes = b""
        self.stakes = None  # dict NodeID -> stake, or None: the script fails
        self.scripts = []
        self.calls = 0
        self.lock = threading.Lock()
        self.server = None

    def _snapshot(self, request, context):
        with self.lock:
            self.calls += 1
            mode, body = self.mode, self.snapshot_bytes
        if mode == "unavailable":
            context.abort(grpc.StatusCode.UNAVAILABLE, "the node is syncing")
        if mode == "truncated":
            body = body[: len(body) // 2]
        if mode == "garbage":
            body = b"\x00\x01 not a snapshot"
        return field1(body)

    def _script(self, request, context):
        script = read_field1(request).decode(errors="replace")
        with self.lock:
            self.scripts.append(script)
            stakes = self.stakes
        if stakes is None:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "cannot execute the script")
        return field1(cadence_stakes(stakes))

    def start(self):
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        ident = lambda b: b  # noqa: E731 (raw bytes in and out)
        handler = grpc.method_handlers_generic_handler("flow.access.AccessAPI", {
            "GetLatestProtocolStateSnapshot": grpc.unary_unary_rpc_method_handler(
                self._snapshot, request_deserializer=ident, response_serializer=ident),
            "ExecuteScriptAtLatestBlock": grpc.unary_unary_rpc_method_handler(
                self._script, request_deserializer=ident, response_serializer=ident),
        })
        self.server.add_generic_rpc_handlers((handler,))
        self.server.add_insecure_port(f"127.0.0.1:{self.port}")
        self.server.start()
        return self

    def stop(self):
        if self.server:
            self.server.stop(0).wait()
            self.server = None
