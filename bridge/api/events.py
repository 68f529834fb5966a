"""Trade events: list, filter, paginate, export CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, status
from fastapi.responses import StreamingResponse

from bridge.api.deps import BearerClaims, ServicesDep
from bridge.protocol.channels import Role, holds_account
from bridge.protocol.events import EVENT_CSV_COLUMNS, EventKind, event_csv_row
from bridge.store.base import MAX_PAGE_SIZE, EventFilter, StoredEvent

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["trade events"])


def event_json(e: StoredEvent) -> dict[str, Any]:
    return {
        "seq": e.seq,
        "id": e.id,
        "kind": e.kind,
        "account": e.account,
        "signalId": e.signal_id,
        "ts": e.ts,
        "receivedAt": e.received_at_ms,
        "payload": e.payload,
    }


def _filters(
    claims: Any,
    account: str | None,
    kind: EventKind | None,
    signal_id: str | None,
    since: int | None,
    until: int | None,
) -> EventFilter:
    if (
        claims.role in (Role.EA, Role.ENGINE)
        and (account is None or not holds_account(claims.accounts, account))
        and not (account is None and "*" in claims.accounts)
    ):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, {"code": "forbidden", "message": "name an account you hold"}
        )
    return EventFilter(account=account, kind=kind, signal_id=signal_id, since_ms=since, until_ms=until)


@router.get("/events")
async def list_events(
    services: ServicesDep,
    claims: BearerClaims,
    account: str | None = None,
    kind: EventKind | None = None,
    signalId: str | None = None,
    since: Annotated[int | None, Query(description="ts >= since (unix ms)")] = None,
    until: Annotated[int | None, Query(description="ts < until (unix ms)")] = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 100,
) -> dict[str, Any]:
    """Trade events, newest first, cursor-paginated."""
    filters = _filters(claims, account, kind, signalId, since, until)
    page = await services.store.list_events(filters, cursor=cursor, limit=limit)
    return {"items": [event_json(e) for e in page.items], "nextCursor": page.next_cursor}


@router.get("/events.csv")
async def export_events(
    services: ServicesDep,
    claims: BearerClaims,
    account: str | None = None,
    kind: EventKind | None = None,
    signalId: str | None = None,
    since: int | None = None,
    until: int | None = None,
) -> StreamingResponse:
    """Every matching event, oldest first, as CSV (streamed)."""
    filters = _filters(claims, account, kind, signalId, since, until)

    async def rows() -> AsyncIterator[str]:
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(EVENT_CSV_COLUMNS)
        async for event in services.store.iter_events(filters):
            writer.writerow(event_csv_row(event.payload))
            if buf.tell() > 64 * 1024:
                yield buf.getvalue()
                buf.seek(0)
                buf.truncate()
        yield buf.getvalue()

    return StreamingResponse(
        rows(),
        media_type="text/csv",
        headers={"Content-Disposition": 'attachment; filename="trade-events.csv"'},
    )
