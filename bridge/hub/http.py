"""uvicorn's httptools HTTP protocol with two fixes the hub needs at the handshake.

- Bytes that arrive in the same read as the upgrade request (a client that sends its first
  WebSocket frame without waiting for the 101) are handed to the WebSocket protocol; uvicorn
  drops them.
- A client that does not finish its request headers within the handshake timeout is
  disconnected (slowloris); uvicorn has no header timeout on a connection's first request.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from bridge.hub.limits import DEFAULT_HANDSHAKE_TIMEOUT

__all__ = ["HubHttpProtocol"]

HANDSHAKE_TIMEOUT = DEFAULT_HANDSHAKE_TIMEOUT


class HubHttpProtocol(HttpToolsProtocol):
    handshake_timeout: float = HANDSHAKE_TIMEOUT

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_timer: asyncio.TimerHandle | None = self.loop.call_later(
            self.handshake_timeout, self._header_timeout
        )

    def _header_timeout(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.transport.close()

    def _cancel_header_timer(self) -> None:
        timer = getattr(self, "_header_timer", None)
        if timer is not None:
            timer.cancel()
            self._header_timer = None

    def on_headers_complete(self) -> None:
        self._cancel_header_timer()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.logger.warning("Invalid HTTP request received.")
            self.send_400_response("Invalid HTTP request received.")
        except httptools.HttpParserUpgrade as exc:
            self._cancel_header_timer()
            if not self._should_upgrade():
                self._unsupported_upgrade_warning()
                return
            offset = exc.args[0] if exc.args and isinstance(exc.args[0], int) else len(data)
            self.handle_websocket_upgrade()
            rest = data[offset:]
            if rest:
                protocol: Any = self.transport.get_protocol()
                protocol.data_received(rest)
