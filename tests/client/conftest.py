"""Fixtures for the SDK tests: the SDK's mock hub (tokens in :mod:`tests.support.sdk`), its
transport, and ``make_client``, which connects SDK clients and closes them after the test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from bridge.client import Client, FakeHub, MockTransport, connect
from tests.support.sdk import ENGINE, ClientFactory, fake_hub
from tests.support.waits import WAIT


@pytest.fixture
def hub() -> FakeHub:
    return fake_hub()


@pytest.fixture
async def transport(hub: FakeHub) -> AsyncIterator[MockTransport]:
    t = MockTransport(hub)
    yield t
    await t.aclose()


@pytest.fixture
async def make_client(transport: MockTransport) -> AsyncIterator[ClientFactory]:
    clients: list[Client] = []

    async def factory(token: str | None = ENGINE, **options: Any) -> Client:
        options.setdefault("backoff_initial", 0.01)
        options.setdefault("backoff_max", 0.05)
        options.setdefault("request_timeout", WAIT)
        client = await connect("ws://fake/ws", token, transport=transport, **options)
        clients.append(client)
        return client

    yield factory
    for c in clients:
        await c.close()
