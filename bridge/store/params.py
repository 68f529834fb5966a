"""How Python values become parameters of the SQL store's statements: JSON text, IN lists cut to the
drivers' bind-parameter limits, and row sets as one jsonb parameter on PostgreSQL.

Shared by the store's reads (:mod:`bridge.store.sql`), its log writer (:mod:`bridge.store.logwriter`)
and its batch executor (:mod:`bridge.store.executor`); the statements themselves are in
:mod:`bridge.store.queries`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Final

import orjson
import sqlalchemy as sa

__all__ = [
    "IN_CHUNK",
    "PG_ARRAY_CHUNK",
    "chunks",
    "dumps",
    "json_rows",
    "loads",
    "write_rows",
]

#: Rows per ``IN (...)`` list, below SQLite's and asyncpg's bind-parameter limits.
IN_CHUNK: Final = 900
#: Rows per array or jsonb parameter on PostgreSQL (neither has a bind-parameter limit).
PG_ARRAY_CHUNK: Final = 10_000


def dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def loads(text: str) -> Any:
    return orjson.loads(text)


def chunks(items: Sequence[Any], size: int = IN_CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def json_rows(rows: Sequence[Sequence[Any]]) -> str:
    """Rows as the jsonb parameter of a PostgreSQL statement over :func:`~bridge.store.queries.json_rows`."""
    return orjson.dumps(rows).decode()


def write_rows(
    conn: sa.Connection, dialect: str, sql: str, pg_rows_sql: str, rows: list[tuple[Any, ...]]
) -> None:
    """Run a write once per row: ``executemany`` of ``sql`` on SQLite (rows cost microseconds in-process),
    one statement over all the rows (``pg_rows_sql``, :func:`~bridge.store.queries.json_rows`) on
    PostgreSQL, where asyncpg's executemany makes the server execute the statement once per row."""
    if not rows:
        return
    if dialect == "postgresql":
        conn.exec_driver_sql(pg_rows_sql, (json_rows(rows),))
    else:
        conn.exec_driver_sql(sql, rows)
