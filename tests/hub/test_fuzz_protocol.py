"""Fuzzing the WebSocket decoder and router (``Hub.receive`` and every handler behind it, the
ledger's included) over JSON and MessagePack, seeded by the client messages docs/protocol.md shows.

Each example is a short session of messages derived from the documented ones: as written, with a
field dropped, a value replaced by an arbitrary one (huge integers, floats, nested containers,
strings with control characters), an unknown field added, the encoded bytes cut or spliced, or
sent in the other frame kind. The hub must answer only with documented envelopes and error codes,
never ``internal`` (a hub fault), at most once per request, close only with a documented code, and
leave nothing behind when the connection goes.

``MTBRIDGE_FUZZ_EXAMPLES`` (default 150 per encoding) sizes the run; docs/architecture.md
("Testing") records the longer runs and what they found.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from collections import Counter
from pathlib import Path
from typing import Any

import msgpack
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.auth.tokens import Verifier, issue
from bridge.hub.hub import Hub
from bridge.hub.limits import HubLimits
from bridge.ledger.service import Ledger
from bridge.protocol import codes
from bridge.protocol.envelope import Encoding
from bridge.store.memory import MemoryStore
from tests.support.fakes import FakeSink

EXAMPLES = int(os.environ.get("MTBRIDGE_FUZZ_EXAMPLES", "150"))
SECRET = b"f" * 64
DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"
HUB_TYPES = {"welcome", "result", "error", "message", "heartbeat", "warning", "unsubscribed", "signal.status",
             "reconnect"}  # fmt: skip
CLOSE_CODES = {1000, 1001, 1002, 1007, 1009} | {
    c.code for c in vars(codes).values() if isinstance(c, codes.Disconnect)
}


def _documented_messages() -> list[dict[str, Any]]:
    """Every client → hub message of docs/protocol.md that is whole JSON (the ones with "…" are
    abbreviated and left out), and the documented signal."""
    text = DOC.read_text()
    found: list[dict[str, Any]] = []
    for line in text.splitlines():
        match = re.match(r"^→ (\{.*\})\s*$", line.strip())
        if match:
            try:
                found.append(json.loads(match.group(1)))
            except json.JSONDecodeError:
                continue
    # Multi-line examples in ```json blocks that start with "→ {".
    for block in re.findall(r"```json\n(.*?)```", text, re.S):
        for chunk in re.split(r"\n(?=[→←])", block):
            chunk = chunk.strip()
            if chunk.startswith("→ {"):
                try:
                    found.append(json.loads(chunk[2:].replace("\n", " ")))
                except json.JSONDecodeError:
                    continue
    unique = {json.dumps(m, sort_keys=True): m for m in found}
    return list(unique.values())


SEEDS = _documented_messages()


def test_the_docs_give_enough_seeds() -> None:
    types = {m.get("type") for m in SEEDS}
    assert {"subscribe", "heartbeat", "signal.ack"} <= types, types
    assert len(SEEDS) >= 5


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@st.composite
def mutated(draw: st.DrawFn) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(json.dumps(draw(st.sampled_from(SEEDS))))
    for _ in range(draw(st.integers(0, 3))):
        action = draw(st.sampled_from(["drop", "replace", "replace_payload", "add", "type", "channel"]))
        if action == "drop" and message:
            message.pop(draw(st.sampled_from(sorted(message))))
        elif action == "replace" and message:
            message[draw(st.sampled_from(sorted(message)))] = draw(json_values)
        elif action == "replace_payload":
            payload = message.get("payload")
            if isinstance(payload, dict) and payload:
                payload[draw(st.sampled_from(sorted(payload)))] = draw(json_values)
        elif action == "add":
            message[draw(st.text(min_size=1, max_size=10))] = draw(json_values)
        elif action == "type":
            types = sorted({str(m.get("type")) for m in SEEDS})
            message["type"] = draw(st.sampled_from([*types, "auth", "x"]))
        elif action == "channel":
            message["channel"] = draw(
                st.sampled_from(["signals:alpha", "account:50123:events", "instrument:X", "system:health",
                                 "signals:*", "", "a" * 300])
            )  # fmt: skip
    return message


@st.composite
def frames(draw: st.DrawFn, encoding: Encoding) -> tuple[bytes, bool]:
    message = draw(mutated())
    binary = encoding is Encoding.MSGPACK
    data = _pack(message) if binary else json.dumps(message).encode()
    damage = draw(st.sampled_from(["none", "none", "none", "cut", "splice", "kind"]))
    if damage == "cut" and data:
        data = data[: draw(st.integers(0, len(data) - 1))]
    elif damage == "splice":
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.binary(min_size=1, max_size=8)) + data[at:]
    elif damage == "kind":
        binary = not binary
    return data, binary


def _pack(message: dict[str, Any]) -> bytes:
    """MessagePack holds integers from -2**63 to 2**64-1: larger ones are clamped to its edges."""
    try:
        return msgpack.packb(message)  # type: ignore[no-any-return]
    except OverflowError:
        clamp = json.loads(json.dumps(message), parse_int=lambda s: max(-(2**63), min(2**64 - 1, int(s))))
        return msgpack.packb(clamp)  # type: ignore[no-any-return]


def _token(role: str) -> str:
    claims: dict[str, Any] = {"accounts": ["50123"], "publish": ["signals:*"], "subscribe": ["*"]}
    return issue(SECRET, sub=f"fuzz-{role}", role=role, now=time.time(), ttl=600, **claims)


def _session(encoding: Encoding, role: str, sent: list[tuple[bytes, bool]]) -> None:
    async def run() -> None:
        store = MemoryStore()
        await store.start()
        hub = Hub(Verifier(["HS256"], secret=SECRET), limits=HubLimits(rate_per_second=None), log=store)
        ledger = Ledger(hub, store)
        await ledger.start()
        await hub.start()
        sink = FakeSink()
        conn = hub.connect(sink, encoding, "127.0.0.1")
        if role != "anonymous":
            assert hub.authenticate(conn, _token(role), None)
        asked: Counter[str] = Counter()
        for data, binary in sent:
            rid = _request_id(data, binary)
            if rid is not None:
                asked[rid] += 1
            hub.receive(conn, data, binary)
        for _ in range(200):  # let the batches commit and answer (no timers involved)
            if conn.in_flight == 0 and not conn.tasks:
                break
            await asyncio.sleep(0)
        answered: Counter[str] = Counter()
        for m in sink.messages():
            assert m["type"] in HUB_TYPES, m
            if m["type"] == "error":
                assert m["payload"]["code"] in codes.ERRORS, m
                assert m["payload"]["code"] != "internal", m  # a hub fault
                assert isinstance(m["payload"]["message"], str)
            if m["type"] in ("result", "error") and "requestId" in m:
                answered[m["requestId"]] += 1
        for rid, n in answered.items():
            assert n <= asked[rid], (rid, n, asked[rid])
        if sink.closed is not None:
            assert sink.closed[0] in CLOSE_CODES, sink.closed
        hub.disconnected(conn)
        assert not hub.connections and not hub.by_ip and not hub.by_subject
        assert not any(len(c) + len(c.recovering) for c in hub.channels.values())
        await hub.stop(0)
        await ledger.stop()
        await store.close()

    asyncio.run(run())


def _request_id(data: bytes, binary: bool) -> str | None:
    try:
        obj = msgpack.unpackb(data) if binary else json.loads(data)
    except Exception:
        return None
    rid = obj.get("requestId") if isinstance(obj, dict) else None
    return rid if isinstance(rid, str) else None


ROLES = st.sampled_from(["anonymous", "ea", "engine", "admin", "dashboard"])
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)


@FUZZ
@given(role=ROLES, sent=st.lists(frames(Encoding.JSON), min_size=1, max_size=8))
def test_fuzz_json(role: str, sent: list[tuple[bytes, bool]]) -> None:
    _session(Encoding.JSON, role, sent)


@FUZZ
@given(role=ROLES, sent=st.lists(frames(Encoding.MSGPACK), min_size=1, max_size=8))
def test_fuzz_msgpack(role: str, sent: list[tuple[bytes, bool]]) -> None:
    _session(Encoding.MSGPACK, role, sent)
