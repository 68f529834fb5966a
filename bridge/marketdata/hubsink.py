"""A :class:`~bridge.marketdata.base.Sink` that publishes into an mtbridge hub over WebSocket.

Protocol v1 (docs/protocol.md): the hub greets with ``welcome``; the first client message is
``{"type":"auth","requestId":..,"payload":{"token":..}}`` answered by ``result``; publications are
``{"type":"publish","requestId":..,"channel":..,"payload":..}`` each answered by ``result`` or ``error``.

Publications are queued locally and written by one task, pipelined up to ``max_in_flight``
unanswered requests. While the hub is unreachable or slow, the queue coalesces by ``(channel, key)``
(the latest top/depth per venue is all that matters) and is bounded: the oldest entry is dropped,
and counted, when it overflows. Close codes 4500-4999 are terminal (the token is refused): the sink
stops and reports it; any other close reconnects with exponential backoff and full jitter.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
from collections import OrderedDict
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.typing import Subprotocol

from bridge.marketdata.connection import backoff_delay
from bridge.marketdata.metrics import DROPPED
from bridge.tasks import cancel_and_wait

__all__ = [
    "DEFAULT_MAX_IN_FLIGHT",
    "DEFAULT_MAX_PENDING",
    "SUBPROTOCOL",
    "HubAuthError",
    "HubSink",
]

logger = logging.getLogger("mtbridge.marketdata")

SUBPROTOCOL = Subprotocol("mtbridge.v1.json")
DEFAULT_MAX_PENDING = 10_000
DEFAULT_MAX_IN_FLIGHT = 1_000
AUTH_TIMEOUT = 10.0
TERMINAL_CLOSE_CODES = range(4500, 5000)


class HubAuthError(Exception):
    """The hub refused our token (terminal: reconnecting with the same token cannot help)."""

    def __init__(self, code: str | int, reason: str) -> None:
        super().__init__(f"hub refused the token: {code} {reason}")
        self.code = code
        self.reason = reason


class HubSink:
    """Publish normalised market data into a hub; use as ``async with HubSink(url, token) as sink``."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        max_pending: int = DEFAULT_MAX_PENDING,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
    ) -> None:
        self.url = url
        self._token = token
        self.max_pending = max_pending
        self.max_in_flight = max_in_flight
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self._pending: OrderedDict[tuple[str, object], dict[str, Any]] = OrderedDict()
        self._unique = itertools.count()
        self._ids = itertools.count(1)
        self._has_pending = asyncio.Event()
        self._window = asyncio.Semaphore(max_in_flight)
        self._in_flight: set[str] = set()
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()
        #: Set when the sink gave up for good (the hub refused the token); see :attr:`failed`.
        self.done = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self.failed: HubAuthError | None = None
        self.sent = 0
        self.acknowledged = 0
        self.dropped = 0
        self.errors = 0
        self.connects = 0

    def __repr__(self) -> str:  # never show the token
        return f"HubSink(url={self.url!r}, pending={len(self._pending)})"

    async def publish(self, channel: str, payload: dict[str, object], key: str | None) -> None:
        slot: tuple[str, object] = (channel, key) if key is not None else (channel, next(self._unique))
        self._pending.pop(slot, None)
        self._pending[slot] = {"channel": channel, "payload": payload}
        while len(self._pending) > self.max_pending:
            self._pending.popitem(last=False)
            self.dropped += 1
            DROPPED.labels("hub", "sink_overflow").inc()
        self._idle.clear()
        self._has_pending.set()

    def _update_idle(self) -> None:
        if not self._pending and not self._in_flight:
            self._idle.set()

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def __aenter__(self) -> HubSink:
        self._task = asyncio.create_task(self.run(), name="marketdata-hubsink")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await cancel_and_wait([self._task])
        self._task = None

    async def drain(self) -> None:
        """Wait until everything queued so far was written and answered (for tests and shutdown)."""
        idle = asyncio.create_task(self._idle.wait())
        done = asyncio.create_task(self.done.wait())
        try:
            await asyncio.wait({idle, done}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            idle.cancel()
            done.cancel()

    async def run(self) -> None:
        """Connect, authenticate and write until cancelled or the hub refuses the token."""
        attempt = 0
        while True:
            try:
                await self._session()
                attempt = 0
            except HubAuthError as exc:
                self.failed = exc
                self.done.set()
                logger.error("! hub refused the market-data token (%s); not reconnecting", exc.code)
                return
            except (OSError, InvalidHandshake, InvalidURI, ConnectionClosed, TimeoutError) as exc:
                logger.warning("x hub connection lost: %s", type(exc).__name__)
                attempt += 1
            finally:
                self.connected.clear()
                for _ in range(len(self._in_flight)):
                    self._window.release()
                self._in_flight.clear()
                self._update_idle()
            await asyncio.sleep(backoff_delay(attempt, self.backoff_base, self.backoff_cap, random.random))

    async def _session(self) -> None:
        async with connect(self.url, subprotocols=[SUBPROTOCOL], compression=None, open_timeout=10) as ws:
            await self._authenticate(ws)
            self.connects += 1
            self.connected.set()
            logger.info("= hub connected", extra={"action": "connect"})
            reader = asyncio.create_task(self._reader(ws))
            writer = asyncio.create_task(self._writer(ws))
            try:
                done, _ = await asyncio.wait({reader, writer}, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    task.result()
            finally:
                for task in (reader, writer):
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                        await task
            self._check_close(ws)

    def _check_close(self, ws: ClientConnection) -> None:
        code = ws.close_code
        if code is not None and code in TERMINAL_CLOSE_CODES:
            raise HubAuthError(code, ws.close_reason or "")

    async def _authenticate(self, ws: ClientConnection) -> None:
        request_id = str(next(self._ids))
        async with asyncio.timeout(AUTH_TIMEOUT):
            welcome = orjson.loads(await ws.recv())
            if not isinstance(welcome, dict) or welcome.get("type") != "welcome":
                raise ConnectionError("hub did not send welcome")
            await ws.send(
                orjson.dumps(
                    {"type": "auth", "requestId": request_id, "payload": {"token": self._token}}
                ).decode()
            )
            while True:
                try:
                    reply = orjson.loads(await ws.recv())
                except ConnectionClosed:
                    self._check_close(ws)
                    raise
                if not isinstance(reply, dict) or reply.get("requestId") != request_id:
                    continue
                if reply.get("type") == "result":
                    return
                error = reply.get("payload") or {}
                code = error.get("code", "unauthorized") if isinstance(error, dict) else "unauthorized"
                raise HubAuthError(str(code), "auth rejected")

    async def _writer(self, ws: ClientConnection) -> None:
        while True:
            if not self._pending:
                self._has_pending.clear()
                await self._has_pending.wait()
                continue
            await self._window.acquire()
            if not self._pending:
                self._window.release()
                continue
            _, item = self._pending.popitem(last=False)
            request_id = str(next(self._ids))
            self._in_flight.add(request_id)
            frame = {
                "type": "publish",
                "requestId": request_id,
                "channel": item["channel"],
                "payload": item["payload"],
            }
            try:
                await ws.send(orjson.dumps(frame).decode())
            except ConnectionClosed:
                self._in_flight.discard(request_id)
                self._window.release()
                raise
            self.sent += 1

    async def _reader(self, ws: ClientConnection) -> None:
        async for data in ws:
            try:
                msg = orjson.loads(data)
            except orjson.JSONDecodeError:
                continue
            if not isinstance(msg, dict):
                continue
            request_id = msg.get("requestId")
            if request_id in self._in_flight:
                self._in_flight.discard(request_id)
                self._window.release()
                self._update_idle()
                if msg.get("type") == "result":
                    self.acknowledged += 1
                else:
                    self.errors += 1
                    payload = msg.get("payload")
                    code = payload.get("code") if isinstance(payload, dict) else None
                    logger.warning("! hub refused a publication: %s", code, extra={"action": "publish"})
