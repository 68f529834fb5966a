"""Transports: how the client reaches a hub. The client talks to a :class:`Link`, never to a socket.

:class:`WebSocketTransport` is the real one (``websockets``' asyncio client). Tests and tools use
:class:`bridge.client.MockTransport`, which runs an in-process handler instead of a server.

Contract of a :class:`Link`:

- ``recv()`` returns one whole message: ``str`` for a text frame, ``bytes`` for a binary one; it raises
  :class:`TransportClosed` (with the peer's close code, 1006 when there was none) once the link is closed;
- ``send()`` raises :class:`TransportClosed` when the link is closed;
- ``close()`` is idempotent and returns when the link is closed.
"""

from __future__ import annotations

import abc
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed as WsConnectionClosed
from websockets.exceptions import InvalidHandshake, InvalidURI
from websockets.typing import Subprotocol

from bridge.client._exceptions import ConnectError
from bridge.redact import redact

__all__ = ["ABNORMAL_CLOSURE", "Link", "Transport", "TransportClosed", "WebSocketTransport"]

#: RFC 6455: the connection dropped without a close frame.
ABNORMAL_CLOSURE = 1006
#: How long a close handshake may take before the TCP connection is dropped.
DEFAULT_CLOSE_TIMEOUT = 5.0


class TransportClosed(Exception):
    """The link is closed; ``code`` and ``reason`` come from the peer's close frame when there was one."""

    def __init__(self, code: int, reason: str = "") -> None:
        super().__init__(f"closed {code} {reason}".strip())
        self.code = code
        self.reason = reason


class Link(abc.ABC):
    """One open connection to a hub."""

    subprotocol: str | None = None

    @abc.abstractmethod
    async def send(self, data: str | bytes) -> None:
        """Send one message (``str`` as a text frame, ``bytes`` as a binary frame)."""

    @abc.abstractmethod
    async def recv(self) -> str | bytes:
        """Receive one whole message."""

    @abc.abstractmethod
    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the link (idempotent)."""


class Transport(abc.ABC):
    """Opens links. One transport may open many links over a client's life (reconnects)."""

    @abc.abstractmethod
    async def connect(self, url: str, subprotocol: str, *, open_timeout: float, max_size: int | None) -> Link:
        """Open a link offering exactly ``subprotocol``.

        Raises:
            ConnectError: the hub could not be reached or refused the handshake.
        """


class _WebSocketLink(Link):
    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.subprotocol = ws.subprotocol

    @staticmethod
    def _closed(exc: WsConnectionClosed) -> TransportClosed:
        if exc.rcvd is not None:
            return TransportClosed(exc.rcvd.code, exc.rcvd.reason)
        return TransportClosed(ABNORMAL_CLOSURE, "no close frame")

    async def send(self, data: str | bytes) -> None:
        try:
            await self.ws.send(data)
        except WsConnectionClosed as exc:
            raise self._closed(exc) from exc

    async def recv(self) -> str | bytes:
        try:
            return await self.ws.recv()
        except WsConnectionClosed as exc:
            raise self._closed(exc) from exc

    async def close(self, code: int = 1000, reason: str = "") -> None:
        await self.ws.close(code, reason)


class WebSocketTransport(Transport):
    """RFC 6455 over TCP with ``websockets``; no compression (the hub offers none), no library pings
    (the client runs the protocol's own heartbeat; the hub's pings are answered automatically)."""

    def __init__(self, *, close_timeout: float = DEFAULT_CLOSE_TIMEOUT, **options: Any) -> None:
        self.close_timeout = close_timeout
        self.options = options

    async def connect(self, url: str, subprotocol: str, *, open_timeout: float, max_size: int | None) -> Link:
        try:
            ws = await ws_connect(
                url,
                subprotocols=[Subprotocol(subprotocol)],
                compression=None,
                open_timeout=open_timeout,
                ping_interval=None,
                close_timeout=self.close_timeout,
                max_size=max_size,
                **self.options,
            )
        except (TimeoutError, OSError, InvalidHandshake, InvalidURI) as exc:
            detail = redact(str(exc)).replace(url, _safe_url(url))
            raise ConnectError(f"cannot connect to {_safe_url(url)}: {type(exc).__name__}: {detail}") from exc
        return _WebSocketLink(ws)


def _safe_url(url: str) -> str:
    """The URL without its query string: ``?token=`` must never reach a log or an exception."""
    return url.split("?", 1)[0]
