"""Alembic environment of the store.

Used two ways: by :meth:`bridge.store.sql.SQLStore.migrate`, which passes an open connection in
``config.attributes["connection"]``; or from the ``alembic`` command line, where the URL comes from
``sqlalchemy.url`` in the ini file or the ``MTBRIDGE_DATABASE_URL`` environment variable.
"""

from __future__ import annotations

import asyncio
import os

import sqlalchemy as sa
from alembic import context
from sqlalchemy.ext.asyncio import create_async_engine

from bridge.store.schema import metadata

config = context.config


def _run(connection: sa.Connection) -> None:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


async def _run_from_url(url: str) -> None:
    from bridge.store.sql import normalize_url

    engine = create_async_engine(normalize_url(url))
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_run)
    finally:
        await engine.dispose()


def main() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = config.get_main_option("sqlalchemy.url") or os.environ.get("MTBRIDGE_DATABASE_URL")
    if not url:
        raise RuntimeError("set sqlalchemy.url or MTBRIDGE_DATABASE_URL")
    if context.is_offline_mode():
        context.configure(url=url, target_metadata=metadata, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    asyncio.run(_run_from_url(url))


main()
