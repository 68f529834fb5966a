"""The Redis broker: publications between hub nodes over Redis pub/sub (``--redis-url``).

Redis is only the fast notification path; PostgreSQL holds every durable publication with its
offset, and each node repairs what Redis lost from there (``bridge.hub.repair``). So this broker
can be simple and must be honest about loss rather than clever about retries:

- ``publish`` delivers on this node at once, then queues the publication, encoded once (MessagePack:
  version, origin, channel, epoch, offset, payload, targets, durable, time). One writer task sends
  the queue in order as pipelines of PUBLISH to ``mtb:pub:<channel>``: per channel the order is the
  order of ``publish``, and Redis keeps it to each subscriber connection.
- One subscriber connection per node, subscribed to exactly the channels that have local
  subscribers (``watch``/``unwatch``; docs/architecture.md says why not shard channels), plus
  ``mtb:node:<instance>`` so that the connection is always subscribed and its loss is noticed.
- Its own publications come back from Redis and are dropped by origin (the instance id).
- No transparent retry: a broken connection is a *loss*. The node says so once in its log, sets
  ``mtbridge_redis_up`` to 0, keeps serving its own subscribers (its own publications are
  delivered locally and written to PostgreSQL as always), lets the periodic check fill the other
  nodes' publications from the store, reconnects with backoff, resubscribes, and asks the hub to
  compare every channel with the store (``resync``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import msgpack
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry
from redis.asyncio.client import PubSub
from redis.backoff import NoBackoff
from redis.retry import Retry

from bridge.broker.base import Deliver, Publication, Resync
from bridge.broker.metrics import ClusterMetrics
from bridge.protocol.targeting import Targets
from bridge.tasks import cancel_and_wait

__all__ = ["PREFIX", "RedisBroker", "decode", "encode"]

logger = logging.getLogger("mtbridge.broker")

#: Redis channel of a hub channel: ``mtb:pub:<channel>``; a node's own: ``mtb:node:<instance>``.
PREFIX = "mtb:pub:"
NODE_PREFIX = "mtb:node:"
VERSION = 1
#: Publications queued for Redis at most; past it (Redis far slower than the hub) new ones are
#: dropped and counted: durable ones are repaired from the store by the other nodes.
OUTBOX_MAX = 100_000
#: Reconnect delays after a failure (seconds): the first try is quick, then doubling up to 2 s, so a
#: restarted Redis is back in use within about 2 s.
RECONNECT_FIRST = 0.1
RECONNECT_MAX = 2.0
#: How long one read of the subscriber connection waits before looping (seconds); with the client's
#: health check (a PING every HEALTH_CHECK seconds when idle) a silent dead peer is noticed.
READ_TIMEOUT = 1.0
HEALTH_CHECK = 5
#: Connect and command timeouts of the broker's own connections (seconds).
CONNECT_TIMEOUT = 2.0
COMMAND_TIMEOUT = 5.0


def encode(pub: Publication) -> bytes:
    t = pub.targets
    accounts = sorted(t.accounts) if t is not None else None
    groups = sorted(t.groups) if t is not None else None
    item = [VERSION, pub.origin, pub.channel, pub.epoch, pub.offset, pub.payload, accounts, groups]
    item += [pub.durable, pub.at]
    return msgpack.packb(item, use_bin_type=True)  # type: ignore[no-any-return]


def decode(data: bytes) -> Publication:
    """The publication in ``data``; ``ValueError`` if it is not one this version wrote."""
    try:
        item = msgpack.unpackb(data, raw=False, strict_map_key=False)
    except Exception as exc:
        raise ValueError(f"not MessagePack: {exc}") from exc
    if not isinstance(item, list) or len(item) != 10 or item[0] != VERSION:
        raise ValueError("not a publication of this version")
    _, origin, channel, epoch, offset, payload, accounts, groups, durable, at = item
    if not (
        isinstance(origin, str)
        and isinstance(channel, str)
        and isinstance(epoch, str)
        and isinstance(offset, int)
        and offset >= 0
        and isinstance(payload, dict)
        and isinstance(durable, bool)
        and isinstance(at, int | float)
    ):
        raise ValueError("malformed publication")
    targets = None
    if accounts is not None or groups is not None:
        if not isinstance(accounts, list) or not isinstance(groups, list):
            raise ValueError("malformed targets")
        targets = Targets(frozenset(map(str, accounts)), frozenset(map(str, groups)))
    return Publication(channel, epoch, offset, payload, targets, durable, float(at), origin)


class RedisBroker:
    def __init__(self, redis: aioredis.Redis, origin: str, metrics: ClusterMetrics | None = None) -> None:
        self._redis = redis
        self.origin = origin
        self.metrics = metrics or ClusterMetrics(CollectorRegistry())
        self.healthy = False
        self._deliver: Deliver | None = None
        self._resync: Resync | None = None
        self._node_channel = NODE_PREFIX + origin
        self._wanted: set[str] = set()
        self._requested: set[str] = set()  # SUBSCRIBE sent on the current connection
        self._subscribed: set[str] = set()  # confirmed by Redis on the current connection
        self._waiters: dict[str, list[asyncio.Future[None]]] = {}
        self._outbox: list[tuple[str, bytes, str]] = []
        self._wake_writer = asyncio.Event()
        self._wake_sync = asyncio.Event()
        self._ps: PubSub | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._drops: set[asyncio.Task[None]] = set()
        self._was_up = False
        self._down_since: float | None = None

    @classmethod
    def from_url(cls, url: str, origin: str, metrics: ClusterMetrics | None = None) -> RedisBroker:
        """A broker on its own connections, with no transparent retry (a lost connection must be
        seen as a loss, not papered over)."""
        redis = aioredis.Redis.from_url(
            url,
            socket_connect_timeout=CONNECT_TIMEOUT,
            socket_timeout=COMMAND_TIMEOUT,
            health_check_interval=HEALTH_CHECK,
            retry=Retry(NoBackoff(), 0),
        )
        return cls(redis, origin, metrics)

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self, deliver: Deliver, resync: Resync) -> None:
        self._deliver, self._resync = deliver, resync
        self.metrics.redis_up.set(0)
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._reader(), name="mtbridge-redis-reader"),
            loop.create_task(self._writer(), name="mtbridge-redis-writer"),
            loop.create_task(self._syncer(), name="mtbridge-redis-subscriptions"),
        ]

    async def wait_ready(self, seconds: float) -> bool:
        """Wait until the subscriber connection is up (startup); False after ``seconds``."""
        deadline = time.monotonic() + seconds
        while not self.healthy and time.monotonic() < deadline:  # noqa: ASYNC110 - bounded startup poll
            await asyncio.sleep(0.02)
        return self.healthy

    async def close(self) -> None:
        await cancel_and_wait(self._tasks)
        self._tasks = []
        self._release_waiters()
        self.healthy = False
        await self._redis.aclose()

    # -- publishing -----------------------------------------------------------------------------

    def publish(self, pub: Publication) -> None:
        if self._deliver is None:
            raise RuntimeError("broker not started")
        pub.origin = self.origin
        self._deliver(pub)
        kind = "durable" if pub.durable else "ephemeral"
        if not self.healthy or len(self._outbox) >= OUTBOX_MAX:
            self.metrics.redis_dropped.labels(kind).inc()
            return
        self._outbox.append((PREFIX + pub.channel, encode(pub), kind))
        self._wake_writer.set()

    async def _writer(self) -> None:
        """Send the queue in order, one pipeline per batch: per-channel order is the call order."""
        while True:
            await self._wake_writer.wait()
            self._wake_writer.clear()
            while self._outbox:
                batch, self._outbox = self._outbox, []
                try:
                    async with self._redis.pipeline(transaction=False) as pipe:
                        for key, data, _ in batch:
                            pipe.publish(key, data)
                        await pipe.execute()
                except asyncio.CancelledError:
                    raise
                except Exception as error:
                    self.metrics.redis_errors.labels("publish").inc()
                    for _, _, kind in batch:
                        self.metrics.redis_dropped.labels(kind).inc()
                    self._lost("publish", error)
                    continue
                durable = sum(1 for _, _, kind in batch if kind == "durable")
                if durable:
                    self.metrics.redis_published.labels("durable").inc(durable)
                if len(batch) > durable:
                    self.metrics.redis_published.labels("ephemeral").inc(len(batch) - durable)

    # -- subscriptions --------------------------------------------------------------------------

    def watch(self, channel: str) -> asyncio.Future[None] | None:
        self._wanted.add(channel)
        self._wake_sync.set()
        if not self.healthy or channel in self._subscribed:
            return None  # down: the periodic check covers it; subscribed: nothing to wait for
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(channel, []).append(future)
        return future

    def unwatch(self, channel: str) -> None:
        self._wanted.discard(channel)
        self._wake_sync.set()
        for future in self._waiters.pop(channel, ()):
            if not future.done():
                future.set_result(None)

    async def _syncer(self) -> None:
        """Bring the connection's subscriptions to the wanted set, in order (one task, so a quick
        subscribe-unsubscribe-subscribe of one channel ends subscribed)."""
        while True:
            await self._wake_sync.wait()
            self._wake_sync.clear()
            ps = self._ps
            if ps is None or not self.healthy:
                continue
            add = self._wanted - self._requested
            remove = self._requested - self._wanted
            try:
                if add:
                    self._requested |= add
                    await ps.subscribe(*(PREFIX + c for c in add))
                if remove:
                    self._requested -= remove
                    self._subscribed -= remove
                    await ps.unsubscribe(*(PREFIX + c for c in remove))
            except asyncio.CancelledError:
                raise
            except Exception as error:
                self.metrics.redis_errors.labels("subscribe").inc()
                self._lost("subscribe", error)

    def _release_waiters(self) -> None:
        waiters, self._waiters = self._waiters, {}
        for futures in waiters.values():
            for future in futures:
                if not future.done():
                    future.set_result(None)

    # -- receiving ------------------------------------------------------------------------------

    async def _reader(self) -> None:
        delay = RECONNECT_FIRST
        while True:
            ps = self._redis.pubsub()
            try:
                await ps.subscribe(self._node_channel)
                self._ps = ps
                self._requested, self._subscribed = set(), set()
                while True:
                    message = await ps.get_message(timeout=READ_TIMEOUT)
                    if message is not None:
                        self._handle(message)
                        delay = RECONNECT_FIRST
            except asyncio.CancelledError:
                raise
            except Exception as error:
                self.metrics.redis_errors.labels("connect" if self._ps is None else "receive").inc()
                self._lost("connection", error)
            finally:
                self._ps = None
                with contextlib.suppress(Exception):
                    await ps.aclose()  # type: ignore[no-untyped-call]
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX)

    def _handle(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        raw = message.get("channel")
        key = raw.decode() if isinstance(raw, bytes) else str(raw)
        if kind == "message":
            data = message.get("data")
            if not isinstance(data, bytes):
                return
            try:
                pub = decode(data)
            except ValueError as error:
                self.metrics.redis_errors.labels("decode").inc()
                logger.warning("dropped a malformed publication on %s: %s", key[:80], error)
                return
            if pub.origin == self.origin:
                return  # our own, already delivered locally
            assert self._deliver is not None
            self._deliver(pub)
        elif kind == "subscribe":
            if key == self._node_channel:
                self._up()
                return
            channel = key[len(PREFIX) :]
            self._subscribed.add(channel)
            for future in self._waiters.pop(channel, ()):
                if not future.done():
                    future.set_result(None)

    # -- health ---------------------------------------------------------------------------------

    def _up(self) -> None:
        self.healthy = True
        self.metrics.redis_up.set(1)
        self._wake_sync.set()
        if self._was_up:
            down = time.monotonic() - self._down_since if self._down_since is not None else 0.0
            logger.warning("Redis connection restored after %.1f s; repairing from the store", down)
            if self._resync is not None:
                self._resync(True)
        else:
            logger.info("Redis connected; node instance %s", self.origin)
        self._was_up = True
        self._down_since = None

    def _lost(self, where: str, error: BaseException) -> None:
        """The connection is gone or broken: say so once per outage, and let the hub repair."""
        if self._down_since is None:
            self._down_since = time.monotonic()
            logger.warning(
                "Redis unavailable (%s: %s): degraded, serving this node's subscribers and "
                "repairing from the store until it is back",
                where,
                error,
            )
        if self.healthy:
            self.healthy = False
            self.metrics.redis_up.set(0)
            # Idle pooled connections are dead too (a restarted Redis closed them): drop them now, so
            # the first publish after the return does not fail on one of them.
            self._track(self._redis.connection_pool.disconnect(inuse_connections=False))
            if self._resync is not None:
                self._resync(True)
        self._release_waiters()
        ps = self._ps
        if ps is not None and where != "connection":
            # A failed publish or subscribe means the subscriber connection may be broken too:
            # drop it, so the reader reconnects and resubscribes from scratch.
            self._ps = None
            self._track(self._drop(ps))

    def _track(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(self._quietly(coro))
        self._drops.add(task)
        task.add_done_callback(self._drops.discard)

    @staticmethod
    async def _quietly(coro: Any) -> None:
        with contextlib.suppress(Exception):
            await coro

    async def _drop(self, ps: PubSub) -> None:
        await ps.aclose()  # type: ignore[no-untyped-call]
