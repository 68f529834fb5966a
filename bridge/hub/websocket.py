"""The WebSocket I/O shell: an ``asyncio.Protocol`` that uvicorn hands upgraded connections to.

``/ws`` shares the HTTP port with FastAPI, but its data path never goes through ASGI: uvicorn
parses the HTTP request, then gives this protocol the raw transport (uvicorn's ``ws=`` hook).
Handshake and inbound frame parsing use ``websockets``' sans-I/O ``ServerProtocol`` (RFC 6455
validation, control frames, close handshake); message reassembly and UTF-8 checking are done here;
outbound data goes through the hub's per-connection queue (``connection.py``) and reaches the socket
here, in :meth:`HubWebSocketProtocol.write` (the ``Sink``), one write per loop iteration.
There is no task per connection: timers live in the hub's single housekeeping pass. Every change
to a connection's state or queue is a ``Connection`` method; this shell only calls them.
Not here: what a message means (``commands.py`` decodes it with ``bridge/protocol/envelope.py``),
the queue and its backpressure (``connection.py``), fan-out (``fanout.py``).

``/echo`` exists only in test mode: it echoes every message through the same connection, framing
and write-coalescing code as ``/ws``, so the Autobahn TestSuite exercises the real write path.
"""

from __future__ import annotations

import asyncio
import codecs
import logging
from collections.abc import Sequence
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

from websockets.exceptions import NegotiationError
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.typing import Subprotocol

from bridge.hub.connection import Connection
from bridge.hub.hub import Hub
from bridge.hub.proxies import TrustedProxies
from bridge.protocol import codes
from bridge.protocol.envelope import Encoding
from bridge.protocol.framing import OP_BINARY, OP_TEXT, data_frame
from bridge.redact import redact_url

__all__ = ["HubWebSocketProtocol", "WebSocketOptions"]

logger = logging.getLogger("mtbridge.ws")

SUBPROTOCOLS = {Encoding.JSON.subprotocol: Encoding.JSON, Encoding.MSGPACK.subprotocol: Encoding.MSGPACK}
ECHO_MAX_MESSAGE_BYTES = 32 * 1024 * 1024
ECHO_MAX_QUEUE_BYTES = 128 * 1024 * 1024


class WebSocketOptions:
    """What the shell needs besides the hub (set on ``app.state.ws_options`` by the app)."""

    def __init__(
        self,
        *,
        allowed_origins: Sequence[str] = (),
        test_mode: bool = False,
        path: str = "/ws",
        trusted_proxies: Sequence[str] = (),
    ) -> None:
        self.allowed_origins = frozenset(o.rstrip("/") for o in allowed_origins)
        self.test_mode = test_mode
        self.path = path
        self.proxies = TrustedProxies(trusted_proxies)

    def origin_allowed(self, origin: str | None) -> bool:
        # Non-browser clients (EAs, engines) send no Origin; browsers always do.
        if origin is None:
            return True
        return "*" in self.allowed_origins or origin.rstrip("/") in self.allowed_origins


class _ServerProtocol(ServerProtocol):
    def recv_frame(self, frame: Frame) -> None:
        if frame.opcode is Opcode.CLOSE and self.current_size is not None:
            # RFC 6455 5.4 allows control frames between the fragments of a message; a close
            # there ends the connection normally and drops the partial message. websockets
            # calls it a protocol error (1002), the Autobahn suite (case 7.1.5) expects 1000.
            self.current_size = None
        super().recv_frame(frame)


def _select_subprotocol(protocol: ServerProtocol, offered: Sequence[Subprotocol]) -> Subprotocol | None:
    if not offered:
        return None
    for name in offered:
        if name in SUBPROTOCOLS:
            return name
    raise NegotiationError("offer mtbridge.v1.json or mtbridge.v1.msgpack")


