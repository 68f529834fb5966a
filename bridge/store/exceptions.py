"""Exceptions raised by every :class:`~bridge.store.base.Store` implementation.

Driver errors (SQLAlchemy, aiosqlite/sqlite3, asyncpg, OSError) never cross the store boundary; they are
translated by :func:`bridge.store.translate.wrap_exceptions` into this tree::

    StoreError                  base; ``retryable`` says whether the same call may succeed later
    ├── StoreUnavailable        database unreachable, locked, connection lost, commit outcome unknown
    │                           (retryable: writes keyed by an id are idempotent, so retrying is safe)
    ├── StoreClosed             the store is not started or already closed
    ├── StoreConflict           an integrity constraint failed (not retryable)
    ├── MigrationError          the schema could not be brought to the expected revision
    └── InvalidCursor           a pagination cursor this store did not issue (also a ValueError)

:func:`is_unavailable` is the one classification of a driver error as "the database is not there
now" (retryable, answered ``unavailable``) against everything else (a bug or bad data: not retried).
"""

from __future__ import annotations

__all__ = [
    "UNAVAILABLE_SQLSTATES",
    "InvalidCursor",
    "MigrationError",
    "StoreClosed",
    "StoreConflict",
    "StoreError",
    "StoreUnavailable",
    "is_unavailable",
    "may_be_one_item",
    "split_failed_batch",
]

#: SQLSTATEs that mean the server cannot serve now but may soon (PostgreSQL appendix A): class 08
#: (connection exception) is matched by its prefix; 57P01 admin_shutdown (``pg_ctl stop``), 57P02
#: crash_shutdown, 57P03 cannot_connect_now ("the database system is starting up", or a standby
#: not accepting connections), 53300 too_many_connections, 53000 insufficient_resources.
UNAVAILABLE_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "53300", "53000"})
#: How deep :func:`is_unavailable` follows ``orig``/``__cause__``/``__context__`` links.
_MAX_CHAIN = 8


class StoreError(Exception):
    """Base class; ``retryable`` tells the hub whether to answer with a retryable error."""

    retryable: bool = False

    def __init__(self, message: str, *, operation: str | None = None) -> None:
        super().__init__(message)
        self.operation = operation


class StoreUnavailable(StoreError):
    """The database could not be reached or did not confirm the commit; retrying the call is safe."""

    retryable = True


class StoreClosed(StoreError):
    """The store was used before :meth:`start` or after :meth:`close`."""


class StoreConflict(StoreError):
    """A constraint rejected the write (a bug or a concurrent writer outside this store)."""


class MigrationError(StoreError):
    """Running the Alembic migrations failed."""


class InvalidCursor(StoreError, ValueError):
    """A pagination cursor that this store did not issue."""


def may_be_one_item(error: BaseException) -> bool:
    """The one retry rule for a batch of independent writes that failed together: whether the failure
    may belong to one item alone, so that re-running the items one at a time lets the others succeed.

    A retryable failure (the database is away) fails every item alike: each caller is answered
    ``unavailable`` and retries by its own id, so re-running the batch item by item would only
    triple the load on a database that is already down. Any other failure (a constraint, bad data,
    a bug in one item's path) may be one item's."""
    return not (isinstance(error, StoreError) and error.retryable)


def split_failed_batch(error: BaseException, size: int) -> bool:
    """Whether a failed batch of ``size`` items is re-run one item at a time (:func:`may_be_one_item`).
    Used by the hub's publication batches and the ledger's trade-event and ack batches; the store's
    writer also re-runs a lone operation, without its fast path (bridge/store/writer.py)."""
    return size > 1 and may_be_one_item(error)


def is_unavailable(error: BaseException) -> bool:
    """Whether ``error`` (or what it wraps) says the database is unreachable or not accepting work
    now, so that the same call may succeed later.

    Driver-neutral: it reads SQLSTATEs (asyncpg's ``sqlstate``, SQLAlchemy's adapted ``pgcode``)
    and OS-level connection errors (refused, reset, broken pipe, timeouts, DNS), following
    SQLAlchemy's ``orig`` and Python's exception chain."""
    seen: set[int] = set()
    todo: list[BaseException] = [error]
    while todo and len(seen) < _MAX_CHAIN:
        e = todo.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, StoreUnavailable | OSError | TimeoutError):
            return True  # ConnectionRefusedError, ConnectionResetError, BrokenPipeError, gaierror
        state = getattr(e, "sqlstate", None) or getattr(e, "pgcode", None)
        if isinstance(state, str) and (state.startswith("08") or state in UNAVAILABLE_SQLSTATES):
            return True
        for link in (getattr(e, "orig", None), e.__cause__, e.__context__):
            if isinstance(link, BaseException):
                todo.append(link)
    return False
