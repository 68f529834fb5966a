"""The ledger service: what turns the generic hub into a signal relay.

It plugs into the hub through its extension points only: a publish hook for ``signals:``
(strict validation, idempotency by signal id, targeting, the pause switch), handlers for
``signal.ack`` and ``trade.event``, and callbacks after fan-out and replay to record deliveries.
Status changes are written to the store in batches and pushed to the publishing engine
(``signal.status``) and to dashboards (``system:signals``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from bridge.hub.batch import IterationBatch
from bridge.hub.connection import Connection
from bridge.hub.hub import Hub, HubError
from bridge.hub.ports import Prepared
from bridge.protocol.channels import Role, holds_account
from bridge.protocol.codes import Error
from bridge.protocol.delivery import DeliveryStatus
from bridge.protocol.envelope import Envelope
from bridge.protocol.events import EventInvalid, TradeEvent, parse_event, status_from_event
from bridge.protocol.signals import SignalInvalid, parse_signal, signal_channel
from bridge.protocol.targeting import Targets, delivered_accounts
from bridge.store.base import EventRecord, EventWrite, SignalView, StatusUpdate, Store
from bridge.store.exceptions import StoreError, split_failed_batch
from bridge.tasks import cancel_and_wait

__all__ = ["CONTROL_CHANNEL", "Ledger"]

logger = logging.getLogger("mtbridge.ledger")

CONTROL_CHANNEL = "control:state"
#: The hub-internal notice channel of status pushes: the node where an ack or a trade event moved a
#: status tells every node, and the node where the publishing engine is connected pushes
#: ``signal.status`` to it.
STATUS_NOTICES = "_ledger:status"
PUBLISHERS_KEPT = 100_000
SWEEP_INTERVAL = 0.4
T = TypeVar("T")  # revocations by other processes (CLI, other hubs) apply within half a second


@dataclass(slots=True)
class _Pending(Generic[T]):
    """A request taken into a batch: who asked, and what to write."""

    conn: Connection
    request_id: str | None
    item: T


def _current_status(view: SignalView | BaseException | None, update: StatusUpdate) -> str:
    """What an ack that moved nothing reports: the delivery's current status (a repeated ack, or one
    that arrives after the execution report), or why there is none."""
    if isinstance(view, BaseException):
        raise view
    if view is None:
        raise HubError(Error.NOT_FOUND, "no such signal")
    current = next((d for d in view.deliveries if d.account == update.account), None)
    if current is None:
        raise HubError(Error.NOT_FOUND, "this signal does not target this account")
    return current.status.value


class Ledger:
    def __init__(self, hub: Hub, store: Store) -> None:
        self.hub = hub
        self.store = store
        self.paused_accounts: set[str] = set()
        self.paused_strategies: set[str] = set()
        self.publishers: OrderedDict[str, str] = OrderedDict()  # signal id -> publishing subject
        self.online: dict[str, int] = {}  # account -> live EA connections
        self._pending: list[StatusUpdate] = []
        self._flush_task: asyncio.Task[None] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._seen_revocations: set[tuple[str, str, int]] = set()
        #: Whether this node runs the signal-expiry sweep (one node of a cluster leads it; a single
        #: hub always does). Set by the cluster control plane.
        self.leads: Callable[[], bool] = lambda: True
        # Acks and trade events share one batch: an EA's ack and then its execution report must reach
        # the store in that order, or the report's "executed" would overtake the "acked".
        self._requests: IterationBatch[_Pending[Any]] = IterationBatch(self._request_batch, "mtbridge-ledger")

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        hub = self.hub
        hub.publish_hooks["signals"] = self._prepare_signal
        hub.register("signal.ack", self._on_ack)
        hub.register("trade.event", self._on_trade_event)
        hub.after_publish.append(self._after_publish)
        hub.repair.on_delivered.append(self._on_delivered)
        hub.listen_internal(STATUS_NOTICES, self._on_status_notice)
        hub.on_replayed.append(self._on_replayed)
        hub.on_connection_change.append(self._on_connection_change)
        hub.batches.append(self._requests)
        await self._load_control()
        await self._load_revocations()
        self._tasks.append(asyncio.create_task(self._sweep(), name="mtbridge-ledger-sweep"))

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks)
        self._tasks.clear()
        await self._requests.drain()
        await self._flush_statuses()

    # -- signals --------------------------------------------------------------------------------

    def _prepare_signal(self, conn: Connection | None, channel: str, payload: dict[str, Any]) -> Prepared:
        try:
            signal = parse_signal(payload, self.hub.clock())
        except SignalInvalid as exc:
            raise HubError(
                Error.VALIDATION_FAILED, "signal failed validation", details=[e.as_dict() for e in exc.errors]
            ) from exc
        if signal.channel != channel:
            raise HubError(
                Error.VALIDATION_FAILED,
                "signal failed validation",
                details=[
                    {"field": "strategy", "code": "channel", "message": f"must match the channel {channel}"}
                ],
            )
        if signal.strategy in self.paused_strategies:
            raise HubError(Error.PAUSED, f"strategy {signal.strategy} is paused by an operator")
        if conn is not None and conn.claims is not None:
            self._remember_publisher(signal.id, conn.claims.sub)
        return Prepared(
            signal.to_payload(),
            message_id=signal.id,
            expires_at_ms=signal.expires_at,
            targets=Targets(frozenset(signal.accounts), frozenset(signal.groups)),
            signal=signal,
        )

    async def publish_signal(
        self, payload: dict[str, Any], publisher: str, channel: str | None = None
    ) -> dict[str, Any]:
        """The REST path: same validation, channel and offsets as a WebSocket publish."""
        name = channel or signal_channel(payload.get("strategy"))
        prepared = self._prepare_signal(None, name, payload)
        self._remember_publisher(prepared.payload["id"], publisher)
        result = await self.hub.publish(name, prepared)
        return {"id": prepared.payload["id"], "channel": name, **result}

    def _remember_publisher(self, signal_id: str, sub: str) -> None:
        self.publishers[signal_id] = sub
        self.publishers.move_to_end(signal_id)
        while len(self.publishers) > PUBLISHERS_KEPT:
            self.publishers.popitem(last=False)

    def _after_publish(self, channel: str, offset: int, prepared: Prepared) -> None:
        """On the publishing node only: tell dashboards (every node's, through the broker)."""
        if prepared.signal is None:
            return
        self.hub.publish_ephemeral(
            "system:signals",
            {"event": "signal", "signal": {**prepared.payload, "offset": offset, "channel": channel}},
        )

    def _on_delivered(
        self, channel: str, offset: int, payload: dict[str, Any], targets: Targets | None
    ) -> None:
        """On every node: a signal reached this node's live subscribers; record it for its EAs."""
        if not channel.startswith("signals:"):
            return
        signal_id = payload.get("id")
        if not isinstance(signal_id, str):
            return
        now_ms = int(self.hub.clock() * 1000)
        # The EAs the fan-out reached: looked up in the channel's index, not found by a scan.
        for conn in self.hub.reached(channel, targets):
            self._mark_delivered(conn, payload, now_ms, signal_id, "live")

    def _on_replayed(self, conn: Connection, channel: str, payloads: list[dict[str, Any]]) -> None:
        if not channel.startswith("signals:"):
            return
        now_ms = int(self.hub.clock() * 1000)
        for payload in payloads:
            sid = payload.get("id")
            if isinstance(sid, str):
                self._mark_delivered(conn, payload, now_ms, sid, "replay")

    def _mark_delivered(
        self, conn: Connection, payload: dict[str, Any], now_ms: int, signal_id: str, path: str
    ) -> None:
        claims = conn.claims
        if claims is None or claims.role is not Role.EA:
            return
        created = payload.get("createdAt")
        if isinstance(created, int):
            self.hub.metrics.signal_delivery.labels(path).observe(max(0, now_ms - created) / 1000)
        for account in delivered_accounts(payload, claims.accounts, claims.groups):
            self._queue_status(StatusUpdate(signal_id, account, DeliveryStatus.DELIVERED, now_ms))

    # -- acknowledgements -----------------------------------------------------------------------

    def _account_for(self, conn: Connection, payload: dict[str, Any]) -> str:
        claims = conn.claims
        assert claims is not None
        account = payload.get("account")
        if account is None:
            held = [a for a in claims.accounts if a != "*"]
            if len(held) != 1:
                raise HubError(
                    Error.BAD_REQUEST, "`account` is required when the token holds several accounts"
                )
            return held[0]
        if not isinstance(account, str) or not holds_account(claims.accounts, account):
            raise HubError(Error.FORBIDDEN, "the token does not hold this account")
        return account

    def _on_ack(self, conn: Connection, env: Envelope) -> None:
        payload = env.payload or {}
        unknown = set(payload) - {"signalId", "account"}
        if unknown:
            raise HubError(Error.BAD_REQUEST, f"unknown field {sorted(unknown)[0][:32]!r}")
        signal_id = payload.get("signalId")
        if not isinstance(signal_id, str) or not 0 < len(signal_id) <= 64:
            raise HubError(Error.BAD_REQUEST, "`signalId` must be a string")
        account = self._account_for(conn, payload)
        now_ms = int(self.hub.clock() * 1000)
        if self.hub.admit(conn, env.request_id):
            update = StatusUpdate(signal_id, account, DeliveryStatus.ACKED, now_ms)
            self._requests.add(_Pending(conn, env.request_id, update))

    async def _request_batch(self, batch: list[_Pending[Any]]) -> None:
        """Runs of acks and of trade events, in arrival order: one store call per run, all submitted
        before any is awaited, so the store's FIFO writer applies them in the order they came."""
        runs: list[list[_Pending[Any]]] = []
        for p in batch:
            if runs and type(runs[-1][0].item) is type(p.item):
                runs[-1].append(p)
            else:
                runs.append([p])
        if len(runs) == 1:
            await self._run(runs[0])
        else:
            await asyncio.gather(*(self._run(run) for run in runs))

    def _run(self, run: list[_Pending[Any]]) -> Awaitable[None]:
        return self._ack_batch(run) if isinstance(run[0].item, StatusUpdate) else self._event_batch(run)

    async def _ack_batch(self, batch: list[_Pending[StatusUpdate]]) -> None:
        """The acks of one loop iteration: one store call, which writes the queued deliveries first, so
        "delivered" is never skipped."""
        started = time.perf_counter()
        try:
            moved = await self._write_statuses([p.item for p in batch])
        except Exception as error:
            for p in batch:
                self.hub.settle(p.conn)
                self.hub.fail(p.conn, p.request_id, error, "signal.ack")
            return
        self.hub.metrics.commit_latency.labels("ack").observe(time.perf_counter() - started)
        lookups = [p.item.signal_id for p, ok in zip(batch, moved, strict=True) if not ok]
        views: dict[str, SignalView | BaseException | None] = {}
        if lookups:  # not moved: a repeated ack, an unknown signal, or one already executed
            unique = sorted(set(lookups))
            found = await asyncio.gather(*(self.store.get_signal(i) for i in unique), return_exceptions=True)
            views = dict(zip(unique, found, strict=True))
        for p, ok in zip(batch, moved, strict=True):
            self.hub.settle(p.conn)
            update = p.item
            try:
                status = (
                    DeliveryStatus.ACKED.value if ok else _current_status(views[update.signal_id], update)
                )
            except Exception as error:
                self.hub.fail(p.conn, p.request_id, error, "signal.ack")
                continue
            self.hub.reply(
                p.conn,
                p.request_id,
                {"signalId": update.signal_id, "account": update.account, "status": status},
            )

    # -- trade events ---------------------------------------------------------------------------

    def _on_trade_event(self, conn: Connection, env: Envelope) -> None:
        try:
            event = parse_event(env.payload or {}, self.hub.clock())
        except EventInvalid as exc:
            raise HubError(
                Error.VALIDATION_FAILED,
                "trade event failed validation",
                details=[e.as_dict() for e in exc.errors],
            ) from exc
        claims = conn.claims
        assert claims is not None
        if not holds_account(claims.accounts, event.account) and claims.role is not Role.ADMIN:
            raise HubError(Error.FORBIDDEN, "the token does not hold this account")
        if self.hub.admit(conn, env.request_id):
            self._requests.add(_Pending(conn, env.request_id, self._event_write(event)))

    async def _event_batch(self, batch: list[_Pending[EventWrite]]) -> None:
        """The trade events of one loop iteration: one store call (one transaction, or part of one),
        answered only after its commit."""
        started = time.perf_counter()
        try:
            records = await self.store.record_events([p.item for p in batch])
        except Exception as error:
            if split_failed_batch(error, len(batch)):
                for p in batch:  # one event the store refuses must not fail the others
                    await self._event_batch([p])
                return
            for p in batch:
                self.hub.settle(p.conn)
                self.hub.fail(p.conn, p.request_id, error, "trade.event")
            return
        m = self.hub.metrics
        m.commit_latency.labels("trade_event").observe(time.perf_counter() - started)
        for p, record in zip(batch, records, strict=True):
            m.trade_events.labels("new" if record.new else "duplicate").inc()
            self._recorded(p.item, record)
            self.hub.settle(p.conn)
            self.hub.reply(p.conn, p.request_id, {"id": p.item.event.id, "duplicate": not record.new})

    def _event_write(self, event: TradeEvent) -> EventWrite:
        """The event, its entry on ``account:<login>:events`` (message id = event id) and the status it
        implies: one store write, so one transaction."""
        status = status_from_event(event)
        update: StatusUpdate | None = None
        if status is not None and event.signal_id is not None:
            detail = event.data.get("message") if status is DeliveryStatus.REJECTED else None
            update = StatusUpdate(
                event.signal_id, event.account, status, event.ts, detail if isinstance(detail, str) else None
            )
        return EventWrite(event, f"account:{event.account}:events", update, event.to_payload())

    def _recorded(self, write: EventWrite, record: EventRecord) -> None:
        """Rebroadcast once, then push the status it moved; idempotent end to end."""
        if record.appended.duplicate and not record.new:
            return
        payload = write.payload if write.payload is not None else write.event.to_payload()
        if not record.appended.duplicate:
            appended = record.appended
            self.hub.distribute(write.channel, appended.epoch, appended.offset, payload, None)
        if record.new:
            self.hub.publish_ephemeral("system:events", payload)
            if write.status is not None and record.status_moved:
                self._push_status(write.status)

    # -- status ---------------------------------------------------------------------------------

    def _queue_status(self, update: StatusUpdate) -> None:
        self._pending.append(update)
        if self._flush_task is None:
            self._flush_task = asyncio.get_running_loop().create_task(self._flush_soon())

    async def _flush_soon(self) -> None:
        await asyncio.sleep(0)
        self._flush_task = None
        await self._flush_statuses()

    async def _flush_statuses(self) -> None:
        if not self._pending:
            return
        try:
            await self._write_statuses([])
        except Exception as error:
            if not _outage(error):
                logger.exception("writing status updates failed; retrying")

    async def _write_statuses(self, updates: list[StatusUpdate]) -> list[bool]:
        """Write the queued updates then ``updates`` in one store call; push what moved. Returns the
        flags of ``updates``. On failure the queued ones are queued again (the caller's are not)."""
        queued, self._pending = self._pending, []
        batch = queued + updates
        try:
            moved = await self.store.update_statuses(batch)
        except Exception:
            self._pending = queued + self._pending
            raise
        for item, ok in zip(batch, moved, strict=True):
            if ok:
                self._push_status(item)
        return moved[len(queued) :]

    def _push_status(self, update: StatusUpdate) -> None:
        self.hub.metrics.signal_status.labels(update.status.value).inc()
        message = {
            "signalId": update.signal_id,
            "account": update.account,
            "status": update.status.value,
            "at": update.at_ms,
        }
        if update.detail:
            message["detail"] = update.detail
        self.hub.publish_ephemeral("system:signals", {"event": "status", **message})
        self.hub.publish_internal(STATUS_NOTICES, message)

    def _on_status_notice(self, message: dict[str, Any]) -> None:
        """On every node: push ``signal.status`` to the publishing engine if it is connected here."""
        signal_id = message.get("signalId")
        sub = self.publishers.get(signal_id) if isinstance(signal_id, str) else None
        if sub is not None:
            for conn in self.hub.connections_of(sub):
                if conn.claims is not None and conn.claims.role in (Role.ENGINE, Role.ADMIN):
                    self.hub.send_event(conn, {"type": "signal.status", "payload": message})

    async def _sweep(self) -> None:
        """Expire signals, pick up revocations written by other processes (CLI, other hubs)."""
        while True:
            await asyncio.sleep(SWEEP_INTERVAL)
            try:
                await self._flush_statuses()
                now_ms = int(self.hub.clock() * 1000)
                expired = await self.store.expire_signals(now_ms) if self.leads() else []
                for signal_id, account in expired:
                    self._push_status(StatusUpdate(signal_id, account, DeliveryStatus.EXPIRED, now_ms))
                await self._load_revocations()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                if not _outage(error):
                    logger.exception("ledger sweep failed")

    async def _load_revocations(self) -> None:
        from bridge.auth.revocation import Revocation

        now_ms = int(self.hub.clock() * 1000)
        for rev in await self.store.list_revocations(now_ms):
            key = (rev.kind, rev.value, rev.revoked_at_ms)
            if key in self._seen_revocations:
                continue
            self._seen_revocations.add(key)
            self.hub.apply_revocation(
                Revocation(rev.kind, rev.value, rev.revoked_at_ms / 1000, rev.expires_at_ms / 1000)
            )

    async def persist_revocation(self, rev: Any) -> None:
        revoked_ms = int(rev.revoked_at * 1000)
        await self.store.revoke(
            rev.kind, rev.value, revoked_at_ms=revoked_ms, expires_at_ms=int(rev.expires_at * 1000)
        )
        self._seen_revocations.add((rev.kind, rev.value, revoked_ms))

    # -- presence -------------------------------------------------------------------------------

    def _on_connection_change(self, conn: Connection, up: bool) -> None:
        claims = conn.claims
        if claims is None:
            return
        # Published whether or not this node has a subscriber: dashboards on other nodes listen (S2).
        self.hub.publish_ephemeral(
            "system:connections",
            {"event": "connected" if up else "disconnected", "connection": self.hub.describe([conn])[0]},
        )
        if claims.role is not Role.EA:
            return
        logins = [a for a in claims.accounts if a != "*"]
        for login in logins:
            n = self.online.get(login, 0) + (1 if up else -1)
            if n > 0:
                self.online[login] = n
            else:
                self.online.pop(login, None)
            self.hub.metrics.ea_connections.labels(login).set(max(n, 0))
        if logins:
            task = asyncio.get_running_loop().create_task(
                self.store.touch_accounts(logins, int(self.hub.clock() * 1000))
            )
            self._tasks.append(task)
            task.add_done_callback(self._forget_task)

    def _forget_task(self, task: asyncio.Task[None]) -> None:
        with contextlib.suppress(ValueError):
            self._tasks.remove(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("ledger task failed", exc_info=task.exception())

    # -- control --------------------------------------------------------------------------------

    async def _load_control(self) -> None:
        after = 0
        while True:
            page = await self.store.read_since(CONTROL_CHANNEL, after, 1000)
            if not page:
                break
            for item in page:
                after = item.offset
                self._apply_control(item.payload)

    def _apply_control(self, payload: dict[str, Any]) -> None:
        target = self.paused_accounts if payload.get("scope") == "account" else self.paused_strategies
        key = payload.get("account") if payload.get("scope") == "account" else payload.get("strategy")
        if not isinstance(key, str):
            return
        if payload.get("command") == "pause":
            target.add(key)
        else:
            target.discard(key)

    async def control(self, scope: str, command: str, key: str, by: str) -> dict[str, Any]:
        """Pause or resume an account or a strategy: persisted, then sent to the EAs concerned."""
        payload: dict[str, Any] = {
            "command": command,
            "scope": scope,
            "account": key if scope == "account" else None,
            "strategy": key if scope == "strategy" else None,
            "at": int(self.hub.clock() * 1000),
            "by": by,
        }
        await self.hub.publish(CONTROL_CHANNEL, Prepared(payload))
        self._apply_control(payload)
        if scope == "account":
            accounts = [key]
        else:
            known = {a.login for a in await self.store.list_accounts()}
            accounts = sorted(known | set(self.online))
        for login in accounts:
            await self.hub.publish(f"account:{login}:control", Prepared(payload))
        self.hub.publish_ephemeral("system:signals", {"event": "control", **payload})
        return self.control_state()

    def control_state(self) -> dict[str, Any]:
        return {"accounts": sorted(self.paused_accounts), "strategies": sorted(self.paused_strategies)}


def _outage(error: BaseException) -> bool:
    """A retryable store error: the store's outage log reports it (a few lines per outage), so the
    ledger's background loops, which retry on their own, add no line of their own."""
    return isinstance(error, StoreError) and error.retryable
