"""The receiving side of every publication: ordering and gap repair of durable channels.

The broker delivers each :class:`~bridge.broker.base.Publication` here (this node's own at once,
other nodes' through Redis). Ephemeral channels are numbered by this node and fanned out. Durable
ones go through the decisions of :mod:`bridge.hub.sequence`: in order, once, and what Redis lost is
read from the store (PostgreSQL) by offset, so a subscriber is never disconnected for a gap the node
can fill. A periodic check (``interval``, 2 s by default; one ``tops`` query over every served
channel) finds a lost *last* publication, which no later offset would reveal.

Not here: handing publications to the broker and writing them to subscribers (``fanout.py``), the
ordering decisions themselves (``sequence.py``). What this needs from the hub is :class:`Host`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from bridge.broker.base import Broker, Publication
from bridge.hub.channel import Channel
from bridge.hub.connection import Connection
from bridge.hub.metrics import HubMetrics
from bridge.hub.ports import DurableLog
from bridge.hub.sequence import Check, Cursor, Verdict, check, classify, held_in_order
from bridge.protocol.targeting import Targets, targets_of
from bridge.tasks import cancel_and_wait

__all__ = ["Host", "Repair"]

logger = logging.getLogger("mtbridge.repair")

#: Entries read per store call while filling a gap (the same page size as a subscriber's replay).
FILL_PAGE = 1_000
#: Publications held behind a running fill before they are let go (they are in the store; the fill
#: reads them there instead): bounds memory when the store is slow and Redis is not.
MAX_HELD = 50_000
#: Retry delays of a fill or a check whose store read failed (seconds, doubling up to the maximum).
RETRY_FIRST = 0.25
RETRY_MAX = 5.0
#: At most one warning per this many seconds for repeated store failures of fills and checks.
WARN_EVERY = 30.0

Delivered = Callable[[str, int, dict[str, Any], Targets | None], None]


def _targets_of(ch: Channel, payload: dict[str, Any]) -> Targets | None:
    """The targeting of a stored publication (live ones carry it; stored signals name it)."""
    if ch.policy.name != "signals":
        return None
    return targets_of(payload)


class Host(Protocol):
    """What repair needs from the hub."""

    metrics: HubMetrics
    channels: dict[str, Channel]
    log: DurableLog | None
    broker: Broker
    clock: Callable[[], float]

    def fanout(
        self, name: str, offset: int, payload: dict[str, Any], targets: Targets | None = None
    ) -> int: ...

    def drop_subscription(self, conn: Connection, name: str) -> None: ...

    def send_event(self, conn: Connection, message: dict[str, Any]) -> None: ...


class Repair:
    def __init__(self, hub: Host, origin: str = "") -> None:
        self.hub = hub
        self.origin = origin
        self.cursors: dict[str, Cursor[Publication]] = {}
        #: Called after each durable publication reached this node's live subscribers (the ledger
        #: records signal deliveries here, on whichever node the EA is connected to).
        self.on_delivered: list[Delivered] = []
        #: Handlers of the hub's internal notices (``Hub.listen_internal``), by channel name.
        self.internal: dict[str, Callable[[dict[str, Any]], None]] = {}
        self.interval: float | None = None
        self._metrics = hub.metrics.cluster
        self._lost = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._periodic: asyncio.Task[None] | None = None
        self._warned_at = 0.0

    # -- lifecycle ------------------------------------------------------------------------------

    def start_checks(self, interval: float) -> None:
        """Compare every served channel with the store every ``interval`` seconds (cluster nodes)."""
        self.interval = interval
        self._periodic = asyncio.get_running_loop().create_task(self._check_loop(), name="mtbridge-gapcheck")

    async def stop(self) -> None:
        await cancel_and_wait([*self._tasks, self._periodic])
        self._tasks.clear()
        self._periodic = None

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- the channel's life on this node --------------------------------------------------------

    def opened(self, name: str, epoch: str, top: int) -> None:
        """The channel's position was read for a subscriber (before its replay): from now on this
        node knows what it has to deliver next."""
        cursor = self.cursors.setdefault(name, Cursor())
        if cursor.last is None:
            cursor.epoch, cursor.last = epoch, top
            if cursor.seen > top:  # passed through while the position was read: make sure of them
                cursor.want = cursor.seen
                self._start_fill(name, cursor, "open")
        elif cursor.epoch != epoch:
            self._reset(name, epoch)

    def closed(self, name: str) -> None:
        """The channel's last local subscriber left."""
        self.cursors.pop(name, None)

    # -- receiving ------------------------------------------------------------------------------

    def receive(self, pub: Publication) -> None:
        """The broker's delivery callback: one publication, from this node or another."""
        hub = self.hub
        if pub.origin != self.origin:
            self._metrics.redis_received.inc()
        ch = hub.channels.get(pub.channel)
        if ch is None:
            handler = self.internal.get(pub.channel)
            if handler is not None:
                handler(pub.payload)
            return
        if not ch.policy.durable:
            # Ephemeral: this node numbers what it delivers, so its subscribers' offsets only grow
            # whichever node published (docs/protocol.md, "Several nodes").
            ch.seq += 1
            hub.fanout(pub.channel, ch.seq, pub.payload, pub.targets)
            self._lag(pub)
            return
        cursor = self.cursors.get(pub.channel)
        if cursor is None:
            cursor = self.cursors[pub.channel] = Cursor()
        verdict = classify(cursor, pub.epoch, pub.offset)
        if verdict is Verdict.DELIVER:
            cursor.last = pub.offset
            self._deliver(ch, pub.offset, pub.payload, pub.targets)
            self._lag(pub)
        elif verdict is Verdict.PASS:
            cursor.seen = max(cursor.seen, pub.offset)
            hub.fanout(pub.channel, pub.offset, pub.payload, pub.targets)  # recovering: buffered
        elif verdict is Verdict.DUPLICATE:
            self._metrics.duplicates.inc()
        elif verdict is Verdict.HOLD:
            self._hold(cursor, pub)
        elif verdict is Verdict.GAP:
            self._hold(cursor, pub)
            self._start_fill(pub.channel, cursor, "offset")
        else:
            self._reset(pub.channel, pub.epoch)

    def _hold(self, cursor: Cursor[Publication], pub: Publication) -> None:
        cursor.want = max(cursor.want, pub.offset)
        if len(cursor.held) < MAX_HELD:
            cursor.held.append((pub.offset, pub))

    def _lag(self, pub: Publication) -> None:
        if pub.origin != self.origin and pub.at:
            self._metrics.remote_lag.observe(max(0.0, time.time() - pub.at))

    def _deliver(self, ch: Channel, offset: int, payload: dict[str, Any], targets: Targets | None) -> None:
        self.hub.fanout(ch.name, offset, payload, targets)
        for callback in self.on_delivered:
            callback(ch.name, offset, payload, targets)

    # -- filling --------------------------------------------------------------------------------

    def _start_fill(self, name: str, cursor: Cursor[Publication], trigger: str) -> None:
        if cursor.filling:
            return
        cursor.filling = True
        self._metrics.gap_fills.labels(trigger).inc()
        self._spawn(self._fill(name, cursor), f"mtbridge-fill-{name[:40]}")

    async def _fill(self, name: str, cursor: Cursor[Publication]) -> None:
        """Deliver what was held that continues the sequence; read what is missing before the rest
        (or up to ``want``) from the store; repeat until nothing is missing or held."""
        log = self.hub.log
        assert log is not None
        delay = RETRY_FIRST
        try:
            while self.cursors.get(name) is cursor:
                ch = self.hub.channels.get(name)
                if ch is None:
                    return
                assert cursor.last is not None
                rest: list[tuple[int, Publication]] = []
                for offset, pub in held_in_order(cursor):
                    if offset <= cursor.last:
                        self._metrics.duplicates.inc()
                    elif offset == cursor.last + 1 and not rest:
                        cursor.last = offset
                        self._deliver(ch, offset, pub.payload, pub.targets)
                        self._lag(pub)
                    else:
                        rest.append((offset, pub))
                cursor.held = rest
                target = rest[0][0] - 1 if rest else cursor.want
                if target <= cursor.last:
                    if not rest:
                        return
                    continue
                try:
                    page = await log.read_since(name, cursor.last, min(FILL_PAGE, target - cursor.last))
                except Exception as error:
                    self._warn("gap fill on %s failed (retrying): %s", name, error)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, RETRY_MAX)
                    continue
                delay = RETRY_FIRST
                ch = self.hub.channels.get(name)
                if ch is None or self.cursors.get(name) is not cursor:
                    return
                if not page or page[0].offset > target:
                    # The store has nothing up to ``target``: retention trimmed it. Move on rather
                    # than hold the channel forever (a resubscribe is told ``history_trimmed``).
                    logger.warning("gap fill on %s: offsets up to %d are not in the store", name, target)
                    cursor.last = target
                    continue
                self._deliver_page(ch, cursor, page, target)
        finally:
            cursor.filling = False

    def _deliver_page(self, ch: Channel, cursor: Cursor[Publication], page: list[Any], target: int) -> None:
        now_ms = int(self.hub.clock() * 1000)
        filled = 0
        for item in page:
            assert cursor.last is not None
            if item.offset <= cursor.last:
                continue
            if item.offset > target:
                break
            cursor.last = item.offset
            if item.expires_at_ms is not None and item.expires_at_ms <= now_ms:
                continue  # as a replay does: an expired signal is not delivered
            self._deliver(ch, item.offset, item.payload, _targets_of(ch, item.payload))
            filled += 1
        if filled:
            self._metrics.gap_filled.inc(filled)

    # -- checking -------------------------------------------------------------------------------

    def resync(self, lost: bool) -> None:
        """The broker lost (or may have lost) publications: check every channel now."""
        if lost:
            self._lost = True
        if self.hub.log is not None:
            self._spawn(self.check(), "mtbridge-resync")

    async def _check_loop(self) -> None:
        assert self.interval is not None
        while True:
            await asyncio.sleep(self.interval)
            await self.check()

    async def check(self) -> None:
        """Compare each served durable channel's top offset in the store (one query) with the last
        one delivered here; fill what is missing."""
        log = self.hub.log
        names = [n for n, c in self.cursors.items() if c.last is not None]
        if log is None or not names:
            return
        lost = self._lost or not self.hub.broker.healthy
        try:
            tops = await log.tops(names)
        except Exception as error:
            self._warn("gap check failed: %s", error)
            return
        if self.hub.broker.healthy:
            self._lost = False
        for name in names:
            cursor = self.cursors.get(name)
            found = tops.get(name)
            if cursor is None or found is None:
                continue
            epoch, top = found
            verdict = check(cursor, epoch, top, lost=lost)
            if verdict is Check.FILL:
                cursor.want = max(cursor.want, top)
                self._start_fill(name, cursor, "check")
            elif verdict is Check.RESET:
                self._reset(name, epoch)

    # -- epochs ---------------------------------------------------------------------------------

    def _reset(self, name: str, epoch: str) -> None:
        """The channel's history was reset (new epoch): its old offsets mean nothing. Subscribers
        here get ``unsubscribed`` with reason ``epoch_changed`` and resubscribe (docs/protocol.md)."""
        hub = self.hub
        ch = hub.channels.get(name)
        self.cursors.pop(name, None)
        self._metrics.epoch_resets.inc()
        if ch is None:
            return
        logger.warning("channel %s: epoch changed to %s; subscribers are told to resubscribe", name, epoch)
        for conn in [*ch.json_subs, *ch.msgpack_subs, *ch.recovering]:
            hub.drop_subscription(conn, name)
            hub.send_event(
                conn, {"type": "unsubscribed", "channel": name, "payload": {"reason": "epoch_changed"}}
            )

    def _warn(self, message: str, *args: Any) -> None:
        now = time.monotonic()
        if now - self._warned_at >= WARN_EVERY:
            self._warned_at = now
            logger.warning(message, *args)
