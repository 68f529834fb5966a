"""Admission: a presented token checked, bound to its connection, and revoked.

A token is checked by ``bridge.auth.revocation.verify_unrevoked`` (the one check, shared with REST),
then against the local per-subject cap and, in a cluster, the cluster's admission hook; once
admitted, ``Connection.authenticate`` moves the connection to AUTHENTICATED and the hub files it by
subject. Revocations close the live connections they cover. Not here: the ``auth`` and
``auth.refresh`` commands themselves (``commands.py``), token expiry timers (``housekeeping.py``).
What this needs from the hub is :class:`Host`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from bridge.auth.exceptions import AuthError
from bridge.auth.revocation import Revocation, RevocationList, verify_unrevoked
from bridge.auth.tokens import Claims, Verifier
from bridge.hub.connection import Connection
from bridge.hub.limits import HubLimits
from bridge.hub.metrics import HubMetrics
from bridge.protocol import codes
from bridge.protocol.codes import Error

__all__ = ["Admission", "Host", "auth_result"]

logger = logging.getLogger("mtbridge.hub")


def auth_result(claims: Claims) -> dict[str, Any]:
    """What ``welcome`` and the ``auth`` result say about a bound token."""
    return {"sub": claims.sub, "role": claims.role.value, "expiresAt": int(claims.exp)}


class Host(Protocol):
    """What admission needs from the hub."""

    verifier: Verifier
    revocations: RevocationList
    limits: HubLimits
    metrics: HubMetrics
    clock: Callable[[], float]
    connections: dict[str, Connection]
    by_subject: dict[str, set[Connection]]
    admission: Callable[[Connection, Claims], Awaitable[codes.Disconnect | None]] | None
    on_connection_change: list[Callable[[Connection, bool], None]]
    persist_revocation: Callable[[Revocation], Awaitable[None]] | None

    def welcome(self, conn: Connection) -> None: ...

    def reply_error(
        self, conn: Connection, request_id: str | None, code: codes.Error, message: str, **extra: Any
    ) -> None: ...

    def close(self, conn: Connection, disconnect: codes.Disconnect, *, flush: bool = True) -> None: ...


class Admission:
    def __init__(self, hub: Host) -> None:
        self.hub = hub
        #: Connections whose token waits for the cluster's admission hook (S2, bridge/cluster).
        self.pending: dict[Connection, asyncio.Task[None]] = {}

    def verify(self, token: object) -> Claims:
        hub = self.hub
        return verify_unrevoked(hub.verifier, hub.revocations, token, hub.clock())

    def authenticate(self, conn: Connection, token: object, request_id: str | None) -> bool:
        """Check a token and bind it to ``conn``; on failure reply, close and return False.
        (Synchronous: without admission hook only; see :meth:`authenticate_then`.)"""
        claims = self._admissible(conn, token, request_id, welcome=False)
        if claims is None:
            return False
        self._bind(conn, claims)
        return True

    def _admissible(
        self, conn: Connection, token: object, request_id: str | None, *, welcome: bool
    ) -> Claims | None:
        """The token's claims if it is valid, unrevoked and within the local per-subject cap; else
        reply, close and return None. ``welcome``: a token from the URL, so a refusal still sends
        ``welcome`` first (docs/protocol.md: it is the first message on every connection)."""
        hub = self.hub
        try:
            claims = self.verify(token)
        except AuthError as exc:
            hub.metrics.auth_failures.labels(exc.code).inc()
            if welcome:
                hub.welcome(conn)
            hub.reply_error(conn, request_id, exc.code, str(exc))
            close = {
                Error.TOKEN_EXPIRED: codes.TOKEN_EXPIRED,
                "token_revoked": codes.TOKEN_REVOKED,
            }.get(exc.code, codes.UNAUTHORIZED)
            hub.close(conn, close)
            return None
        cap = hub.limits.max_connections_per_subject
        peers = hub.by_subject.get(claims.sub)
        if cap is not None and peers is not None and len(peers) >= cap:
            if welcome:
                hub.welcome(conn)
            hub.reply_error(conn, request_id, Error.FORBIDDEN, "too many connections for this subject")
            hub.close(conn, codes.TOO_MANY_CONNECTIONS)
            return None
        return claims

    # -- cluster admission (S2, bridge/cluster) --
    def authenticate_then(
        self,
        conn: Connection,
        token: object,
        request_id: str | None,
        then: Callable[[Connection], None],
        *,
        welcome: bool = False,
    ) -> None:
        """Authenticate ``conn``, then call ``then(conn)`` once it is bound: at once on one hub, after
        the admission hook answered in a cluster. On refusal reply and close, and never call ``then``.
        ``welcome``: as for :meth:`_admissible` (a refusal sends ``welcome`` before its error)."""
        claims = self._admissible(conn, token, request_id, welcome=welcome)
        if claims is None:
            return
        if self.hub.admission is None:
            self._bind(conn, claims)
            then(conn)
            return
        task = asyncio.ensure_future(self._admit(conn, claims, request_id, then, welcome))
        self.pending[conn] = task

    async def _admit(
        self,
        conn: Connection,
        claims: Claims,
        request_id: str | None,
        then: Callable[[Connection], None],
        welcome: bool,
    ) -> None:
        hub = self.hub
        assert hub.admission is not None
        try:
            refusal = await hub.admission(conn, claims)
        except Exception:
            logger.exception("admission failed on %s", conn.id)
            refusal = codes.INTERNAL_ERROR
        finally:
            self.pending.pop(conn, None)
        if conn.closing or conn.id not in hub.connections:
            return  # the hook releases what it took for a connection that left meanwhile
        if refusal is not None:
            if welcome:
                hub.welcome(conn)
            if refusal is codes.TOO_MANY_CONNECTIONS:
                hub.reply_error(conn, request_id, Error.FORBIDDEN, "too many connections for this subject")
            else:
                hub.reply_error(
                    conn, request_id, Error.UNAVAILABLE, "cannot admit now; retry", retryAfterMs=1000
                )
            hub.close(conn, refusal)
            return
        self._bind(conn, claims)
        then(conn)

    # -- end cluster admission --

    def _bind(self, conn: Connection, claims: Claims) -> None:
        hub = self.hub
        conn.authenticate(claims)
        hub.by_subject.setdefault(claims.sub, set()).add(conn)
        hub.metrics.connections.labels("anonymous").dec()
        hub.metrics.connections.labels(claims.role.value).inc()
        for callback in hub.on_connection_change:
            callback(conn, True)

    # -- revocation -----------------------------------------------------------------------------

    async def revoke(self, kind: str, value: str, expires_at: float | None = None) -> int:
        """Revoke a ``jti`` or a ``sub``, persist it, and close the live connections it covers."""
        hub = self.hub
        now = hub.clock()
        rev = Revocation(kind, value, now, expires_at if expires_at is not None else now + 365 * 86400)
        if hub.persist_revocation is not None:
            await hub.persist_revocation(rev)
        return self.apply_revocation(rev)

    def apply_revocation(self, rev: Revocation) -> int:
        """Close local connections covered by ``rev`` (also for revocations read from the store)."""
        hub = self.hub
        hub.revocations.add(rev)
        closed = 0
        for conn in list(hub.connections.values()):
            if conn.claims is not None and not conn.closing and hub.revocations.covers(rev, conn.claims):
                hub.close(conn, codes.TOKEN_REVOKED)
                closed += 1
        return closed
