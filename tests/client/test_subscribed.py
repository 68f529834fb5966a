"""The SDK receives subscriptions made for it over REST (``on_subscribed``), against a real hub:
the ``subscribed`` push becomes a Subscription of the client's own, with the replay from ``since``,
live messages once each, a reconnect that resubscribes it, and its removal over REST; and the
FakeHub's ``subscribe_for``, the same offline."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import httpx
import pytest

from bridge.client import Client, FakeHub, Message, RecoveryFailed, Subscription, connect
from bridge.client._subscription import SubState
from tests.support.factories import numbered_signal as signal
from tests.support.hub import RunningHub, running_hub
from tests.support.sdk import EA, ENGINE, ClientFactory
from tests.support.waits import WAIT as TIMEOUT
from tests.support.waits import until

CHANNEL = "signals:alpha"


async def rest(h: RunningHub, method: str, path: str, body: Any = None) -> httpx.Response:
    admin = h.token("admin", "ops", accounts=["*"])
    async with httpx.AsyncClient(base_url=h.http, timeout=TIMEOUT) as http:
        return await http.request(method, path, json=body, headers={"Authorization": f"Bearer {admin}"})


def ea_token(h: RunningHub) -> str:
    return h.token("ea", "ea-50123", accounts=["50123"], subscribe=["signals:*"])


async def test_callback_mode_replay_live_reconnect_and_removal(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as h:
        engine = await connect(h.url, h.token("engine", "eng", publish=["signals:*"]))
        offsets = [(await engine.publish(CHANNEL, signal(n))).offset for n in range(4)]
        seen: list[int] = []
        adopted: list[Subscription] = []

        def attached(sub: Subscription) -> Any:
            adopted.append(sub)

            async def handle(message: Message) -> None:
                seen.append(message.offset)

            return handle

        ea = await connect(h.url, ea_token(h), on_subscribed=attached, backoff_initial=0.01, backoff_max=0.05)
        cid = ea.welcome["connectionId"]
        r = await rest(
            h, "POST", f"/api/v1/connections/{cid}/subscriptions", {"channel": CHANNEL, "since": offsets[0]}
        )
        assert r.status_code == 200, r.text
        assert r.json()["result"]["replayed"] == 3
        await until(lambda: seen == offsets[1:])
        assert [s.channel for s in adopted] == [CHANNEL] and ea.subscriptions[CHANNEL] is adopted[0]

        live = (await engine.publish(CHANNEL, signal(10))).offset
        await until(lambda: seen == [*offsets[1:], live])

        # The connection is closed (4006): the client reconnects and subscribes again itself, from
        # the last offset it received, so what was published meanwhile arrives once.
        connects = ea.stats.connects
        assert (await rest(h, "DELETE", f"/api/v1/connections/{cid}")).status_code == 200
        await until(lambda: ea.stats.connects > connects and CHANNEL in _channels_of(h, ea))
        later = (await engine.publish(CHANNEL, signal(11))).offset
        await until(lambda: seen[-1:] == [later])
        assert seen == [*offsets[1:], live, later]
        assert len(adopted) == 1  # resubscribed by the client itself: no second push

        # Removed over REST: the subscription ends.
        new_cid = ea.welcome["connectionId"]
        r = await rest(h, "DELETE", f"/api/v1/connections/{new_cid}/subscriptions/{CHANNEL}")
        assert r.status_code == 200, r.text
        await until(lambda: CHANNEL not in ea.subscriptions)
        await ea.close()
        await engine.close()
        await h.wait_clean()


def _channels_of(h: RunningHub, client: Client) -> set[str]:
    conn = h.hub.connections.get(client.welcome.get("connectionId", ""))
    return set(conn.subscriptions) if conn is not None else set()


async def test_iterator_mode_and_a_gap_the_history_cannot_fill(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as h:
        engine = await connect(h.url, h.token("engine", "eng", publish=["signals:*"]))
        first = (await engine.publish(CHANNEL, signal(1))).offset
        adopted: list[Subscription] = []
        ea = await connect(h.url, ea_token(h), on_subscribed=lambda sub: adopted.append(sub))
        cid = ea.welcome["connectionId"]
        r = await rest(
            h, "POST", f"/api/v1/connections/{cid}/subscriptions", {"channel": CHANNEL, "since": first + 5}
        )
        assert r.status_code == 200 and r.json()["result"]["reason"] == "offset_ahead", r.text
        await until(lambda: len(adopted) == 1)
        sub = adopted[0]
        with pytest.raises(RecoveryFailed) as gap:
            async with asyncio.timeout(TIMEOUT):
                await sub.__anext__()
        assert gap.value.reason == "offset_ahead"
        live = (await engine.publish(CHANNEL, signal(2))).offset
        async with asyncio.timeout(TIMEOUT):
            message = await sub.__anext__()
        assert (message.channel, message.offset) == (CHANNEL, live)
        await sub.unsubscribe()
        assert CHANNEL not in ea.subscriptions
        await ea.close()
        await engine.close()
        await h.wait_clean()


async def test_without_on_subscribed_messages_are_dropped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with running_hub(tmp_path) as h:
        ea = await connect(h.url, ea_token(h))
        cid = ea.welcome["connectionId"]
        with caplog.at_level(logging.WARNING, logger="mtbridge.client"):
            r = await rest(h, "POST", f"/api/v1/connections/{cid}/subscriptions", {"channel": CHANNEL})
            assert r.status_code == 200, r.text
            await until(lambda: any("without on_subscribed" in rec.getMessage() for rec in caplog.records))
        assert ea.subscriptions == {}
        await ea.close()
        await h.wait_clean()


async def test_fake_hub_subscribe_for_and_resubscribe_after_a_crash(
    make_client: ClientFactory, hub: FakeHub
) -> None:
    """The SDK's in-memory FakeHub does what the REST call does, so applications can test their
    ``on_subscribed`` offline; after a dropped link the client subscribes again from where it was."""
    engine = await make_client(ENGINE)
    first = (await engine.publish(CHANNEL, signal(1))).offset
    second = (await engine.publish(CHANNEL, signal(2))).offset
    got: list[int] = []
    ea = await make_client(EA, on_subscribed=lambda sub: lambda m: got.append(m.offset))
    pushed = await hub.subscribe_for(ea.welcome["connectionId"], CHANNEL, since=first)
    assert (pushed["recovered"], pushed["replayed"]) == (True, 1)
    await until(lambda: got == [second])
    with pytest.raises(ValueError):
        await hub.subscribe_for(ea.welcome["connectionId"], CHANNEL)
    with pytest.raises(KeyError):
        await hub.subscribe_for("c-nobody", CHANNEL)

    connects = ea.stats.connects
    hub.drop_all()
    await until(lambda: ea.stats.connects > connects and ea.subscriptions[CHANNEL].state == SubState.ACTIVE)
    resubscribes = [m for m in hub.received if m.get("type") == "subscribe" and m.get("channel") == CHANNEL]
    assert resubscribes[-1]["payload"]["since"] == second
    third = (await engine.publish(CHANNEL, signal(3))).offset
    await until(lambda: got == [second, third])


async def test_subscribing_a_channel_the_hub_already_holds_for_it(
    make_client: ClientFactory, hub: FakeHub
) -> None:
    """Made over REST for a client without ``on_subscribed``, then subscribed by the application
    itself with ``since``: the hub answers ``already_subscribed``, so the client removes the
    subscription it never saw answered and subscribes again, and the stream starts at ``since``."""
    engine = await make_client(ENGINE)
    offsets = [(await engine.publish(CHANNEL, signal(n))).offset for n in range(3)]
    ea = await make_client(EA)
    await hub.subscribe_for(ea.welcome["connectionId"], CHANNEL)
    sub = await ea.subscribe(CHANNEL, since=offsets[0])
    async with asyncio.timeout(TIMEOUT):
        assert [(await sub.__anext__()).offset for _ in range(2)] == offsets[1:]
    live = (await engine.publish(CHANNEL, signal(9))).offset
    async with asyncio.timeout(TIMEOUT):
        assert (await sub.__anext__()).offset == live
    assert [m["type"] for m in hub.received if m.get("channel") == CHANNEL and m["type"] != "publish"] == [
        "subscribe",
        "unsubscribe",
        "subscribe",
    ]
