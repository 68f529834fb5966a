"""uvicorn's httptools HTTP protocol with the fixes the hub needs: the one home of HTTP-level
timeouts and of the request size limit.

- Bytes that arrive in the same read as the upgrade request (a client that sends its first
  WebSocket frame without waiting for the 101) are handed to the WebSocket protocol; uvicorn
  drops them.
- **Header timeout** (slowloris): every request of a connection, the first and each later one on
  a keep-alive connection, must finish its headers within ``header_timeout`` (5 s) of its first
  byte (the first request: of the connection opening). uvicorn has none at all; its keep-alive
  timeout only covers the idle time between requests and stops at the first byte of the next.
- **Body timeout**: a request body must arrive whole within ``body_timeout`` (10 s) of the end of
  its headers, else ``408`` (or a plain close once a response has started). A body that trickles
  in, or stops, would otherwise hold a connection and an ASGI task forever.
- **Size limit**: a request whose ``Content-Length`` exceeds ``max_request_bytes`` (1 MiB) is
  refused with ``413`` before its body is read; a chunked body is refused as soon as it passes the
  limit. Without it FastAPI read and parsed a 16 MiB JSON body whole before answering 422.
  Request headers (URL included) are capped at ``MAX_HEADER_BYTES`` (64 KiB, ``431``).

Every refusal closes the connection: the rest of the stream cannot be trusted to be a request.
"""

from __future__ import annotations

import asyncio
from http import HTTPStatus
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from bridge.hub.limits import DEFAULT_BODY_TIMEOUT, DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_MAX_REQUEST_BYTES

__all__ = [
    "DEFAULT_BODY_TIMEOUT",
    "DEFAULT_HEADER_TIMEOUT",
    "DEFAULT_MAX_REQUEST_BYTES",
    "MAX_HEADER_BYTES",
    "HubHttpProtocol",
]

DEFAULT_HEADER_TIMEOUT = DEFAULT_HANDSHAKE_TIMEOUT
#: Request line and headers together; browsers send 1-8 KiB, nginx's default buffers hold 32 KiB.
MAX_HEADER_BYTES = 64 * 1024
#: Seconds a refused connection keeps reading (and discarding) after its answer; see ``_refuse``.
LINGER = 2.0


class _Refused(Exception):
    """Raised from a parser callback to stop parsing once the request was refused."""


class HubHttpProtocol(HttpToolsProtocol):
    header_timeout: float = DEFAULT_HEADER_TIMEOUT
    body_timeout: float = DEFAULT_BODY_TIMEOUT
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES

    @classmethod
    def configured(
        cls, *, header_timeout: float, body_timeout: float, max_request_bytes: int
    ) -> type[HubHttpProtocol]:
        """This protocol with other limits (uvicorn instantiates the class itself)."""
        return type(
            "HubHttpProtocol",
            (cls,),
            {
                "header_timeout": header_timeout,
                "body_timeout": body_timeout,
                "max_request_bytes": max_request_bytes,
            },
        )

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._deadline: asyncio.TimerHandle | None = None
        self._head_bytes = 0
        self._body_bytes = 0
        self._cycle: Any = None  # this request's cycle, once its headers are complete
        self._refused = False
        self._arm(self.header_timeout, self._header_timeout)

    # -- timers ---------------------------------------------------------------------------------

    def _arm(self, seconds: float, callback: Any) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, callback)

    def _disarm(self) -> None:
        deadline = getattr(self, "_deadline", None)
        if deadline is not None:
            deadline.cancel()
            self._deadline = None

    def _header_timeout(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.close()

    def _body_timeout(self) -> None:
        self._deadline = None
        self._refuse(HTTPStatus.REQUEST_TIMEOUT, "request body not received in time\n")

    def _refuse(self, status: HTTPStatus, message: str) -> None:
        """Answer ``status`` unless a response has started, then close the connection.

        The close lingers: the hub stops sending (FIN) and discards what still arrives for up to
        ``LINGER`` seconds. Closing at once with unread bytes makes the kernel send a reset, which
        can destroy the answer before the client reads it."""
        self._disarm()
        if self._refused or self.transport.is_closing():
            return
        self._refused = True
        cycle = self._cycle
        started = cycle is not None and cycle.response_started
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True  # the app's reads end and its answer is dropped
            cycle.message_event.set()
        if started:
            self.transport.close()
            return
        body = message.encode()
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n%s" % (status.value, status.phrase.encode(), len(body), body)
        )
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.flow.resume_reading()  # uvicorn pauses reading on large bodies; keep discarding
        self._deadline = self.loop.call_later(LINGER, self.transport.close)

    # -- parser callbacks -----------------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_bytes = 0
        self._body_bytes = 0
        self._cycle = None
        if self._deadline is None:  # a later request on a keep-alive connection
            self._arm(self.header_timeout, self._header_timeout)

    def on_url(self, url: bytes) -> None:
        self._count_head(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_head(len(name) + len(value) + 4)
        super().on_header(name, value)

    def _count_head(self, n: int) -> None:
        self._head_bytes += n
        if self._head_bytes > MAX_HEADER_BYTES:
            self._refuse(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "request headers too large\n")
            raise _Refused

    def on_headers_complete(self) -> None:
        self._disarm()
        length = self._content_length()
        if length is not None and length > self.max_request_bytes:
            self._refuse(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"request body over {self.max_request_bytes} bytes\n",
            )
            raise _Refused
        super().on_headers_complete()
        self._cycle = self.cycle
        if (length or self._chunked()) and not self.parser.should_upgrade():
            self._arm(self.body_timeout, self._body_timeout)

    def _content_length(self) -> int | None:
        for name, value in self.headers:
            if name == b"content-length":
                try:
                    return int(value)
                except ValueError:
                    return None  # llhttp refuses a malformed length before this point
        return None

    def _chunked(self) -> bool:
        return any(name == b"transfer-encoding" and b"chunked" in v.lower() for name, v in self.headers)

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        if self._body_bytes > self.max_request_bytes:
            self._refuse(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"request body over {self.max_request_bytes} bytes\n",
            )
            raise _Refused
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._unset_keepalive_if_required()
        if self._refused or self.transport.is_closing():
            return  # refused: the rest of the stream is not a request
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self._refused or self.transport.is_closing():
                return  # a callback refused the request (httptools wraps its exception)
            self.logger.warning("Invalid HTTP request received.")
            self.send_400_response("Invalid HTTP request received.")
        except httptools.HttpParserUpgrade as exc:
            self._disarm()
            if not self._should_upgrade():
                self._unsupported_upgrade_warning()
                return
            offset = exc.args[0] if exc.args and isinstance(exc.args[0], int) else len(data)
            self.handle_websocket_upgrade()
            rest = data[offset:]
            if rest:
                protocol: Any = self.transport.get_protocol()
                protocol.data_received(rest)
