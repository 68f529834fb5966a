"""The hub without sockets (sans-I/O, a fake sink from tests/support/fakes.py): arbitrary input gets
only structured errors, the outbound queue's rules, replies in the connection's encoding."""

from __future__ import annotations

import asyncio
import json

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.hub.connection import Connection
from bridge.protocol import codes
from bridge.protocol.envelope import Encoding
from tests.support.fakes import FakeSink, make_hub, token


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.one_of(
            st.binary(max_size=120),
            st.dictionaries(
                st.sampled_from(["type", "requestId", "channel", "payload"]),
                st.one_of(
                    st.sampled_from(
                        ["auth", "subscribe", "publish", "unsubscribe", "heartbeat", "auth.refresh", "x"]
                    ),
                    st.sampled_from(
                        ["signals:alpha", "instrument:X", "account:1:events", "system:health", "bad"]
                    ),
                    st.dictionaries(
                        st.sampled_from(["token", "since", "epoch", "id"]),
                        st.integers() | st.text(max_size=10),
                    ),
                    st.integers(),
                    st.none(),
                ),
                max_size=4,
            ).map(lambda d: json.dumps(d).encode()),
        ),
        max_size=12,
    ),
    st.booleans(),
)
def test_arbitrary_messages_yield_only_structured_errors(messages: list[bytes], authed: bool) -> None:
    async def run() -> None:
        hub = make_hub(rate_per_second=None)
        await hub.start()
        sink = FakeSink()
        conn = hub.connect(sink, Encoding.JSON, "127.0.0.1")
        if authed:
            assert hub.authenticate(conn, token(), None)
        for raw in messages:
            hub.receive(conn, raw, binary=False)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        for m in sink.messages():
            assert m["type"] in {"result", "error", "heartbeat", "message", "welcome", "unsubscribed"}
            if m["type"] == "error":
                assert m["payload"]["code"] in codes.ERRORS
                assert isinstance(m["payload"]["message"], str)
        hub.disconnected(conn)
        assert not hub.connections and not hub.by_ip and not any(len(c) for c in hub.channels.values())
        await hub.stop(0)

    asyncio.run(run())


class TestQueue:
    async def test_fanout_writes_one_frame_object_per_subscriber_per_iteration(self) -> None:
        hub = make_hub()
        await hub.start()
        sinks = [FakeSink() for _ in range(3)]
        conns = [hub.connect(s, Encoding.JSON, "ip") for s in sinks]
        for c in conns:
            hub.authenticate(c, token(), None)
            hub.receive(c, b'{"type":"subscribe","channel":"instrument:X"}', False)
        await asyncio.sleep(0)
        for s in sinks:
            s.written.clear()
        for i in range(5):
            hub.publish_ephemeral("instrument:X", {"i": i})
        await asyncio.sleep(0)
        for s in sinks:
            assert len(s.written) == 1  # five messages, one write
            assert [m["payload"]["i"] for m in s.messages()] == [0, 1, 2, 3, 4]
        await hub.stop(0)

    async def test_paused_lossy_subscriber_gets_the_latest_value_only(self) -> None:
        hub = make_hub()
        await hub.start()
        sink = FakeSink()
        c = hub.connect(sink, Encoding.JSON, "ip")
        hub.authenticate(c, token(), None)
        hub.receive(c, b'{"type":"subscribe","channel":"instrument:X"}', False)
        await asyncio.sleep(0)
        sink.written.clear()
        c.pause_writing()
        for i in range(100):
            hub.publish_ephemeral("instrument:X", {"i": i})
        await asyncio.sleep(0)
        assert sink.written == []
        c.resume_writing()
        await asyncio.sleep(0)
        assert [m["payload"]["i"] for m in sink.messages()] == [99]
        await hub.stop(0)

    async def test_paused_lossless_subscriber_past_the_bound_is_closed_slow(self) -> None:
        hub = make_hub(max_queue_bytes=4096, max_queue_messages=10)
        await hub.start()
        sink = FakeSink()
        c = hub.connect(sink, Encoding.JSON, "ip")
        hub.authenticate(c, token(), None)
        # Put it straight on a durable-like channel: account channels are lossless.
        ch = hub._channel("account:1:x", hub.policy_for("account:1:x"))
        ch.json_subs[c] = None
        c.subscriptions.add("account:1:x")
        c.pause_writing()
        for i in range(20):
            hub.fanout("account:1:x", i + 1, {"i": i})
        assert sink.closed is not None and sink.closed[0] == codes.SLOW_CONSUMER.code
        hub.disconnected(c)
        assert not hub.channels
        await hub.stop(0)

    async def test_burst_larger_than_the_queue_goes_to_the_socket(self) -> None:
        hub = make_hub(max_queue_bytes=8192)
        await hub.start()
        sink = FakeSink()
        c = hub.connect(sink, Encoding.JSON, "ip")
        hub.authenticate(c, token(), None)
        ch = hub._channel("account:1:x", hub.policy_for("account:1:x"))
        ch.json_subs[c] = None
        c.subscriptions.add("account:1:x")
        for i in range(100):
            hub.fanout("account:1:x", i + 1, {"i": i, "pad": "p" * 200})
        await asyncio.sleep(0)
        assert sink.closed is None
        assert [m["offset"] for m in sink.messages()] == list(range(1, 101))
        hub.disconnected(c)
        await hub.stop(0)


@pytest.mark.parametrize("encoding", list(Encoding))
async def test_replies_use_the_connection_encoding(encoding: Encoding) -> None:
    hub = make_hub()
    await hub.start()
    sink = FakeSink()
    c = hub.connect(sink, encoding, "ip")
    raw = {"type": "heartbeat", "requestId": "h"}
    data = json.dumps(raw).encode() if encoding is Encoding.JSON else msgpack.packb(raw)
    hub.receive(c, data, binary=encoding is Encoding.MSGPACK)
    await asyncio.sleep(0)
    msgs = sink.messages()
    assert msgs[-1]["type"] == "heartbeat" and msgs[-1]["requestId"] == "h"
    hub.disconnected(c)
    await hub.stop(0)


def test_connection_has_no_instance_dict() -> None:
    # Memory per idle connection matters at 10,000 connections.
    assert not hasattr(Connection, "__dict__") or "__slots__" in Connection.__dict__
