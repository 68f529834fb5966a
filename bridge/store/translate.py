"""The store boundary for errors: :func:`wrap_exceptions` turns driver errors (SQLAlchemy, sqlite3,
asyncpg, OSError) into :mod:`bridge.store.exceptions` and tells the outage log.

Lives here because both the SQL store's reads (:mod:`bridge.store.sql`) and its writer
(:mod:`bridge.store.writer`) cross the boundary through it; which driver error is retryable is decided
once, by :func:`~bridge.store.exceptions.is_unavailable`, not here.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator

from sqlalchemy import exc

from bridge.store.exceptions import StoreConflict, StoreError, StoreUnavailable, is_unavailable
from bridge.store.outage import OutageLog, describe

__all__ = ["wrap_exceptions"]


@contextlib.contextmanager
def wrap_exceptions(operation: str, outage: OutageLog | None = None, rows: int = 1) -> Iterator[None]:
    """Translate driver errors into :mod:`bridge.store.exceptions` at the store boundary.

    :func:`~bridge.store.exceptions.is_unavailable` decides what is retryable (``StoreUnavailable``);
    ``outage``, when given, hears of every retryable failure (``rows`` requests refused) and of every
    success, and logs the outage in a handful of lines instead of one per request."""
    try:
        with _translate(operation):
            yield
    except StoreUnavailable as error:
        if outage is not None:
            outage.failed(error, rows)
        raise
    if outage is not None:
        outage.succeeded()


@contextlib.contextmanager
def _translate(operation: str) -> Iterator[None]:
    try:
        yield
    except StoreError:
        raise
    except exc.IntegrityError as error:
        raise StoreConflict(f"{operation}: constraint violated", operation=operation) from error
    except Exception as error:
        if is_unavailable(error):
            raise StoreUnavailable(
                f"{operation}: database unavailable ({describe(error)})", operation=operation
            ) from error
        if isinstance(error, exc.OperationalError | exc.InterfaceError):
            text = str(error.orig).lower() if error.orig is not None else ""
            if "no such table" in text or "no such column" in text:
                message = f"{operation}: schema missing, run migrations"
                raise StoreError(message, operation=operation) from error
            raise StoreUnavailable(f"{operation}: database unavailable", operation=operation) from error
        if isinstance(error, exc.DBAPIError) and error.connection_invalidated:
            raise StoreUnavailable(f"{operation}: connection lost", operation=operation) from error
        if isinstance(error, exc.TimeoutError | sqlite3.OperationalError):
            raise StoreUnavailable(f"{operation}: no connection available", operation=operation) from error
        if isinstance(error, exc.SQLAlchemyError):
            raise StoreError(f"{operation}: database error", operation=operation) from error
        raise
