"""The control bus: commands between hub nodes over one Redis pub/sub channel.

A command is a small JSON message (:class:`~bridge.cluster.model.BusMessage`) with an ``op`` and a
``body``, addressed to one instance or to every node. Handlers are registered by op, so new commands
(revocation, operator control, close-connection, and later REST-managed subscriptions addressed to
a connection) need no change here. A request gets a reply addressed back to its sender.

Delivery is at most once, like any Redis pub/sub: what is published while a node's bus connection is
down is lost for that node. Every command therefore has a durable fallback its handler owns
(revocations and operator controls are read from PostgreSQL when the bus reconnects and by a poll),
and :attr:`ControlBus.on_reconnect` callbacks run after every reconnection to catch up.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from bridge.cluster.model import BusError, BusMessage, Keys, decode_bus, encode_bus
from bridge.tasks import cancel_and_wait

__all__ = ["REQUEST_TIMEOUT", "ControlBus", "Handler"]

logger = logging.getLogger("mtbridge.cluster")

#: Seconds a request waits for its reply (a close-connection routed to another node).
REQUEST_TIMEOUT = 2.0
#: Backoff between reconnection attempts of the bus (seconds): doubled from the first to the last.
RECONNECT_FIRST = 0.1
RECONNECT_MAX = 2.0
#: Seconds one read of the bus waits before looking again (bounds how long a stop waits).
READ_WAIT = 1.0

Handler = Callable[[BusMessage], Awaitable[dict[str, Any] | None] | dict[str, Any] | None]


class ControlBus:
    """This instance's end of the bus: one pub/sub connection and one reader task."""

    def __init__(self, redis: aioredis.Redis, instance: str, keys: Keys | None = None) -> None:
        self.redis = redis
        self.instance = instance
        self.keys = keys or Keys()
        self.handlers: dict[str, Handler] = {}
        self.on_reconnect: list[Callable[[], Awaitable[None]]] = []
        self.up = False
        self._subscribed = False
        self.received = 0
        self.refused = 0
        self._pubsub: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    def on(self, op: str, handler: Handler) -> None:
        """Run ``handler`` for every message of ``op`` addressed to this instance (or to all)."""
        self.handlers[op] = handler

    async def start(self) -> None:
        """Subscribe and start reading; with Redis unreachable the node starts all the same and the
        reader subscribes once Redis answers (then catches up through ``on_reconnect``)."""
        self._pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        try:
            await self._pubsub.subscribe(self.keys.bus)
            self._subscribed = self.up = True
        except (RedisError, OSError) as exc:
            logger.warning("control bus: Redis unreachable at start (%s); commands wait for it", exc)
        self._reader = asyncio.create_task(self._read(), name="mtbridge-control-bus")

    async def close(self) -> None:
        await cancel_and_wait([self._reader])
        self._reader = None
        await cancel_and_wait(list(self._tasks))
        for fut in self._waiting.values():
            fut.cancel()
        self._waiting.clear()
        if self._pubsub is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._pubsub.unsubscribe()
            await self._pubsub.aclose()
            self._pubsub = None
        self.up = False

    # -- sending --------------------------------------------------------------------------------

    async def send(self, op: str, body: dict[str, Any], to: str | None = None) -> int:
        """Publish a command (to one instance, or to every node when ``to`` is None); returns how
        many nodes' bus connections received it. Raises RedisError when Redis is unreachable."""
        data = encode_bus(BusMessage(op, self.instance, body, to=to))
        return int(await self.redis.publish(self.keys.bus, data))

    async def request(
        self, to: str, op: str, body: dict[str, Any], within: float = REQUEST_TIMEOUT
    ) -> dict[str, Any]:
        """Send a command to one instance and wait for its reply body. TimeoutError if none comes."""
        rid = secrets.token_hex(8)
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[rid] = fut
        try:
            data = encode_bus(BusMessage(op, self.instance, body, to=to, id=rid))
            await self.redis.publish(self.keys.bus, data)
            async with asyncio.timeout(within):
                return await fut
        finally:
            self._waiting.pop(rid, None)

    # -- receiving ------------------------------------------------------------------------------

    async def _read(self) -> None:
        delay = RECONNECT_FIRST
        while True:
            try:
                if not self._subscribed:  # never subscribed yet (Redis was down at start)
                    await self._pubsub.subscribe(self.keys.bus)
                    self._subscribed = True
                raw = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=READ_WAIT)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                if self.up:
                    logger.warning("control bus: Redis connection lost (%s); commands wait for it", exc)
                self.up = False
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECONNECT_MAX)
                continue
            delay = RECONNECT_FIRST
            if not self.up:
                self.up = True
                logger.info("control bus: reconnected; catching up from the store")
                for callback in self.on_reconnect:
                    self._spawn(callback())
            if raw is None or raw.get("type") != "message":
                continue
            self.dispatch(raw.get("data"))

    def dispatch(self, data: Any) -> None:
        """Act on one raw bus message (public for tests)."""
        try:
            msg = decode_bus(data if isinstance(data, bytes | str) else b"")
        except BusError as exc:
            self.refused += 1
            logger.warning("control bus: dropped a malformed message: %s", exc)
            return
        if msg.sender == self.instance or not msg.for_instance(self.instance):
            return
        self.received += 1
        if msg.re is not None:
            fut = self._waiting.get(msg.re)
            if fut is not None and not fut.done():
                fut.set_result(msg.body)
            return
        handler = self.handlers.get(msg.op)
        if handler is None:
            self.refused += 1
            logger.warning("control bus: no handler for %r from %s", msg.op, msg.sender)
            return
        self._spawn(self._handle(handler, msg))

    async def _handle(self, handler: Handler, msg: BusMessage) -> None:
        try:
            result = handler(msg)
            if inspect.isawaitable(result):
                result = await result
        except Exception as exc:
            logger.exception("control bus: %s from %s failed", msg.op, msg.sender)
            result = {"error": type(exc).__name__}
        if msg.id is not None:
            reply = BusMessage("reply", self.instance, result or {}, to=msg.sender, re=msg.id)
            try:
                await self.redis.publish(self.keys.bus, encode_bus(reply))
            except (RedisError, OSError, BusError) as exc:
                logger.warning("control bus: reply to %s lost: %s", msg.sender, exc)

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("control bus task failed", exc_info=task.exception())
