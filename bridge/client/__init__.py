"""Python SDK for mtbridge hubs: publish signals, subscribe with recovery, report trade events.

Example::

    from bridge.client import connect

    async with await connect("ws://127.0.0.1:8765/ws", token) as client:
        result = await client.publish("signals:alpha", signal)
        async for message in await client.subscribe("signals:alpha", since=result.offset - 1):
            ...
"""

from __future__ import annotations

from bridge.client._backoff import (
    BACKOFF_FACTOR,
    BACKOFF_INITIAL_DELAY,
    BACKOFF_MAX_DELAY,
    backoff_delay,
)
from bridge.client._client import Client, ClientStats, PublishResult, State, TokenProvider, connect
from bridge.client._exceptions import (
    AuthenticationFailed,
    ClientClosed,
    ClientError,
    ConnectError,
    ConnectionClosed,
    RecoveryFailed,
    RequestError,
    RequestTimeout,
)
from bridge.client._mock import FakeHub, FakeToken, MockPeer, MockTransport
from bridge.client._subscription import DEFAULT_MAX_QUEUE, Message, Subscription
from bridge.client._transport import Link, Transport, TransportClosed, WebSocketTransport

__all__ = [
    "BACKOFF_FACTOR",
    "BACKOFF_INITIAL_DELAY",
    "BACKOFF_MAX_DELAY",
    "DEFAULT_MAX_QUEUE",
    "AuthenticationFailed",
    "Client",
    "ClientClosed",
    "ClientError",
    "ClientStats",
    "ConnectError",
    "ConnectionClosed",
    "FakeHub",
    "FakeToken",
    "Link",
    "Message",
    "MockPeer",
    "MockTransport",
    "PublishResult",
    "RecoveryFailed",
    "RequestError",
    "RequestTimeout",
    "State",
    "Subscription",
    "TokenProvider",
    "Transport",
    "TransportClosed",
    "WebSocketTransport",
    "backoff_delay",
    "connect",
]
