"""Subscribing to a durable channel (with or without ``since``): read the channel's position, replay
what the connection missed, then hand it to live fan-out with no gap and no duplicate.

The decision whether ``since``/``epoch`` can be recovered is ``Position.refusal``
(``bridge/protocol/recovery.py``); here is the I/O around it (store reads, buffering the live
publications that arrive meanwhile, flow control). Not here: the checks before a subscription
(``commands.py``), live fan-out (``fanout.py``). What this needs from the hub is :class:`Host`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any, Protocol

from bridge.hub.channel import Channel, frame_for
from bridge.hub.channel import targets_accept as _targets_accept
from bridge.hub.connection import Connection
from bridge.hub.limits import HubLimits
from bridge.hub.ports import DurableLog
from bridge.protocol.channels import Role
from bridge.protocol.recovery import RECOVERY_ADVICE, NotRecovered

__all__ = ["RECOVERY_PAGE", "WATCH_TIMEOUT", "Host", "recover"]

RECOVERY_PAGE = 1_000
#: How long a subscribe waits for the broker to confirm it receives the channel before reading the
#: channel's position (seconds); past it (Redis down) the periodic gap check covers the difference.
WATCH_TIMEOUT = 2.0


class _Opens(Protocol):
    def opened(self, name: str, epoch: str, top: int) -> None: ...


class Host(Protocol):
    """What a replay needs from the hub."""

    log: DurableLog | None
    limits: HubLimits
    clock: Callable[[], float]
    on_replayed: list[Callable[[Connection, str, list[dict[str, Any]]], None]]

    @property
    def repair(self) -> _Opens: ...

    def delete_channel(self, name: str) -> None: ...


async def recover(
    hub: Host,
    conn: Connection,
    ch: Channel,
    answer: Callable[[dict[str, Any]], None],
    since: int | None,
    epoch: str | None,
) -> None:
    """Replay what ``conn`` missed, then hand it to live fan-out with no gap and no duplicate.
    ``answer`` gets the subscription's result before any message: the ``result`` of a client's
    ``subscribe``, or the ``subscribed`` push of one made over REST."""
    assert hub.log is not None
    name = ch.name
    try:
        watched = ch.watched
        if watched is not None and not watched.done():
            # Publications committed after the position read below must reach this node.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(watched), WATCH_TIMEOUT)
        pos = await hub.log.position(name)
        hub.repair.opened(name, pos.epoch, pos.last_offset)
        result: dict[str, Any] = {"offset": pos.last_offset, "epoch": pos.epoch, "durable": True}
        replay: list[tuple[int, dict[str, Any]]] = []
        last = pos.last_offset
        if since is not None:
            reason = pos.refusal(since, epoch, hub.limits.max_recovery)
            if reason is None:
                after = since
                now_ms = int(hub.clock() * 1000)
                targeted = conn.role is Role.EA
                claims = conn.claims
                assert claims is not None
                while after < last:
                    page = await hub.log.read_since(name, after, min(RECOVERY_PAGE, last - after))
                    if not page:
                        break
                    for item in page:
                        if item.offset > last:
                            break
                        after = item.offset
                        if item.expires_at_ms is not None and item.expires_at_ms <= now_ms:
                            continue
                        if targeted and not _targets_accept(item.payload, claims):
                            continue
                        replay.append((item.offset, item.payload))
                if after < last:
                    reason = NotRecovered.HISTORY_TRIMMED
                    replay = []
            if reason is None:
                result.update(recovered=True, replayed=len(replay))
            else:
                result.update(
                    recovered=False,
                    reason=reason,
                    advice=RECOVERY_ADVICE,
                )
    except BaseException:
        if ch.recovering.pop(conn, None) is not None:
            conn.recovering.discard(name)
            if ch.empty:
                hub.delete_channel(name)
        raise
    buffered = ch.recovering.get(conn)
    if buffered is None or conn.closing:
        ch.recovering.pop(conn, None)
        conn.recovering.discard(name)
        return
    answer(result)
    enc = conn.encoding
    sent: list[dict[str, Any]] = []
    for offset, payload in replay:
        if conn.paused:
            await conn.writable()
            if conn.closing:
                ch.recovering.pop(conn, None)
                return
        conn.send(frame_for({"type": "message", "channel": name, "offset": offset, "payload": payload}, enc))
        sent.append(payload)
    # Live publications that arrived while we replayed (including while waiting for the socket).
    buffered = ch.recovering.pop(conn, buffered)
    claims = conn.claims
    top = last
    for offset, payload, targets in sorted(buffered, key=lambda item: item[0]):
        if offset <= top:
            continue
        top = offset
        if (
            targets is not None
            and claims is not None
            and claims.role is Role.EA
            and not targets.accepts(claims.accounts, claims.groups)
        ):
            continue
        conn.send(frame_for({"type": "message", "channel": name, "offset": offset, "payload": payload}, enc))
        sent.append(payload)
    conn.recovering.discard(name)
    ch.floors[conn] = (max(last, top), hub.clock())
    ch.add(conn)
    conn.subscriptions.add(name)
    if sent:
        for callback in hub.on_replayed:
            callback(conn, name, sent)
