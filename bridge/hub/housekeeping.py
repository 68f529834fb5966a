"""Housekeeping: the hub's one timer pass (every 0.25 s) over every connection and channel.

Auth deadlines, pings and pong deadlines, token expiry (a warning, then a close after the grace),
queue metrics, expiry of recovery floors, and pruning of expired revocations. There is no task or
timer per connection. Not here: what a ping or a close
puts on the wire (``connection.py``), the token checks (``admission.py``). What this needs from the
hub is :class:`Host`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Container
from typing import Any, Protocol

from bridge.auth.revocation import RevocationList
from bridge.hub.channel import Channel
from bridge.hub.connection import Connection
from bridge.hub.limits import HubLimits
from bridge.hub.metrics import HubMetrics, Tally
from bridge.protocol import codes

__all__ = ["FLOOR_TTL", "HOUSEKEEPING_INTERVAL", "Host", "Housekeeping"]

logger = logging.getLogger("mtbridge.hub")

HOUSEKEEPING_INTERVAL = 0.25
#: Seconds a recovered connection's floor (``Channel.floors``) is kept: a publishing coroutine that
#: committed before the replay read the log resumes within moments.
FLOOR_TTL = 30.0


class Host(Protocol):
    """What housekeeping needs from the hub."""

    connections: dict[str, Connection]
    channels: dict[str, Channel]
    limits: HubLimits
    metrics: HubMetrics
    tally: Tally
    revocations: RevocationList
    clock: Callable[[], float]

    def close(self, conn: Connection, disconnect: codes.Disconnect, *, flush: bool = True) -> None: ...

    def send_event(self, conn: Connection, message: dict[str, Any]) -> None: ...


class Housekeeping:
    __slots__ = ("admitting", "hub")

    def __init__(self, hub: Host, admitting: Container[Connection]) -> None:
        self.hub = hub
        #: Connections whose token is in cluster admission (``admission.py``): sent in time.
        self.admitting = admitting

    async def run(self) -> None:
        while True:
            await asyncio.sleep(HOUSEKEEPING_INTERVAL)
            try:
                self.housekeep(self.hub.clock())
            except Exception:
                logger.exception("housekeeping failed")

    def housekeep(self, now: float) -> None:
        """Auth deadlines, pings, pong deadlines, token expiry; and queue metrics."""
        hub = self.hub
        lim = hub.limits
        total_q = 0
        deepest = 0
        for conn in list(hub.connections.values()):
            if conn.closing:
                continue
            q = conn.queued_bytes + conn.sink.buffered()
            total_q += q
            deepest = max(deepest, q)
            claims = conn.claims
            if claims is None:
                # A token whose cluster admission is still running (bounded: bridge/cluster) has
                # been sent in time (S2).
                if now - conn.connected_at >= lim.auth_timeout and conn not in self.admitting:
                    hub.close(conn, codes.AUTH_TIMEOUT)
                continue
            if conn.pong_deadline is not None and now >= conn.pong_deadline:
                hub.close(conn, codes.HEARTBEAT_TIMEOUT)
                continue
            if now - conn.last_seen >= lim.ping_interval and conn.pong_deadline is None:
                conn.ping(now + lim.pong_timeout)
            if now >= claims.exp + lim.token_grace:
                hub.close(conn, codes.TOKEN_EXPIRED)
            elif now >= claims.exp - lim.token_warning and conn.warn_expiry():
                hub.send_event(
                    conn,
                    {
                        "type": "warning",
                        "payload": {
                            "code": "token_expiring",
                            "message": "token expires soon; send auth.refresh",
                            "expiresAt": int(claims.exp),
                            "closeAt": int(claims.exp + lim.token_grace),
                        },
                    },
                )
        self.sync_metrics()
        for ch in hub.channels.values():
            if ch.floors:
                for c in [c for c, (_, at) in ch.floors.items() if now - at > FLOOR_TTL]:
                    del ch.floors[c]
        hub.metrics.queue_bytes.set(total_q)
        hub.metrics.queue_max_bytes.set(deepest)
        hub.metrics.channels.set(len(hub.channels))
        hub.revocations.prune(now)

    def sync_metrics(self) -> None:
        """Move the hot-path tallies into the Prometheus counters (a lock per ``inc`` is too
        dear per message; this runs every housekeeping pass and before every scrape)."""
        self.hub.tally.drain_into(self.hub.metrics)
