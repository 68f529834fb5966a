"""SDK behaviour against the in-process FakeHub (no server): requests, subscriptions, reconnects."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bridge.client import (
    AuthenticationFailed,
    ClientClosed,
    ConnectError,
    FakeHub,
    Message,
    MockTransport,
    RecoveryFailed,
    RequestError,
    RequestTimeout,
    State,
    connect,
)
from tests.support.factories import numbered_signal as signal
from tests.support.sdk import EA, ENGINE, ClientFactory
from tests.support.waits import WAIT as TIMEOUT
from tests.support.waits import until


async def take(sub: Any, n: int) -> list[Message]:
    out: list[Message] = []
    async with asyncio.timeout(TIMEOUT):
        while len(out) < n:
            out.append(await sub.__anext__())
    return out


def subscribes(hub: FakeHub, channel: str) -> list[dict[str, Any]]:
    return [m for m in hub.received if m.get("type") == "subscribe" and m.get("channel") == channel]


class TestRequests:
    @pytest.mark.parametrize("encoding", ["json", "msgpack"])
    async def test_client_publish_returns_offset(self, make_client: ClientFactory, encoding: str) -> None:
        client = await make_client(encoding=encoding)
        assert client.state is State.OPEN
        assert client.session["sub"] == "eng"
        first = await client.publish("signals:alpha", signal(1))
        second = await client.publish("signals:alpha", signal(2))
        again = await client.publish("signals:alpha", signal(1))
        assert (first.offset, second.offset) == (1, 2)
        assert again.offset == 1 and again.duplicate
        assert first.epoch is not None and not first.duplicate

    async def test_client_publish_invalid_raises_with_details(self, make_client: ClientFactory) -> None:
        client = await make_client()
        with pytest.raises(RequestError) as info:
            await client.publish("signals:alpha", signal(1, volume=-1, side="up"))
        assert info.value.code == "validation_failed"
        assert not info.value.retryable
        assert {d["field"] for d in info.value.details} >= {"volume", "side"}

    async def test_client_request_times_out(self, make_client: ClientFactory, hub: FakeHub) -> None:
        client = await make_client()
        hub.ignore_types.add("publish")
        with pytest.raises(RequestTimeout):
            await client.publish("signals:alpha", signal(1), timeout=0.05)
        assert client.state is State.OPEN

    async def test_client_signal_ack_and_trade_event(self, make_client: ClientFactory, hub: FakeHub) -> None:
        client = await make_client(EA)
        sid = signal(1)["id"]
        assert (await client.signal_ack(sid, "50123"))["status"] == "acked"
        event = {
            "id": "11111111-1111-4111-8111-111111111111",
            "kind": "deal",
            "account": "50123",
            "ts": 1,
            "signalId": sid,
            "ticket": 1,
            "symbol": "EURUSD",
            "side": "buy",
            "entry": "in",
            "volume": 0.1,
            "price": 1.1,
        }
        assert await client.trade_event(event) == {"id": event["id"], "duplicate": False}
        assert (await client.trade_event(event))["duplicate"] is True
        assert hub.acks == [(sid, "50123")]
        assert await client.heartbeat() > 0

    async def test_client_bad_token_fails_to_connect(self, transport: MockTransport) -> None:
        with pytest.raises(AuthenticationFailed) as info:
            await connect("ws://fake/ws", "wrong", transport=transport)
        assert info.value.code == "token_invalid"

    async def test_client_unreachable_hub_fails_fast(self, transport: MockTransport) -> None:
        transport.refusing = True
        with pytest.raises(ConnectError):
            await connect("ws://fake/ws", ENGINE, transport=transport)
        assert transport.attempts == 1

    async def test_client_retry_waits_for_the_hub(self, transport: MockTransport) -> None:
        transport.refusing = True

        async def open_later() -> None:
            await until(lambda: transport.attempts >= 3)
            transport.refusing = False

        opener = asyncio.create_task(open_later())
        client = await connect(
            "ws://fake/ws", ENGINE, transport=transport, retry=True, backoff_initial=0.01, backoff_max=0.02
        )
        await opener
        assert client.stats.failed_attempts >= 3
        assert len(client.stats.delays) >= 3
        await client.close()


class TestSubscriptions:
    async def test_client_subscribe_iterates_in_order(self, make_client: ClientFactory, hub: FakeHub) -> None:
        engine = await make_client()
        ea = await make_client(EA)
        sub = await ea.subscribe("signals:alpha")
        for n in range(1, 6):
            await engine.publish("signals:alpha", signal(n))
        got = await take(sub, 5)
        assert [m.offset for m in got] == [1, 2, 3, 4, 5]
        assert got[0].payload["id"] == signal(1)["id"]
        assert sub.offset == 5

    async def test_client_subscribe_since_replays_history(self, make_client: ClientFactory) -> None:
        engine = await make_client()
        for n in range(1, 6):
            await engine.publish("signals:alpha", signal(n))
        sub = await engine.subscribe("signals:alpha", since=2)
        assert [m.offset for m in await take(sub, 3)] == [3, 4, 5]

    async def test_client_subscribe_callback_mode(self, make_client: ClientFactory) -> None:
        engine = await make_client()
        seen: list[int] = []

        async def on_message(m: Message) -> None:
            seen.append(m.offset)

        await engine.subscribe("signals:alpha", on_message)
        for n in range(1, 4):
            await engine.publish("signals:alpha", signal(n))
        await until(lambda: seen == [1, 2, 3])

    async def test_client_subscribe_forbidden_raises(self, make_client: ClientFactory, hub: FakeHub) -> None:
        client = await make_client()
        hub.ignore_types.add("subscribe")
        with pytest.raises(RequestTimeout):
            await client.subscribe("signals:alpha", timeout=0.05)
        assert "signals:alpha" not in client.subscriptions

    async def test_client_drops_duplicate_messages(self, make_client: ClientFactory, hub: FakeHub) -> None:
        client = await make_client()
        sub = await client.subscribe("signals:alpha")
        await client.publish("signals:alpha", signal(1))
        peer = hub.sessions[0].peer
        await peer.send(
            {"type": "message", "channel": "signals:alpha", "offset": 1, "payload": {"dup": True}}
        )
        await client.publish("signals:alpha", signal(2))
        got = await take(sub, 2)
        assert [m.offset for m in got] == [1, 2]
        assert "dup" not in got[0].payload
        assert sub.duplicates_dropped == 1

    async def test_client_ignores_malformed_hub_messages(
        self, make_client: ClientFactory, hub: FakeHub
    ) -> None:
        client = await make_client()
        sub = await client.subscribe("signals:alpha")
        await hub.sessions[0].peer.send_raw("{not json")
        await hub.sessions[0].peer.send_raw('{"type":"message","offset":"x"}')
        await client.publish("signals:alpha", signal(1))
        assert [m.offset for m in await take(sub, 1)] == [1]

    async def test_client_slow_app_pauses_and_resumes_without_loss(
        self, make_client: ClientFactory, hub: FakeHub
    ) -> None:
        engine = await make_client()
        reader = await make_client(ENGINE)
        sub = await reader.subscribe("signals:alpha", max_queue=4)
        for n in range(1, 21):
            await engine.publish("signals:alpha", signal(n))
        got = await take(sub, 20)
        assert [m.offset for m in got] == list(range(1, 21))
        unsubs = [m for m in hub.received if m.get("type") == "unsubscribe"]
        assert unsubs, "the channel was paused at the hub"
        assert len(subscribes(hub, "signals:alpha")) >= 2

    async def test_client_unsubscribe_ends_iteration(self, make_client: ClientFactory) -> None:
        client = await make_client()
        sub = await client.subscribe("signals:alpha")
        await sub.unsubscribe()
        with pytest.raises(StopAsyncIteration):
            await sub.__anext__()
        assert client.subscriptions == {}


class TestReconnect:
    async def test_client_reconnects_and_recovers_without_duplicates(
        self, make_client: ClientFactory, hub: FakeHub
    ) -> None:
        engine = await make_client()
        ea = await make_client(EA)
        sub = await ea.subscribe("signals:alpha")
        for n in range(1, 4):
            await engine.publish("signals:alpha", signal(n))
        assert [m.offset for m in await take(sub, 2)] == [1, 2]
        await hub.kick(4006, "closed by operator")
        for n in range(4, 7):
            await hub.publish("signals:alpha", signal(n), signal(n)["id"])  # while the clients are away
        got = await take(sub, 4)
        assert [m.offset for m in got] == [3, 4, 5, 6]
        resub = subscribes(hub, "signals:alpha")[-1]
        assert resub["payload"]["since"] == 3  # 3 was already queued locally, so not asked for again
        assert resub["payload"]["epoch"] == hub.log("signals:alpha").epoch
        await until(lambda: ea.state is State.OPEN)
        assert ea.stats.reconnects >= 1 and ea.stats.delays
        await until(lambda: engine.state is State.OPEN)
        await engine.publish("signals:alpha", signal(7))
        assert [m.offset for m in await take(sub, 1)] == [7]

    async def test_client_reconnects_after_crash(self, make_client: ClientFactory, hub: FakeHub) -> None:
        client = await make_client()
        sub = await client.subscribe("signals:alpha")
        await client.publish("signals:alpha", signal(1))
        hub.drop_all()
        await until(lambda: client.stats.reconnects >= 1 and client.state is State.OPEN)
        await client.publish("signals:alpha", signal(2))
        assert [m.offset for m in await take(sub, 2)] == [1, 2]
        assert client.stats.delays[0][2] == 1006

    async def test_client_honours_reconnect_hint(self, make_client: ClientFactory, hub: FakeHub) -> None:
        client = await make_client()
        await hub.kick(1001, "shutdown", after_ms=123)
        await until(lambda: client.stats.reconnects >= 1)
        assert client.stats.delays[0][1] == pytest.approx(0.123)
        assert client.stats.delays[0][2] == 1001

    async def test_client_surfaces_unrecoverable_gap(self, make_client: ClientFactory, hub: FakeHub) -> None:
        client = await make_client()
        sub = await client.subscribe("signals:alpha")
        await client.publish("signals:alpha", signal(1))
        assert [m.offset for m in await take(sub, 1)] == [1]
        await hub.kick(4001, "slow consumer")
        for n in range(2, 5):
            await hub.publish("signals:alpha", signal(n), signal(n)["id"])
        hub.trim("signals:alpha", 4)
        async with asyncio.timeout(TIMEOUT):
            with pytest.raises(RecoveryFailed) as info:
                await sub.__anext__()
        assert info.value.reason == "history_trimmed"
        assert (info.value.since, info.value.offset) == (1, 4)
        await until(lambda: client.state is State.OPEN)
        await client.publish("signals:alpha", signal(5))
        assert [m.offset for m in await take(sub, 1)] == [5]  # live after the gap

    async def test_client_gap_goes_to_on_gap_in_callback_mode(
        self, make_client: ClientFactory, hub: FakeHub
    ) -> None:
        client = await make_client()
        gaps: list[RecoveryFailed] = []
        seen: list[int] = []
        await client.subscribe("signals:alpha", lambda m: seen.append(m.offset), since=7, on_gap=gaps.append)
        await until(lambda: len(gaps) == 1)
        assert gaps[0].reason == "offset_ahead"

    async def test_client_terminal_close_stops(self, make_client: ClientFactory, hub: FakeHub) -> None:
        client = await make_client()
        sub = await client.subscribe("signals:alpha")
        await hub.kick(4501, "token revoked")
        async with asyncio.timeout(TIMEOUT):
            with pytest.raises(ClientClosed) as info:
                await client.wait_closed()
        assert info.value.code == 4501
        assert client.state is State.CLOSED
        with pytest.raises(ClientClosed):
            await sub.__anext__()
        with pytest.raises(ClientClosed):
            await client.publish("signals:alpha", signal(1))

    async def test_client_heartbeat_detects_dead_link(self, make_client: ClientFactory, hub: FakeHub) -> None:
        client = await make_client(heartbeat_interval=0.02)
        hub.ignore_types.add("heartbeat")
        await until(lambda: client.stats.heartbeats_missed >= 2 and client.stats.delays)
        assert client.stats.delays[0][2] == 4002

    async def test_client_refreshes_token_on_warning(self, make_client: ClientFactory, hub: FakeHub) -> None:
        calls: list[int] = []

        async def provider() -> str:
            calls.append(1)
            return "ea-2" if len(calls) > 1 else EA

        client = await make_client(None, token_provider=provider)
        await hub.broadcast(
            {"type": "warning", "payload": {"code": "token_expiring", "expiresAt": 1, "closeAt": 2}}
        )
        await until(lambda: client.stats.token_refreshes == 1)
        refresh = [m for m in hub.received if m.get("type") == "auth.refresh"]
        assert refresh[0]["payload"] == {"token": "ea-2"}


class TestClose:
    async def test_client_close_leaves_no_task(self, transport: MockTransport, hub: FakeHub) -> None:
        before = asyncio.all_tasks()
        client = await connect("ws://fake/ws", ENGINE, transport=transport, heartbeat_interval=0.01)
        await client.subscribe("signals:alpha", lambda m: None)
        sub = await client.subscribe("signals:beta")
        await client.close()
        await transport.aclose()
        assert client.state is State.CLOSED
        assert asyncio.all_tasks() - before == set()
        with pytest.raises(StopAsyncIteration):
            await sub.__anext__()
        await client.close()  # idempotent

    async def test_client_context_manager(self, transport: MockTransport) -> None:
        from bridge.client import Client

        async with Client("ws://fake/ws", ENGINE, transport=transport) as client:
            assert client.state is State.OPEN
        assert client.state.name == "CLOSED"
