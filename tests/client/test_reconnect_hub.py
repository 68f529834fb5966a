"""Acceptance: the SDK against a real hub process that goes away and comes back."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge.client import AuthenticationFailed, Message, State, connect
from tests.support.factories import numbered_signal
from tests.support.hub import HubProcess
from tests.support.waits import WAIT as TIMEOUT
from tests.support.waits import until


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[HubProcess]:
    h = HubProcess(tmp_path)
    h.start()
    yield h
    h.stop(signal.SIGKILL)


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["graceful", "killed"])
async def test_sdk_survives_hub_restart_without_duplicates(hub: HubProcess, how: int) -> None:
    eng_token = hub.cli_token(
        "--role", "engine", "--sub", "eng", "--publish", "signals:*", "--subscribe", "signals:*"
    )
    ea_token = hub.cli_token(
        "--role", "ea", "--sub", "ea-50123", "--account", "50123", "--subscribe", "signals:*"
    )
    options: dict[str, Any] = {"backoff_initial": 0.2, "backoff_max": 1.0, "request_timeout": TIMEOUT}
    engine = await connect(hub.url, eng_token, **options)
    ea = await connect(hub.url, ea_token, **options)
    seen: list[Message] = []
    try:
        await ea.subscribe("signals:alpha", seen.append)
        for n in range(10):
            await engine.publish("signals:alpha", numbered_signal(n, volume=0.1))
        await until(lambda: len(seen) == 10)

        hub.stop(how)
        await until(lambda: ea.state is State.RECONNECTING)
        hub.start()
        await until(lambda: ea.state is State.OPEN and engine.state is State.OPEN)
        for n in range(10, 20):
            result = await engine.publish("signals:alpha", numbered_signal(n, volume=0.1))
            assert not result.duplicate
        again = await engine.publish("signals:alpha", numbered_signal(3, volume=0.1))
        assert again.duplicate and again.offset == 4
        await until(lambda: len(seen) >= 20)
        # Absence has no event to wait on: a duplicate, if any, follows the last original within this window.
        await asyncio.sleep(0.3)
    finally:
        await engine.close()
        await ea.close()
    assert [m.offset for m in seen] == list(range(1, 21))
    assert [m.payload["id"] for m in seen] == [numbered_signal(n, volume=0.1)["id"] for n in range(20)]
    assert ea.stats.reconnects >= 1
    assert ea.stats.delays, "the client waited before reconnecting"
    if how == signal.SIGTERM:
        assert ea.stats.delays[0][2] == 1001  # the hub said goodbye with 1001 (and a reconnect hint)


async def test_sdk_recovers_what_was_published_while_it_was_away(hub: HubProcess) -> None:
    eng_token = hub.cli_token(
        "--role", "engine", "--sub", "eng", "--publish", "signals:*", "--subscribe", "signals:*"
    )
    ea_token = hub.cli_token(
        "--role", "ea", "--sub", "ea-50123", "--account", "50123", "--subscribe", "signals:*"
    )
    options: dict[str, Any] = {"backoff_initial": 0.5, "backoff_max": 1.0}
    ea = await connect(hub.url, ea_token, **options)
    seen: list[int] = []
    await ea.subscribe("signals:alpha", lambda m: seen.append(m.offset))
    hub.stop(signal.SIGKILL)
    await until(lambda: ea.state is State.RECONNECTING)
    hub.start()
    engine = await connect(hub.url, eng_token)
    try:
        for n in range(5):  # published before the EA is back (it waits with backoff)
            await engine.publish("signals:alpha", numbered_signal(n, volume=0.1))
        await until(lambda: len(seen) >= 5)
    finally:
        await engine.close()
        await ea.close()
    assert seen == [1, 2, 3, 4, 5]


async def test_sdk_bad_token_is_terminal(hub: HubProcess) -> None:
    with pytest.raises(AuthenticationFailed) as info:
        await connect(hub.url, "not-a-jwt", backoff_initial=0.01)
    assert info.value.code == "token_invalid"
