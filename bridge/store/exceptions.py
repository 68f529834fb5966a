"""Exceptions raised by every :class:`~bridge.store.base.Store` implementation.

Driver errors (SQLAlchemy, aiosqlite/sqlite3, asyncpg, OSError) never cross the store boundary; they are
translated by :func:`bridge.store.sql.wrap_exceptions` into this tree::

    StoreError                  base; ``retryable`` says whether the same call may succeed later
    ├── StoreUnavailable        database unreachable, locked, connection lost, commit outcome unknown
    │                           (retryable: writes keyed by an id are idempotent, so retrying is safe)
    ├── StoreClosed             the store is not started or already closed
    ├── StoreConflict           an integrity constraint failed (not retryable)
    ├── MigrationError          the schema could not be brought to the expected revision
    └── InvalidCursor           a pagination cursor this store did not issue (also a ValueError)
"""

from __future__ import annotations

__all__ = [
    "InvalidCursor",
    "MigrationError",
    "StoreClosed",
    "StoreConflict",
    "StoreError",
    "StoreUnavailable",
]


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
