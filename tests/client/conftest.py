from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import pytest

from bridge.client import Client, FakeHub, FakeToken, MockTransport, connect

#: Generous waits, scaled on slow machines; never asserted as durations.
TIMEOUT = 10.0 * float(os.environ.get("MTBRIDGE_TESTS_TIMEOUT_FACTOR", "1"))

ENGINE = "engine-token"
EA = "ea-token"


@pytest.fixture
def hub() -> FakeHub:
    return FakeHub(
        {
            ENGINE: FakeToken("eng", "engine"),
            EA: FakeToken("ea-50123", "ea", frozenset({"50123"})),
            "ea-2": FakeToken("ea-50123", "ea", frozenset({"50123"})),
        }
    )


@pytest.fixture
async def transport(hub: FakeHub) -> AsyncIterator[MockTransport]:
    t = MockTransport(hub)
    yield t
    await t.aclose()


ClientFactory = Callable[..., Coroutine[Any, Any, Client]]


@pytest.fixture
async def make_client(transport: MockTransport) -> AsyncIterator[ClientFactory]:
    clients: list[Client] = []

    async def factory(token: str | None = ENGINE, **options: Any) -> Client:
        options.setdefault("backoff_initial", 0.01)
        options.setdefault("backoff_max", 0.05)
        options.setdefault("request_timeout", TIMEOUT)
        client = await connect("ws://fake/ws", token, transport=transport, **options)
        clients.append(client)
        return client

    yield factory
    for c in clients:
        await c.close()


def signal(n: int = 0, **over: Any) -> dict[str, Any]:
    body = {
        "id": f"00000000-0000-4000-8000-{n:012d}",
        "strategy": "alpha",
        "accounts": ["50123"],
        "symbol": "EURUSD",
        "action": "open",
        "side": "buy",
        "orderType": "market",
        "volume": 0.1,
        "ttl": 600,
    }
    body.update(over)
    return body