class HubWebSocketProtocol(asyncio.Protocol):
    """One upgraded connection. Implements the hub's ``Sink`` for its :class:`Connection`."""

    def __init__(self, config: Any = None, server_state: Any = None, app_state: Any = None, **_: Any) -> None:
        self.server_state = server_state
        state = app_state or {}
        self.hub: Hub | None = state.get("hub")
        self.options: WebSocketOptions = state.get("ws_options") or WebSocketOptions()
        self.transport: asyncio.Transport | None = None
        self.ws: ServerProtocol | None = None
        self.conn: Connection | None = None
        self.echo = False
        self.ip = "?"
        self.token: str | None = None
        self._parts: list[bytes] = []
        self._binary = False
        self._decoder: codecs.IncrementalDecoder | None = None
        self._abort_handle: asyncio.TimerHandle | None = None
        self._closed = False

    # -- asyncio.Protocol -----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not subclasses
        if self.server_state is not None:
            self.server_state.connections.add(self)
        peer = self.transport.get_extra_info("peername")
        self.ip = str(peer[0]) if isinstance(peer, tuple) and peer else "?"
        max_size = self.hub.limits.max_message_bytes if self.hub else 65536
        if self.options.test_mode:
            max_size = max(max_size, ECHO_MAX_MESSAGE_BYTES)  # lowered to the hub's limit for /ws below
        self.ws = _ServerProtocol(
            subprotocols=[Subprotocol(name) for name in SUBPROTOCOLS],
            select_subprotocol=_select_subprotocol,
            max_size=max_size,
            logger=logger,
        )

    def data_received(self, data: bytes) -> None:
        ws = self.ws
        if ws is None or self._closed:
            return
        conn = self.conn
        if conn is not None and self.hub is not None:
            conn.heard(self.hub.clock())
        ws.receive_data(data)
        # Pongs and close replies generated while parsing go out before anything this data causes.
        self._pump()
        for event in ws.events_received():
            if isinstance(event, Request):
                self._handshake(event)
            elif isinstance(event, Frame):
                self._frame(event)
        self._pump()

    def eof_received(self) -> bool | None:
        if self.ws is not None:
            self.ws.receive_eof()
            self._pump()
        return None

    def pause_writing(self) -> None:
        if self.conn is not None:
            self.conn.pause_writing()

    def resume_writing(self) -> None:
        if self.conn is not None:
            self.conn.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        if self._abort_handle is not None:
            self._abort_handle.cancel()
            self._abort_handle = None
        if self.server_state is not None:
            self.server_state.connections.discard(self)
        if self.conn is not None and self.hub is not None:
            self.hub.disconnected(self.conn)
        self.conn = None
        self.transport = None

    # -- uvicorn's shutdown hook ------------------------------------------------------------------

    def shutdown(self) -> None:
        """uvicorn calls this on SIGTERM, for every connection, right after closing the listening
        sockets: the hub drains (answers in-flight durable requests, then a reconnect hint and 1001)."""
        if self.conn is not None and self.hub is not None and not self.echo:
            self.hub.begin_drain()
        elif self.conn is not None:
            self.conn.close(codes.GOING_AWAY)
        elif self.transport is not None:
            self.transport.close()

    # -- handshake --------------------------------------------------------------------------------

    def _handshake(self, request: Request) -> None:
        ws = self.ws
        assert ws is not None
        hub = self.hub
        split = urlsplit(request.path)
        path = split.path
        if self.options.proxies:
            self.ip = self.options.proxies.client(self.ip, request.headers.get_all("X-Forwarded-For"))
        logger.info("%s GET %s", self.ip, redact_url(request.path))
        response: Response
        if hub is None or not hub.accepting:
            response = ws.reject(503, "hub not ready\n")
        elif path == "/echo" and self.options.test_mode:
            self.echo = True
            response = ws.accept(request)
        elif path != self.options.path:
            response = ws.reject(404, "not found\n")
        elif not self.options.origin_allowed(request.headers.get("Origin")):
            response = ws.reject(403, "origin not allowed\n")
        elif not hub.ip_allowed(self.ip):
            response = ws.reject(429, "too many connections from this address\n")
        else:
            response = ws.accept(request)
        ws.send_response(response)
        if response.status_code != 101:
            logger.info("%s handshake refused: %d", self.ip, response.status_code)
            return
        assert hub is not None
        if self.echo:
            self.conn = Connection(
                hub, "echo", self, Encoding.JSON, self.ip, hub.clock(), max_queue=ECHO_MAX_QUEUE_BYTES
            )
            return
        ws.max_message_size = hub.limits.max_message_bytes  # /echo may be larger; /ws never is
        encoding = SUBPROTOCOLS.get(response.headers.get("Sec-WebSocket-Protocol") or "", Encoding.JSON)
        # Write the 101 before anything the hub queues, then hand over.
        self._pump()
        self.conn = conn = hub.connect(self, encoding, self.ip)
        token = parse_qs(split.query).get("token")
        if token:  # the welcome waits for the cluster's admission (at once on one hub)
            hub.authenticate_then(conn, token[0], None, hub.welcome, welcome=True)
            return
        hub.welcome(conn)

    # -- frames -----------------------------------------------------------------------------------

    def _frame(self, frame: Frame) -> None:
        op = frame.opcode
        data = bytes(frame.data)
        ws = self.ws
        assert ws is not None
        if op is Opcode.TEXT or op is Opcode.BINARY:
            self._binary = op is Opcode.BINARY
            self._parts = [data] if not frame.fin else []
            self._decoder = None if self._binary else codecs.getincrementaldecoder("utf-8")()
            if not self._check_utf8(frame):
                return
            if frame.fin:
                self._message(data)
        elif op is Opcode.CONT:
            self._parts.append(data)
            if not self._check_utf8(frame):
                return
            if frame.fin:
                data = b"".join(self._parts)
                self._parts = []
                self._message(data)
        elif op is Opcode.CLOSE and self.conn is not None:
            # The peer closed: websockets queued the close reply; stop sending anything else.
            self.conn.peer_closed()

    def _check_utf8(self, frame: Frame) -> bool:
        if self._decoder is None:
            return True
        try:
            self._decoder.decode(frame.data, frame.fin)
        except UnicodeDecodeError:
            assert self.ws is not None
            self._parts = []
            self._decoder = None
            self.ws.fail(codes.INVALID_PAYLOAD.code, codes.INVALID_PAYLOAD.reason)
            if self.conn is not None:
                self.conn.peer_closed()
            return False
        return True

    def _message(self, data: bytes) -> None:
        conn = self.conn
        if conn is None or self.hub is None:
            return
        if self.echo:
            conn.send(data_frame(data, OP_BINARY if self._binary else OP_TEXT))
            return
        self.hub.receive(conn, data, self._binary)

    # -- output -----------------------------------------------------------------------------------

    def _pump(self) -> None:
        """Move websockets' own output (handshake, pongs, close frames) to the socket, in order."""
        ws = self.ws
        transport = self.transport
        if ws is None or transport is None:
            return
        for data in ws.data_to_send():
            if data:
                conn = self.conn
                if conn is not None and conn.has_queued:
                    # Keep order behind frames already queued for this connection.
                    conn.write_in_order(data)
                else:
                    transport.write(data)
            else:
                self._flush_conn()
                if transport.can_write_eof():
                    try:
                        transport.write_eof()
                    except (OSError, RuntimeError):
                        transport.close()
                else:
                    transport.close()
        if ws.close_expected() or ws.state is State.CLOSED:
            if self.conn is not None:
                self.conn.peer_closed()
            self._arm_abort()
        if ws.state is State.CLOSED:
            self._flush_conn()
            transport.close()

    def _flush_conn(self) -> None:
        if self.conn is not None:
            self.conn.flush_before_close()

    def _arm_abort(self) -> None:
        if self._abort_handle is None and self.transport is not None:
            timeout = self.hub.limits.close_timeout if self.hub else 5.0
            self._abort_handle = asyncio.get_running_loop().call_later(timeout, self._abort)

    def _abort(self) -> None:
        self._abort_handle = None
        if self.transport is not None:
            self.transport.abort()

    # -- Sink -------------------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self._closed:
            self.transport.write(data)

    def buffered(self) -> int:
        return self.transport.get_write_buffer_size() if self.transport is not None else 0

    def ping_frame(self) -> bytes:
        ws = self.ws
        assert ws is not None
        ws.send_ping(b"mtb")
        return b"".join(ws.data_to_send())

    def close_frame(self, code: int, reason: str) -> bytes:
        ws = self.ws
        if ws is None or ws.state is not State.OPEN:
            return b""
        ws.send_close(code, reason)
        return b"".join(d for d in ws.data_to_send() if d)

    def finish(self, flush: bool) -> None:
        """After our close frame: wait for the peer's close (the protocol then ends TCP), and drop
        the TCP connection after ``close_timeout`` if it never comes (a slow consumer whose socket
        is full may never even read the close frame)."""
        self._arm_abort()
