"""Leadership: work that exactly one node of a cluster does (retention, signal expiry, the
cluster-wide health sample, the market-data adapters configured in the hub).

A leader holds a PostgreSQL **session advisory lock** (``pg_try_advisory_lock``) on a connection of
its own. The lock lives exactly as long as that session: a node that stops, crashes or is SIGKILLed
loses it as soon as PostgreSQL sees the socket close, and another node takes it on its next try
(every :data:`LEADER_POLL` seconds). PostgreSQL, not Redis, decides, because the sweeps act on
PostgreSQL: a node cut off from the database cannot lead work on it, and Redis being down does not
stop retention or expiry.

Bounds (documented in docs/architecture.md, "Cluster control plane"):

- a node that is killed: PostgreSQL frees its locks when the socket closes; another node leads
  within ``LEADER_POLL`` (1 s);
- a node whose host or network dies: the session's TCP keepalives
  (:data:`KEEPALIVE_SETTINGS`: idle 5 s, then 3 probes 2 s apart) free the lock within about 11 s;
- the old leader itself checks its session every ``LEADER_POLL`` with a ``CHECK_TIMEOUT`` of 2 s, so
  it stops leading within about 3 s of losing the database: before anyone else can take over.

Names are independent locks: the sweeps and the market-data adapters may be led by different nodes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from bridge.cluster.model import advisory_key
from bridge.tasks import cancel_and_wait

__all__ = [
    "CHECK_TIMEOUT",
    "KEEPALIVE_SETTINGS",
    "LEADER_POLL",
    "Leadership",
    "LocalLeadership",
    "PgLeadership",
    "asyncpg_dsn",
]

logger = logging.getLogger("mtbridge.cluster")

#: Seconds between a follower's attempts to take a lock, and between a leader's session checks.
LEADER_POLL = 1.0
#: Seconds a leader's session check may take before the leader steps down.
CHECK_TIMEOUT = 2.0
#: Seconds between reconnection attempts of the leadership session.
RECONNECT_DELAY = 1.0
#: Server-side TCP keepalives of the leadership session, so PostgreSQL frees a vanished node's locks.
KEEPALIVE_SETTINGS = {"tcp_keepalives_idle": "5", "tcp_keepalives_interval": "2", "tcp_keepalives_count": "3"}

Factory = Callable[[], Awaitable[None]]


class Leadership(Protocol):
    def leads(self, name: str) -> bool: ...

    def led(self, name: str, factory: Factory) -> asyncio.Task[None]: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class LocalLeadership:
    """One hub alone: it leads everything, and led work starts at once (today's behaviour)."""

    def leads(self, name: str) -> bool:
        return True

    def led(self, name: str, factory: Factory) -> asyncio.Task[None]:
        return asyncio.create_task(_run(factory), name=f"mtbridge-{name}")

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None


async def _run(factory: Factory) -> None:
    await factory()


def asyncpg_dsn(sqlalchemy_url: str) -> str:
    """The asyncpg DSN of a SQLAlchemy PostgreSQL URL (``postgresql+asyncpg://`` -> ``postgresql://``)."""
    from sqlalchemy.engine import make_url

    url = make_url(sqlalchemy_url)
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


class PgLeadership:
    """Advisory-lock leadership over one dedicated PostgreSQL session."""

    def __init__(self, dsn: str, connect: Callable[..., Awaitable[Any]] | None = None) -> None:
        self.dsn = dsn
        self._connect = connect
        self._conn: Any = None
        self._names: set[str] = set()
        self._held: set[str] = set()
        self._changed: dict[str, asyncio.Event] = {}
        self._task: asyncio.Task[None] | None = None
        self.transitions = 0

    def leads(self, name: str) -> bool:
        return name in self._held

    def wanted(self) -> list[str]:
        """The names this node competes for."""
        return sorted(self._names)

    def held(self) -> list[str]:
        """The names this node leads now."""
        return sorted(self._held)

    def want(self, name: str) -> None:
        """Compete for ``name`` (also done by :meth:`led`)."""
        self._names.add(name)
        self._changed.setdefault(name, asyncio.Event())

    def led(self, name: str, factory: Factory) -> asyncio.Task[None]:
        """A task that runs ``factory()`` while this node leads ``name`` and cancels it when the lead is
        lost. Work that returns by itself is started again only after the lead was lost and regained."""
        self.want(name)
        return asyncio.create_task(self._supervise(name, factory), name=f"mtbridge-led-{name}")

    async def _supervise(self, name: str, factory: Factory) -> None:
        changed = self._changed[name]
        while True:
            while not self.leads(name):
                changed.clear()
                await changed.wait()
            work = asyncio.create_task(_run(factory), name=f"mtbridge-{name}")
            try:
                while self.leads(name) and not work.done():
                    changed.clear()
                    waiter = asyncio.create_task(changed.wait())
                    await asyncio.wait({work, waiter}, return_when=asyncio.FIRST_COMPLETED)
                    waiter.cancel()
            finally:
                if not work.done():
                    work.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await work
            while self.leads(name):  # finished by itself: wait for the lead to go before a rerun
                changed.clear()
                await changed.wait()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="mtbridge-leadership")

    async def stop(self) -> None:
        await cancel_and_wait([self._task])
        self._task = None
        self._drop_all()
        await self._close()

    def _set(self, name: str, held: bool) -> None:
        if held == (name in self._held):
            return
        if held:
            self._held.add(name)
            logger.info("leadership: this node now leads %s", name)
        else:
            self._held.discard(name)
            logger.warning("leadership: this node no longer leads %s", name)
        self.transitions += 1
        self._changed.setdefault(name, asyncio.Event()).set()

    def _drop_all(self) -> None:
        for name in list(self._held):
            self._set(name, False)

    async def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), CHECK_TIMEOUT)
            if not conn.is_closed():
                conn.terminate()

    async def _open(self) -> Any:
        if self._connect is not None:
            return await self._connect(self.dsn)
        import asyncpg

        return await asyncpg.connect(
            self.dsn, timeout=CHECK_TIMEOUT, server_settings={"application_name": "mtbridge-leader",
                                                              **KEEPALIVE_SETTINGS}
        )  # fmt: skip

    async def _loop(self) -> None:
        while True:
            try:
                if self._conn is None or self._conn.is_closed():
                    self._drop_all()
                    self._conn = await self._open()
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._held:
                    logger.warning("leadership: database session lost (%s); stepping down", exc)
                self._drop_all()
                await self._close()
                await asyncio.sleep(RECONNECT_DELAY)
                continue
            await asyncio.sleep(LEADER_POLL)

    async def tick(self) -> None:
        """One round: check the session holding our locks, then try for the locks we lack."""
        conn = self._conn
        async with asyncio.timeout(CHECK_TIMEOUT):
            if self._held:
                await conn.fetchval("SELECT 1")
            for name in sorted(self._names - self._held):
                if await conn.fetchval("SELECT pg_try_advisory_lock($1)", advisory_key(name)):
                    self._set(name, True)
