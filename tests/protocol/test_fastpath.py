"""The validators' fast paths against their full (reference) paths: same accepted objects, same errors.

``decode``/``from_object``, ``parse_event`` and ``parse_signal`` try a fast path for the usual valid shape
and fall back to the full validator on any doubt. These tests generate inputs around every boundary the
full validators know (types, ranges, formats, cross-field rules) and assert the public functions behave
exactly as the full validators alone: equal results with the same repr and the same payload bytes, or
the same errors in the same order.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import msgpack
import orjson
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from bridge.protocol import _fastpath, envelope, events, signals
from bridge.protocol.envelope import Encoding, Envelope, EnvelopeError
from bridge.protocol.events import EventInvalid, TradeEvent, parse_event
from bridge.protocol.signals import Signal, SignalInvalid, parse_signal
from tests.support.factories import signal

NOW = 1_700_000_000.0
NOW_MS = int(NOW * 1000)
UUID = "0b7c8e2a-5d4f-4c3b-9a1e-2f6d8c0b1a93"

EVENT_BASE: dict[str, dict[str, Any]] = {
    "order": {"state": "filled", "ticket": 7, "symbol": "EURUSD", "side": "buy", "orderType": "limit",
              "volume": 0.1, "price": 1.08, "sl": 1.07, "tp": 1.09, "magic": 3, "comment": "c",
              "retcode": 10009, "message": "done"},
    "deal": {"ticket": 99, "order": 7, "position": 555, "symbol": "EURUSD", "side": "buy", "entry": "in",
             "volume": 0.1, "price": 1.0801, "profit": 0.0, "commission": -0.7, "swap": 0, "fee": -0.1},
    "position": {"ticket": 555, "state": "opened", "symbol": "EURUSD", "side": "sell", "volume": 1,
                 "priceOpen": 1.0801, "sl": 1.09, "tp": 1.07, "profit": 1.5, "swap": -0.2},
    "account": {"balance": 10_000.0, "equity": 10_001.5, "margin": 108, "freeMargin": 9_893.5,
                "marginLevel": 9260.6, "currency": "USD", "leverage": 100,
                "positions": [{"ticket": 555, "symbol": "EURUSD", "side": "buy", "volume": 0.1,
                               "priceOpen": 1.0801, "sl": 1.07, "profit": 2.0}]},
}  # fmt: skip
SIGNAL_BASE: dict[str, Any] = signal(sid=UUID, ttl=30)

# Values chosen at the edges of every rule of the full validators, mixed with arbitrary JSON-like values.
_EDGE_NUMBERS = [
    0, 1, -1, 0.0, -0.0, 0.5, 1.0801, 12.0, 30, 30.5, 1e-9, 2**31 - 1, 2**31, 2**63 - 1, 2**63, 2**64,
    10**400,
    100_000, 100_001, 10_000, 10_000.0, 10_000.0001, 1e9, 1e9 + 1, 1e15, -1e15, 1e15 * 1.0000001, 604_800,
    604_801, 1e300, math.nan, math.inf, -math.inf, NOW_MS, NOW_MS + 1, NOW_MS - 1, NOW_MS + 60_000,
    NOW_MS + 60_001, NOW_MS + 604_800_000, NOW_MS + 604_800_001, 253_402_300_799_999, 253_402_300_799_999.0,
    True, False, -0.5, 1.07, 1.08, 1.09, 1.2, 604_800.0001, 2**63 - 1.0, 1e15 + 1,
]  # fmt: skip
_EDGE_STRINGS = [
    "", UUID, UUID.upper(), "6f1c2d3e-4a5b-4c6d-8e7f-9a0b1c2d3e4f", UUID[:-1], UUID + "0", "{" + UUID + "}",
    UUID.replace("-", ""), "alpha", "a" * 64, "a" * 65, "50123", "1" * 20, "1" * 21, "٣", "5012a", "EURUSD",
    "BTC-USD.x#", "EUR USD", "x" * 32, "x" * 33, "open", "close", "modify", "cancel", "close_all", "buy",
    "sell", "market", "limit", "stop", "stop_limit", "in", "out", "inout", "out_by", "placed", "filled",
    "rejected", "cancelled", "modified", "opened", "closed", "expired", "USD", "U", "EURUSDXX1", "a\nb",
    "tab\t", "del\x7f", "x" * 31, "x" * 32, "x" * 64, "x" * 65, "x" * 256, "x" * 257, "order", "deal",
    "position", "account",
]  # fmt: skip
_EDGE_CONTAINERS: list[object] = [
    [], ["50123"], ["50123", "50123"], ["50123", "1"], [50123], ["٣"], ["a"], ["vip"], ["vip", "vip"],
    ["a" * 65],
    [str(n) for n in range(1001)], [f"g{n}" for n in range(101)], [str(n) for n in range(1000)],
    [f"g{n}" for n in range(100)], {}, {"ticket": 1}, [{}], [1], [None], ("50123",), b"bytes",
    [{"ticket": 1, "symbol": "X", "side": "buy", "volume": 1, "priceOpen": 1}] * 1001,
]  # fmt: skip
#: Every value a single field is set to by the exhaustive tests; _DELETE removes the field.
_DELETE = object()
EDGE_VALUES: list[object] = [None, _DELETE, *_EDGE_NUMBERS, *_EDGE_STRINGS, *_EDGE_CONTAINERS]

_scalars = (
    st.none()
    | st.sampled_from(_EDGE_NUMBERS)
    | st.sampled_from(_EDGE_STRINGS)
    | st.integers()
    | st.floats()
    | st.text(max_size=12)
)
_values = st.recursive(
    _scalars,
    lambda children: (
        st.lists(children, max_size=3)
        | st.lists(st.sampled_from(["50123", "1", "vip", "a.b", "٣", ""]), max_size=3)
        | st.dictionaries(st.sampled_from(["ticket", "symbol", "x"]), children, max_size=3)
    ),
    max_leaves=8,
)


def _mutate(base: dict[Any, Any], changes: dict[Any, Any]) -> dict[Any, Any]:
    obj = dict(base)
    for key, value in changes.items():
        if value is _DELETE:
            obj.pop(key, None)
        else:
            obj[key] = value
    return obj


def _outcome(
    error: type[Exception], call: Callable[..., object], *args: Any, **kwargs: Any
) -> tuple[str, object]:
    """What ``call(*args, **kwargs)`` gives, comparably: the result, its repr and payload, or the errors."""
    try:
        result = call(*args, **kwargs)
    except error as exc:
        if isinstance(exc, EnvelopeError):
            return ("error", (exc.code, exc.message, exc.request_id))
        return ("error", list(exc.errors))  # type: ignore[attr-defined]
    if isinstance(result, TradeEvent | Signal):
        return ("ok", (result, repr(result), orjson.dumps(result.to_payload())))
    return ("ok", (result, repr(result)))


def _changes(fields: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(st.sampled_from(fields), _values | st.just(_DELETE), max_size=4)


SIGNAL_VARIANTS: list[dict[str, Any]] = [
    {},
    {"orderType": "limit", "price": 1.08},
    {"orderType": "stop", "price": 1.08, "side": "sell", "sl": 1.09, "tp": 1.07},
    {"sl": 0, "tp": _DELETE, "comment": "c", "magic": 1, "deviation": 10, "groups": ["vip"]},
    {"action": "close_all", "symbol": _DELETE, "side": _DELETE, "orderType": _DELETE, "volume": _DELETE},
    {"action": "modify", "orderType": _DELETE, "volume": _DELETE},
    {"action": "modify", "orderType": _DELETE, "volume": _DELETE, "sl": _DELETE},
    {"action": "modify", "orderType": _DELETE, "volume": _DELETE, "sl": _DELETE, "tp": _DELETE, "price": 1.1},
    {"action": "cancel", "volume": _DELETE},
    {"action": "close", "orderType": _DELETE},
    {"ttl": _DELETE, "expiresAt": NOW_MS + 5000, "createdAt": NOW_MS - 1000},
    {"ttl": 0.0005, "createdAt": NOW_MS},
    {"accounts": _DELETE, "groups": ["vip", "b"]},
]


_EVENT_FIELDS = sorted(
    {"id", "kind", "account", "ts", "signalId", "extra"} | {k for b in EVENT_BASE.values() for k in b}
)
_SIGNAL_FIELDS = sorted(signals.SIGNAL_FIELDS | {"extra"})


@settings(max_examples=1500, deadline=None)
@given(st.sampled_from(sorted(EVENT_BASE)), st.booleans(), _changes(_EVENT_FIELDS))
def test_parse_event_equals_the_full_validator(kind: str, with_signal: bool, changes: dict[str, Any]) -> None:
    base = {"id": UUID, "kind": kind, "account": "50123", "ts": NOW_MS, **EVENT_BASE[kind]}
    if with_signal:
        base["signalId"] = UUID.upper()
    obj = _mutate(base, changes)
    fast = _outcome(EventInvalid, parse_event, obj, NOW)
    assert fast == _outcome(EventInvalid, events._full_event, obj)


@settings(max_examples=500, deadline=None)
@given(st.lists(_changes(sorted(events._SNAPSHOT_POSITION_FIELDS | {"extra"})), max_size=3))
def test_parse_event_snapshot_positions_equal_the_full_validator(changes: list[dict[str, Any]]) -> None:
    position = EVENT_BASE["account"]["positions"][0]
    base = {"id": UUID, "kind": "account", "account": "1", "ts": 0, **EVENT_BASE["account"]}
    obj = {**base, "positions": [_mutate(position, c) for c in changes]}
    fast = _outcome(EventInvalid, parse_event, obj, NOW)
    assert fast == _outcome(EventInvalid, events._full_event, obj)


@settings(max_examples=2000, deadline=None)
@given(
    st.sampled_from(range(len(SIGNAL_VARIANTS))),
    _changes(_SIGNAL_FIELDS),
    st.sampled_from([NOW, NOW + 0.0005, NOW + 31, math.nan]),
)
def test_parse_signal_equals_the_full_validator(variant: int, changes: dict[str, Any], now: float) -> None:
    obj = _mutate(_mutate(SIGNAL_BASE, SIGNAL_VARIANTS[variant]), changes)
    fast = _outcome(SignalInvalid, parse_signal, obj, now)
    assert fast == _outcome(SignalInvalid, signals._full_signal, obj, now)


_envelope_values = (
    st.none()
    | st.sampled_from(["", "x", "trade.event", "r" * 64, "r" * 65, "t" * 32, "t" * 33, "c" * 200, "c" * 201])
    | st.integers(-(2**64), 2**65)
    | st.floats()
    | st.binary(max_size=3)
    | st.lists(_values, max_size=2)
    | st.dictionaries(st.text(max_size=3) | st.integers(0, 3), _values, max_size=4)
)


@settings(max_examples=1500, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["type", "requestId", "channel", "payload", "offset", 1]), _envelope_values
    ),
    st.booleans(),
)
def test_from_object_equals_the_full_check(obj: dict[Any, Any], check_values: bool) -> None:
    fast = _outcome(EnvelopeError, envelope.from_object, obj, check_values=check_values)
    assert fast == _outcome(EnvelopeError, envelope._checked_envelope, obj, check_values)


def _nested(depth: int, leaf: object, in_list: bool) -> object:
    value = leaf
    for _ in range(depth):
        value = [value] if in_list else {"d": value}
    return value


@pytest.mark.parametrize("depth", [29, 30, 31, 32, 33])
@pytest.mark.parametrize("leaf", [1, "s", {}, [], math.nan, b"b"])
@pytest.mark.parametrize("in_list", [False, True])
def test_from_object_depth_limit_equals_the_full_check(depth: int, leaf: object, in_list: bool) -> None:
    obj = {"type": "publish", "payload": {"x": _nested(depth, leaf, in_list)}}
    fast = _outcome(EnvelopeError, envelope.from_object, obj, check_values=True)
    assert fast == _outcome(EnvelopeError, envelope._checked_envelope, obj, True)


def _reference_decode_msgpack(data: bytes) -> Envelope:
    """``decode`` for MessagePack as the full check alone would do it."""
    try:
        obj = msgpack.unpackb(data, raw=False, strict_map_key=True, use_list=True, timestamp=0)
    except Exception as exc:
        raise EnvelopeError("invalid_msgpack", "malformed MessagePack") from exc
    return envelope._checked_envelope(obj, True)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["type", "requestId", "channel", "payload"]), _envelope_values))
def test_decode_msgpack_equals_the_full_check(obj: dict[str, Any]) -> None:
    try:
        data = msgpack.packb(obj, use_bin_type=True)
    except (OverflowError, ValueError, TypeError):
        assume(False)
    fast = _outcome(EnvelopeError, envelope.decode, data, Encoding.MSGPACK)
    assert fast == _outcome(EnvelopeError, _reference_decode_msgpack, data)


def _event_bases() -> list[dict[str, Any]]:
    bases = []
    for kind, fields in EVENT_BASE.items():
        base = {"id": UUID, "kind": kind, "account": "50123", "ts": NOW_MS, **fields}
        bases += [base, {**base, "signalId": UUID.upper()}]
    bases.append({"id": UUID, "kind": "order", "account": "1", "ts": 0, "state": "rejected", "symbol": "X"})
    return bases


def test_parse_event_every_single_field_change_equals_the_full_validator() -> None:
    """Exhaustive: each field of each kind set to each edge value (or removed), one at a time."""
    checked = 0
    for base in _event_bases():
        for field in _EVENT_FIELDS:
            for value in EDGE_VALUES:
                obj = _mutate(base, {field: value})
                fast = _outcome(EventInvalid, parse_event, obj, NOW)
                assert fast == _outcome(EventInvalid, events._full_event, obj), (field, value)
                checked += 1
    position = EVENT_BASE["account"]["positions"][0]
    account: dict[str, Any] = {
        "id": UUID,
        "kind": "account",
        "account": "1",
        "ts": 0,
        **EVENT_BASE["account"],
    }
    for field in sorted(events._SNAPSHOT_POSITION_FIELDS | {"extra"}):
        for value in EDGE_VALUES:
            obj = {**account, "positions": [position, _mutate(position, {field: value})]}
            fast = _outcome(EventInvalid, parse_event, obj, NOW)
            assert fast == _outcome(EventInvalid, events._full_event, obj), (field, value)
    assert checked > 10_000


def test_parse_signal_every_single_field_change_equals_the_full_validator() -> None:
    """Exhaustive: each field of each shape of signal set to each edge value (or removed), one at a time."""
    for variant in SIGNAL_VARIANTS:
        base = _mutate(SIGNAL_BASE, variant)
        for field in _SIGNAL_FIELDS:
            for value in EDGE_VALUES:
                obj = _mutate(base, {field: value})
                fast = _outcome(SignalInvalid, parse_signal, obj, NOW)
                assert fast == _outcome(SignalInvalid, signals._full_signal, obj, NOW), (field, value)


def test_from_object_every_single_key_change_equals_the_full_check() -> None:
    """Exhaustive: each envelope key, and each payload value, set to each edge value, one at a time."""
    base: dict[Any, Any] = {"type": "trade.event", "requestId": "9", "channel": "a:b", "payload": {"x": 1}}
    extra: list[object] = [{1: "x"}, {"k": {2: 1}}, {"k": [1, [b"b"]]}, {"k": 2**64}, {"k": -(2**63) - 1}]
    for key in ["type", "requestId", "channel", "payload", "offset", 1]:
        for value in [*EDGE_VALUES, *extra]:
            obj = _mutate(base, {key: value})
            for check_values in (False, True):
                fast = _outcome(EnvelopeError, envelope.from_object, obj, check_values=check_values)
                full = _outcome(EnvelopeError, envelope._checked_envelope, obj, check_values)
                assert fast == full, (key, value)
    for value in [*EDGE_VALUES, *extra]:
        for payload in ({"k": value}, {"k": [value]}, {"k": {"j": value}}):
            obj = {**base, "payload": payload}
            fast = _outcome(EnvelopeError, envelope.from_object, obj, check_values=True)
            assert fast == _outcome(EnvelopeError, envelope._checked_envelope, obj, True), value


class TestFastPathIsTaken:
    """The documented shapes must not silently fall back to the slow path."""

    @pytest.mark.parametrize("kind", sorted(EVENT_BASE))
    def test_every_event_kind(self, kind: str) -> None:
        obj = {"id": UUID, "kind": kind, "account": "1", "ts": NOW_MS, "signalId": UUID, **EVENT_BASE[kind]}
        assert events._fast_event(obj) == events._full_event(obj)

    def test_rejected_order_without_ticket(self) -> None:
        obj = {"id": UUID, "kind": "order", "account": "1", "ts": 0, "state": "rejected", "symbol": "X"}
        assert events._fast_event(obj) == events._full_event(obj)

    @pytest.mark.parametrize("variant", range(len(SIGNAL_VARIANTS)))
    def test_signals(self, variant: int) -> None:
        obj = _mutate(SIGNAL_BASE, SIGNAL_VARIANTS[variant])
        assert signals._fast_signal(obj, NOW) == signals._full_signal(obj, NOW)

    def test_envelopes(self) -> None:
        obj = {"type": "trade.event", "requestId": "9", "payload": {"x": [1, 2.5, None, {"y": True}]}}
        assert envelope._fast_envelope(obj, True) == Envelope("trade.event", "9", None, obj["payload"])  # type: ignore[arg-type]


def test_slot_setters_refuse_a_field_list_that_does_not_match() -> None:
    with pytest.raises(TypeError):
        _fastpath.slot_setters(Envelope, "type", "request_id", "channel")
    with pytest.raises(TypeError):
        _fastpath.slot_setters(Envelope, "type", "channel", "request_id", "payload")
