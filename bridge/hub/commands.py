"""Commands: one inbound message from a connection, decoded, checked and answered.

:meth:`Commands.receive` is where a whole WebSocket message (reassembled by ``websocket.py``) becomes
an :class:`~bridge.protocol.envelope.Envelope` (``bridge/protocol/envelope.py`` parses it), passes the
rate limit and the bad-message count, and reaches its handler: ``auth``, ``auth.refresh``,
``heartbeat``, ``subscribe``, ``unsubscribe``, ``publish`` here, and the ledger's ``signal.ack`` and
``trade.event`` (registered with :meth:`Commands.register`). A channel's policy is decided by
``bridge/protocol/channels.py`` (``policy_for``, ``can_publish``, ``subscribe_refusal``) from here.

A durable ``publish`` becomes durable in :meth:`Commands._publish_batch`: one ``append_many`` on the
store (``ports.DurableLog``) per loop iteration, committed before anyone is answered; then
``Fanout.distribute`` hands it to the broker. Not here: token checks (``admission.py``), the replay
of a subscription with ``since`` (``recovery.py``), fan-out (``fanout.py``), the channel index
(``channel.py``). What this needs from the hub is :class:`Host`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from bridge.auth.exceptions import AuthError
from bridge.hub.admission import Admission, auth_result
from bridge.hub.batch import IterationBatch
from bridge.hub.channel import Channel
from bridge.hub.connection import Connection
from bridge.hub.errors import HubError
from bridge.hub.metrics import HubMetrics, Tally
from bridge.hub.ports import Prepared, PublishHook
from bridge.hub.recovery import Host as RecoveryHost
from bridge.hub.recovery import recover
from bridge.protocol import codes
from bridge.protocol.channels import (
    NamespacePolicy,
    can_publish,
    can_subscribe,
    namespace_of,
    subscribe_refusal,
)
from bridge.protocol.codes import Error
from bridge.protocol.envelope import Encoding, Envelope, EnvelopeError, decode
from bridge.protocol.targeting import Targets
from bridge.store.base import Appended, AppendRequest
from bridge.store.exceptions import StoreError, split_failed_batch

__all__ = ["Commands", "Handler", "Host"]

logger = logging.getLogger("mtbridge.hub")

Handler = Callable[[Connection, Envelope], Awaitable[None] | None]


@dataclass(slots=True)
class _Publication:
    conn: Connection
    request_id: str | None
    channel: str
    prepared: Prepared
    started: float


class Host(RecoveryHost, Protocol):
    """What the commands need from the hub (a replay's needs included: they start it)."""

    metrics: HubMetrics
    tally: Tally
    policies: dict[str, NamespacePolicy]
    channels: dict[str, Channel]
    connections: dict[str, Connection]
    epoch: str
    publish_hooks: dict[str, PublishHook]
    after_publish: list[Callable[[str, int, Prepared], None]]
    latency_samples: list[float]

    def reply(
        self, conn: Connection, request_id: str | None, payload: dict[str, Any], channel: str | None = None
    ) -> None: ...

    def reply_error(
        self, conn: Connection, request_id: str | None, code: codes.Error, message: str, **extra: Any
    ) -> None: ...

    def send_event(self, conn: Connection, message: dict[str, Any]) -> None: ...

    def close(self, conn: Connection, disconnect: codes.Disconnect, *, flush: bool = True) -> None: ...

    def policy_for(self, name: str) -> NamespacePolicy: ...

    def open_channel(self, name: str, policy: NamespacePolicy) -> Channel: ...

    def drop_subscription(self, conn: Connection, name: str) -> None: ...

    def publish_ephemeral(
        self, name: str, payload: dict[str, Any], targets: Targets | None = None
    ) -> int: ...

    def distribute(
        self, name: str, epoch: str, offset: int, payload: dict[str, Any], targets: Targets | None
    ) -> None: ...


class Commands:
    def __init__(self, hub: Host, admission: Admission) -> None:
        self.hub = hub
        self.admission = admission
        self.handlers: dict[str, tuple[Handler, bool]] = {}
        self.publishes: IterationBatch[_Publication] = IterationBatch(self._publish_batch, "mtbridge-publish")
        self.register("auth", self._on_auth, requires_auth=False)
        self.register("heartbeat", self._on_heartbeat, requires_auth=False)
        self.register("auth.refresh", self._on_refresh)
        self.register("subscribe", self._on_subscribe)
        self.register("unsubscribe", self._on_unsubscribe)
        self.register("publish", self._on_publish)

    # -- inbound --------------------------------------------------------------------------------

    def register(self, mtype: str, handler: Handler, *, requires_auth: bool = True) -> None:
        self.handlers[mtype] = (handler, requires_auth)

    def receive(self, conn: Connection, data: bytes, binary: bool) -> None:
        """One whole WebSocket message from ``conn``."""
        if conn.closing:
            return
        hub = self.hub
        now = hub.clock()
        conn.msgs_in += 1
        tally = hub.tally
        tally.bytes_in += len(data)
        if conn.bucket is not None and not conn.bucket.take(now):
            conn.rate_strikes += 1
            if conn.rate_strikes >= hub.limits.rate_strikes_before_close:
                hub.close(conn, codes.RATE_LIMITED)
                return
            hub.reply_error(
                conn,
                _peek_request_id(data, conn.encoding),
                Error.RATE_LIMITED,
                "message rate limit exceeded",
                retryAfterMs=int(conn.bucket.retry_after() * 1000) + 1,
            )
            return
        if conn.rate_strikes:
            conn.rate_strikes = max(0, conn.rate_strikes - 1)
        expected_binary = conn.encoding is Encoding.MSGPACK
        try:
            if binary != expected_binary:
                raise EnvelopeError(
                    Error.BAD_REQUEST,
                    f"{'binary' if binary else 'text'} frames do not match the negotiated encoding",
                )
            env = decode(data, conn.encoding)
        except EnvelopeError as exc:
            self._bad_message(conn, exc.request_id, exc.code, exc.message)
            return
        handlers = self.handlers
        mtype = env.type if env.type in handlers else "unknown"
        tally.messages_in[mtype] = tally.messages_in.get(mtype, 0) + 1
        entry = handlers.get(env.type)
        if entry is None:
            self._bad_message(conn, env.request_id, Error.UNKNOWN_TYPE, f"unknown type {env.type[:32]!r}")
            return
        handler, requires_auth = entry
        if requires_auth and conn.claims is None:
            self._bad_message(conn, env.request_id, Error.AUTH_REQUIRED, "authenticate first")
            return
        conn.bad_messages = 0  # the limit counts bad messages in a row (docs/protocol.md)
        try:
            result = handler(conn, env)
        except HubError as exc:
            hub.reply_error(conn, env.request_id, exc.code, exc.message, **exc.extra)
            return
        except Exception:
            logger.exception("handler %s failed on %s", env.type, conn.id)
            hub.reply_error(conn, env.request_id, Error.INTERNAL, "internal error")
            return
        if result is not None:
            self._spawn(conn, env, result)

    def _bad_message(self, conn: Connection, request_id: str | None, code: codes.Error, message: str) -> None:
        conn.bad_messages += 1
        self.hub.reply_error(conn, request_id, code, message)
        if conn.bad_messages >= self.hub.limits.bad_messages_before_close:
            self.hub.close(conn, codes.TOO_MANY_BAD_MESSAGES)

    def _spawn(self, conn: Connection, env: Envelope, coro: Awaitable[None]) -> None:
        if not self.admit(conn, env.request_id):
            if asyncio.iscoroutine(coro):
                coro.close()
            return
        task = asyncio.ensure_future(self._guard(conn, env, coro))
        if conn.tasks is None:
            conn.tasks = set()
        conn.tasks.add(task)
        task.add_done_callback(lambda t: _task_done(conn, t))

    async def _guard(self, conn: Connection, env: Envelope, coro: Awaitable[None]) -> None:
        try:
            await coro
        except HubError as exc:
            self.hub.reply_error(conn, env.request_id, exc.code, exc.message, **exc.extra)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("handler %s failed on %s", env.type, conn.id)
            self.hub.reply_error(conn, env.request_id, Error.INTERNAL, "internal error")

    def admit(self, conn: Connection, request_id: str | None) -> bool:
        """Count one more request in flight on ``conn``, or refuse it (replying) past the limit.
        Every admitted request ends with :meth:`settle`."""
        if conn.in_flight >= self.hub.limits.max_in_flight:
            self.hub.reply_error(
                conn, request_id, Error.RATE_LIMITED, "too many requests in flight", retryAfterMs=100
            )
            return False
        conn.in_flight += 1
        return True

    def settle(self, conn: Connection) -> None:
        conn.in_flight -= 1

    def fail(self, conn: Connection, request_id: str | None, error: BaseException, what: str) -> None:
        """Answer a request whose durable write failed: retryable store trouble is ``unavailable``."""
        if isinstance(error, HubError):
            self.hub.reply_error(conn, request_id, error.code, error.message, **error.extra)
        elif isinstance(error, StoreError) and error.retryable:
            # No line per request: the store's outage log tells the outage (bridge/store/outage.py).
            self.hub.reply_error(
                conn, request_id, Error.UNAVAILABLE, "store unavailable; retry", retryAfterMs=500
            )
        else:
            logger.error("%s failed on %s", what, conn.id, exc_info=error)
            self.hub.reply_error(conn, request_id, Error.INTERNAL, "internal error")

    # -- auth -----------------------------------------------------------------------------------

    def _on_auth(self, conn: Connection, env: Envelope) -> None:
        if conn.claims is not None or conn in self.admission.pending:
            raise HubError(Error.ALREADY_AUTHENTICATED, "already authenticated; use auth.refresh")
        token = (env.payload or {}).get("token")
        request_id = env.request_id

        def authenticated(conn: Connection) -> None:
            assert conn.claims is not None
            self.hub.reply(conn, request_id, {**auth_result(conn.claims), "connectionId": conn.id})

        self.admission.authenticate_then(conn, token, request_id, authenticated)

    def _on_refresh(self, conn: Connection, env: Envelope) -> None:
        assert conn.claims is not None
        hub = self.hub
        token = (env.payload or {}).get("token")
        try:
            claims = self.admission.verify(token)
        except AuthError as exc:
            hub.metrics.auth_failures.labels(exc.code).inc()
            raise HubError(exc.code, str(exc)) from exc
        if claims.sub != conn.claims.sub or claims.role != conn.claims.role:
            raise HubError(Error.SUBJECT_MISMATCH, "auth.refresh must keep the same sub and role")
        conn.refresh(claims)
        for name in list(conn.subscriptions):
            policy = hub.policies[namespace_of(name)]
            if not can_subscribe(policy, claims.role, claims.accounts, claims.subscribe, name):
                hub.drop_subscription(conn, name)
                hub.send_event(
                    conn, {"type": "unsubscribed", "channel": name, "payload": {"reason": "forbidden"}}
                )
            elif (ch := hub.channels.get(name)) is not None:
                ch.reindex(conn)  # the new token may hold other accounts or groups
        hub.reply(conn, env.request_id, auth_result(claims))

    def _on_heartbeat(self, conn: Connection, env: Envelope) -> None:
        message: dict[str, Any] = {"type": "heartbeat"}
        if env.request_id is not None:
            message["requestId"] = env.request_id
        message["payload"] = {"ts": int(self.hub.clock() * 1000)}
        self.hub.send_event(conn, message)

    # -- subscriptions --------------------------------------------------------------------------

    def _on_subscribe(self, conn: Connection, env: Envelope) -> Awaitable[None] | None:
        name = env.channel
        if name is None:
            raise HubError(Error.BAD_REQUEST, "subscribe needs a channel")
        payload = env.payload or {}
        unknown = set(payload) - {"since", "epoch"}
        if unknown:
            raise HubError(Error.BAD_REQUEST, f"unknown subscribe option {sorted(unknown)[0][:32]!r}")
        request_id = env.request_id
        hub = self.hub
        return self._subscribe(
            conn,
            name,
            payload.get("since"),
            payload.get("epoch"),
            lambda result: hub.reply(conn, request_id, result, channel=name),
        )

    def _subscribe(
        self,
        conn: Connection,
        name: str,
        since: object,
        epoch: object,
        answer: Callable[[dict[str, Any]], None],
    ) -> Awaitable[None] | None:
        """Every subscription, asked for by the connection or on its behalf, starts here: the
        connection's own token decides, and ``answer`` gets the result before any message."""
        assert conn.claims is not None
        hub = self.hub
        policy = hub.policy_for(name)
        c = conn.claims
        refusal = subscribe_refusal(policy, c.role, c.accounts, c.subscribe, name)
        if refusal is not None:
            raise HubError(Error.FORBIDDEN, f"not allowed to subscribe to {name}", reason=refusal)
        if name in conn.subscriptions or name in conn.recovering:
            raise HubError(Error.ALREADY_SUBSCRIBED, f"already subscribed to {name}")
        if len(conn.subscriptions) + len(conn.recovering) >= hub.limits.max_subscriptions:
            raise HubError(Error.TOO_MANY_SUBSCRIPTIONS, "subscription limit reached")
        if since is not None and (isinstance(since, bool) or not isinstance(since, int) or since < 0):
            raise HubError(Error.BAD_OFFSET, "`since` must be an integer >= 0")
        if epoch is not None and not isinstance(epoch, str):
            raise HubError(Error.BAD_REQUEST, "`epoch` must be a string")
        ch = hub.open_channel(name, policy)
        if not policy.durable:
            ch.add(conn)
            conn.subscriptions.add(name)
            result: dict[str, Any] = {"offset": ch.seq, "epoch": hub.epoch, "durable": False}
            if since is not None:
                # Ephemeral channels keep no history: say so rather than pretend.
                result.update(
                    recovered=False, reason="no_history", advice="ephemeral channel; live data only"
                )
            answer(result)
            return None
        if hub.log is None:
            raise HubError(Error.UNAVAILABLE, "durable channels need a store")
        ch.recovering[conn] = []
        conn.recovering.add(name)
        return recover(hub, conn, ch, answer, since, epoch)

    async def subscribe_on_behalf(
        self, conn: Connection, name: str, since: int | None = None, epoch: str | None = None
    ) -> dict[str, Any]:
        """Subscribe ``conn`` to ``name`` for someone else (REST): exactly what a ``subscribe`` from the
        connection would do, under the connection's own token, with a ``subscribed`` push in place of
        the ``result``. Returns that push's payload; raises :class:`HubError` when refused, or
        ``not_found`` when the connection closes first. Takes a live local connection, so a cluster
        can route the call to the node that holds it."""
        hub = self.hub
        if conn.closing or conn.claims is None or hub.connections.get(conn.id) is not conn:
            raise HubError(Error.NOT_FOUND, f"connection {conn.id} is not live")
        answered: dict[str, Any] = {}

        def push(result: dict[str, Any]) -> None:
            answered.update(result)
            hub.send_event(conn, {"type": "subscribed", "channel": name, "payload": result})

        pending = self._subscribe(conn, name, since, epoch, push)
        if pending is not None:
            # Once started, the subscription is the connection's: a caller that goes away (its HTTP
            # request cancelled) must not cut the replay short and leave a gap, so it runs on.
            task = asyncio.ensure_future(pending)
            task.add_done_callback(lambda t: None if t.cancelled() else t.exception())
            await asyncio.shield(task)
        if not answered:
            raise HubError(Error.NOT_FOUND, f"connection {conn.id} closed before the subscription completed")
        return answered

    def unsubscribe_on_behalf(self, conn: Connection, name: str) -> None:
        """Remove ``conn``'s subscription to ``name`` for someone else (REST); the connection gets an
        ``unsubscribed`` push with reason ``rest``."""
        if name not in conn.subscriptions and name not in conn.recovering:
            raise HubError(Error.NOT_SUBSCRIBED, f"not subscribed to {name[:64]}")
        self.hub.drop_subscription(conn, name)
        self.hub.send_event(conn, {"type": "unsubscribed", "channel": name, "payload": {"reason": "rest"}})

    def _on_unsubscribe(self, conn: Connection, env: Envelope) -> None:
        name = env.channel
        if name is None:
            raise HubError(Error.BAD_REQUEST, "unsubscribe needs a channel")
        if name not in conn.subscriptions and name not in conn.recovering:
            raise HubError(Error.NOT_SUBSCRIBED, f"not subscribed to {name[:64]}")
        self.hub.drop_subscription(conn, name)
        self.hub.reply(conn, env.request_id, {}, channel=name)

    # -- publishing -----------------------------------------------------------------------------

    def _on_publish(self, conn: Connection, env: Envelope) -> None:
        assert conn.claims is not None
        hub = self.hub
        name = env.channel
        if name is None:
            raise HubError(Error.BAD_REQUEST, "publish needs a channel")
        if env.payload is None:
            raise HubError(Error.BAD_REQUEST, "publish needs a payload")
        policy = hub.policy_for(name)
        c = conn.claims
        if not can_publish(policy, c.role, c.accounts, c.publish, name):
            raise HubError(Error.FORBIDDEN, f"not allowed to publish to {name}")
        hook = hub.publish_hooks.get(policy.name)
        prepared = hook(conn, name, env.payload) if hook is not None else Prepared(env.payload)
        if not policy.durable:
            offset = hub.publish_ephemeral(name, prepared.payload, prepared.targets)
            if env.request_id is not None:
                hub.reply(conn, env.request_id, {"offset": offset, "epoch": hub.epoch, "duplicate": False})
            return
        if hub.log is None:
            raise HubError(Error.UNAVAILABLE, "durable channels need a store")
        if self.admit(conn, env.request_id):
            self.publishes.add(_Publication(conn, env.request_id, name, prepared, time.perf_counter()))

    async def _publish_batch(self, batch: list[_Publication]) -> None:
        """The durable publications of one loop iteration: one store call, then fan-out in offset order."""
        hub = self.hub
        assert hub.log is not None
        requests = [
            AppendRequest(p.channel, p.prepared.payload, p.prepared.message_id, p.prepared.expires_at_ms,
                          p.prepared.signal)
            for p in batch
        ]  # fmt: skip
        started = time.perf_counter()
        try:
            results = await hub.log.append_many(requests)
        except Exception as error:
            if split_failed_batch(error, len(batch)):
                for p in batch:  # one bad publication must not fail the others
                    await self._publish_batch([p])
                return
            for p in batch:
                self.settle(p.conn)
                self.fail(p.conn, p.request_id, error, "publish")
            return
        now = time.perf_counter()
        hub.metrics.commit_latency.labels("publish").observe(now - started)
        for p, appended in zip(batch, results, strict=True):
            self._published(p.channel, appended, p.prepared, now - p.started)
            self.settle(p.conn)
            hub.reply(
                p.conn,
                p.request_id,
                {"offset": appended.offset, "epoch": appended.epoch, "duplicate": appended.duplicate},
            )

    def _published(self, name: str, appended: Appended, prepared: Prepared, elapsed: float) -> None:
        hub = self.hub
        if not appended.duplicate:
            hub.distribute(name, appended.epoch, appended.offset, prepared.payload, prepared.targets)
            for callback in hub.after_publish:
                callback(name, appended.offset, prepared)
        hub.metrics.publish_latency.observe(elapsed)
        hub.latency_samples.append(elapsed)

    async def publish(
        self, name: str, prepared: Prepared, policy: NamespacePolicy | None = None
    ) -> dict[str, Any]:
        """Persist (durable channels) then fan out: the entry point of REST and the hub's own feeds."""
        hub = self.hub
        started = time.perf_counter()
        policy = policy or hub.policy_for(name)
        if not policy.durable:
            offset = hub.publish_ephemeral(name, prepared.payload, prepared.targets)
            return {"offset": offset, "epoch": hub.epoch, "duplicate": False}
        if hub.log is None:
            raise HubError(Error.UNAVAILABLE, "durable channels need a store")
        if prepared.signal is not None:
            appended = await hub.log.publish_signal(prepared.signal)
        else:
            appended = await hub.log.append(
                name, prepared.message_id, prepared.payload, prepared.expires_at_ms
            )
        self._published(name, appended, prepared, time.perf_counter() - started)
        return {"offset": appended.offset, "epoch": appended.epoch, "duplicate": appended.duplicate}


def _task_done(conn: Connection, task: asyncio.Task[Any]) -> None:
    conn.in_flight -= 1
    if conn.tasks is not None:
        conn.tasks.discard(task)
        if not conn.tasks:
            conn.tasks = None
    if not task.cancelled() and task.exception() is not None:
        logger.error("request task failed on %s", conn.id, exc_info=task.exception())


def _peek_request_id(data: bytes, encoding: Encoding) -> str | None:
    """Best effort: the request id of a message refused before it was decoded."""
    try:
        env = decode(data, encoding)
    except EnvelopeError as exc:
        return exc.request_id
    return env.request_id
