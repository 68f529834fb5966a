"""Python SDK for mtbridge hubs: publish signals, subscribe with recovery, report trade events.

Example::

    from bridge.client import connect

    async with await connect("ws://127.0.0.1:8765/ws", token) as client:
        result = await client.publish("signals:alpha", signal)
        async for message in await client.subscribe("signals:alpha", since=result.offset - 1):
            ...

Subscriptions an operator or an engine makes for this connection over REST (docs/protocol.md,
"Subscriptions managed over REST") arrive as a ``subscribed`` push; give ``on_subscribed`` to
receive them, else their messages are dropped (with a warning)::

    def attached(sub: Subscription) -> MessageHandler | None:
        return handle_signal  # callback mode; or keep ``sub`` and iterate it, returning None

    client = await connect(url, token, on_subscribed=attached)

The subscription is then the client's own, like one it asked for: ``client.subscriptions`` lists it,
``sub.unsubscribe()`` ends it, and after a reconnect the client subscribes again with ``since``.
``FakeHub.subscribe_for(connection_id, channel)`` does the same in memory, for tests.
"""

from __future__ import annotations

from bridge.client._backoff import (
    BACKOFF_FACTOR,
    BACKOFF_INITIAL_DELAY,
    BACKOFF_MAX_DELAY,
    backoff_delay,
)
from bridge.client._client import Client, PublishResult, SubscribedHandler, connect
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
from bridge.client._lifecycle import ClientStats, State, TokenProvider
from bridge.client._mock import FakeHub, FakeToken, MockPeer, MockTransport
from bridge.client._subscription import DEFAULT_MAX_QUEUE, Message, MessageHandler, Subscription
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
    "MessageHandler",
    "MockPeer",
    "MockTransport",
    "PublishResult",
    "RecoveryFailed",
    "RequestError",
    "RequestTimeout",
    "State",
    "SubscribedHandler",
    "Subscription",
    "TokenProvider",
    "Transport",
    "TransportClosed",
    "WebSocketTransport",
    "backoff_delay",
    "connect",
]
