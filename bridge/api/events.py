"""Trade events: list, filter, paginate, export CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from bridge.api.deps import BearerClaims, ServicesDep
from bridge.api.params import Account, Cursor, SignalId, Since, Until
from bridge.api.replies import api_error
from bridge.auth.tokens import Claims
from bridge.protocol.channels import Role, holds_account
from bridge.protocol.codes import Error
from bridge.protocol.event_csv import EVENT_CSV_COLUMNS, event_csv_row
from bridge.protocol.events import EventKind
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
    claims: Claims,
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
        raise api_error(Error.FORBIDDEN, "name an account you hold")
    return EventFilter(account=account, kind=kind, signal_id=signal_id, since_ms=since, until_ms=until)


@router.get("/events")
async def list_events(
    services: ServicesDep,
    claims: BearerClaims,
    account: Account = None,
    kind: EventKind | None = None,
    signalId: SignalId = None,
    since: Since = None,
    until: Until = None,
    cursor: Cursor = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 100,
) -> dict[str, Any]:
    """Trade events, newest first, cursor-paginated."""
    filters = _filters(claims, account, kind, signalId, since, until)
    page = await services.store.list_events(filters, cursor=cursor, limit=limit)
    return {"items": [event_json(e) for e in page.items], "nextCursor": page.next_cursor}


@router.get(
    "/events.csv",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}, "description": "CSV"}},
)
async def export_events(
    services: ServicesDep,
    claims: BearerClaims,
    account: Account = None,
    kind: EventKind | None = None,
    signalId: SignalId = None,
    since: Since = None,
    until: Until = None,
) -> StreamingResponse:
    """Every matching event, oldest first, as CSV (streamed). Text cells that a spreadsheet would
    run as a formula are prefixed with ``'`` (see docs/configuration.md, "REST API")."""
    filters = _filters(claims, account, kind, signalId, since, until)
    events = aiter(services.store.iter_events(filters))
    # The first read happens before the 200 is sent: a bad filter or an unavailable database is
    # answered with its status (400, 503), not with a 200 whose body breaks off.
    first = await anext(events, None)

    async def rows() -> AsyncIterator[str]:
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(EVENT_CSV_COLUMNS)
        if first is not None:
            writer.writerow(event_csv_row(first.payload))
            async for event in events:
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
