"""Durable storage of the hub: channel logs, the signals ledger, trade events, accounts, revocations.

``open_store(url)`` picks the implementation: ``memory://`` for :class:`MemoryStore`, otherwise a SQLAlchemy
URL (``sqlite+aiosqlite:///path.db``, ``postgresql+asyncpg://user@host/db``) for :class:`SQLStore`.
The contract is :mod:`bridge.store.base`; where a write becomes durable (group commit, the SQLite and
PostgreSQL writers) is mapped in the docstring of :mod:`bridge.store.sql`.
"""

from __future__ import annotations

from typing import Any

from bridge.store.base import (
    Account,
    Appended,
    AppendRequest,
    Delivery,
    EventFilter,
    EventRecord,
    EventWrite,
    Page,
    Position,
    RetentionResult,
    Revocation,
    SignalFilter,
    SignalView,
    StatusUpdate,
    Store,
    Stored,
    StoredEvent,
)
from bridge.store.exceptions import (
    InvalidCursor,
    MigrationError,
    StoreClosed,
    StoreConflict,
    StoreError,
    StoreUnavailable,
)
from bridge.store.memory import MemoryStore
from bridge.store.sql import SQLStore

__all__ = [
    "Account",
    "AppendRequest",
    "Appended",
    "Delivery",
    "EventFilter",
    "EventRecord",
    "EventWrite",
    "InvalidCursor",
    "MemoryStore",
    "MigrationError",
    "Page",
    "Position",
    "RetentionResult",
    "Revocation",
    "SQLStore",
    "SignalFilter",
    "SignalView",
    "StatusUpdate",
    "Store",
    "StoreClosed",
    "StoreConflict",
    "StoreError",
    "StoreUnavailable",
    "Stored",
    "StoredEvent",
    "open_store",
]


async def open_store(url: str, *, migrate: bool = True, **options: Any) -> Store:
    """Create, start and (by default) migrate the store for ``url``; the caller must ``await store.close()``.

    ``options`` go to :class:`SQLStore` (``schema``, ``sqlite_synchronous``, ``clock``, ...) or, for
    ``memory://``, to :class:`MemoryStore` (``clock``).
    """
    store: Store = MemoryStore(**options) if url.startswith("memory:") else SQLStore(url, **options)
    await store.start()
    if migrate:
        try:
            await store.migrate()
        except BaseException:
            await store.close()
            raise
    return store
