"""The control plane's pure rules (bridge/cluster/model.py): bus messages, health, keys."""

from __future__ import annotations

import contextlib

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.cluster.model import (
    MAX_BUS_MESSAGE,
    BusError,
    BusMessage,
    Keys,
    advisory_key,
    aggregate_health,
    claim_member,
    decode_bus,
    encode_bus,
    new_instance,
    node_of,
    online_accounts,
)


def test_bus_round_trip() -> None:
    msg = BusMessage("close", "n1#abc", {"conn": "c-1"}, to="n2#def", id="r1")
    assert decode_bus(encode_bus(msg)) == msg
    reply = BusMessage("reply", "n2#def", {"closed": True}, to="n1#def", re="r1")
    assert decode_bus(encode_bus(reply)) == reply


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[]",
        b'{"v": 2, "op": "close", "from": "a", "body": {}}',
        b'{"v": 1, "op": "CLOSE", "from": "a", "body": {}}',
        b'{"v": 1, "op": "close", "from": "a", "body": []}',
        b'{"v": 1, "op": "close", "body": {}}',
        b'{"v": 1, "op": "close", "from": "a|b", "body": {}}',
        b'{"v": 1, "op": "close", "from": "a", "to": 5, "body": {}}',
        b'{"v": 1, "op": "' + b"x" * 33 + b'", "from": "a", "body": {}}',
    ],
)
def test_bus_refuses_malformed(raw: bytes) -> None:
    with pytest.raises(BusError):
        decode_bus(raw)


def test_bus_size_limit() -> None:
    with pytest.raises(BusError):
        encode_bus(BusMessage("x", "a", {"blob": "y" * MAX_BUS_MESSAGE}))
    with pytest.raises(BusError):
        decode_bus(b" " * (MAX_BUS_MESSAGE + 1))


@given(st.binary(max_size=300))
def test_bus_decoder_never_crashes(data: bytes) -> None:
    with contextlib.suppress(BusError):
        decode_bus(data)


@given(
    st.dictionaries(
        st.sampled_from(["v", "op", "from", "to", "id", "re", "body"]),
        st.one_of(
            st.none(),
            st.integers(-(2**63), 2**63 - 1),
            st.text(max_size=40),
            st.dictionaries(st.text(max_size=3), st.integers(-(2**63), 2**63 - 1)),
        ),
    )
)
def test_bus_decoder_shapes(raw: dict[str, object]) -> None:
    try:
        msg = decode_bus(orjson.dumps(raw))
    except BusError:
        return
    assert isinstance(msg.body, dict) and isinstance(msg.sender, str)


def test_addressing() -> None:
    assert BusMessage("x", "a", {}).for_instance("b")
    assert BusMessage("x", "a", {}, to="b").for_instance("b")
    assert not BusMessage("x", "a", {}, to="c").for_instance("b")


def test_instances_and_keys() -> None:
    inst = new_instance("node-1")
    assert node_of(inst) == "node-1" and inst != new_instance("node-1")
    assert claim_member(inst, "c-1").rsplit("|", 1) == [inst, "c-1"]
    k = Keys("p:")
    assert k.alive(inst) == f"p:alive:{inst}" and k.bus == "p:control"
    assert set(k.owned(inst)) == {k.alive(inst), k.conns(inst), k.claims(inst), k.health(inst)}
    assert Keys().prefix == "mtb:ctl:"


def test_online_accounts() -> None:
    entries = [
        {"role": "ea", "accounts": ["1001", "*"]},
        {"role": "ea", "accounts": ["1002"]},
        {"role": "dashboard", "accounts": ["9"]},
        {"role": "ea", "accounts": "bad"},
    ]
    assert online_accounts(entries) == {"1001", "1002"}


def test_aggregate_health() -> None:
    out = aggregate_health(
        5,
        {
            "b": {"connections": 2, "byRole": {"ea": 2}, "messagesInPerSec": 1.25, "latencyP99Ms": 3.0},
            "a": {"connections": 1, "byRole": {"ea": 1, "engine": 1}, "latencyP99Ms": 9.0, "drops": True},
        },
    )
    assert out["ts"] == 5 and out["connections"] == 3
    assert out["byRole"] == {"ea": 3, "engine": 1}
    assert out["latencyP99Ms"] == 9.0 and out["drops"] == 0
    assert [n["node"] for n in out["nodes"]] == ["a", "b"]


def test_advisory_key_is_stable_int64() -> None:
    assert advisory_key("sweeps") == advisory_key("sweeps") != advisory_key("marketdata")
    assert -(2**63) <= advisory_key("sweeps") < 2**63
