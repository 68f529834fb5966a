"""The one validation of REST query values: their types and ranges, and the 400 a bad one gets.

A query value is part of the request's shape, like an envelope field on the WebSocket: a bad one
is answered ``400 {"detail": {"code": "bad_request", "field": ..., "message": ...}}`` before any
handler runs, so no malformed value reaches the store (where a 400-digit cursor or ``since=2**70``
used to end as a 500 with a traceback, and ``events.csv`` as a 200 cut off mid-body). Bodies keep
FastAPI's 422 with the pydantic errors (a signal that fails validation is ``validation_failed``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query, Request
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

__all__ = [
    "MAX_CURSOR_DIGITS",
    "MAX_TIME_MS",
    "Cursor",
    "Since",
    "Until",
    "bad_query",
    "query_validation_handler",
]

#: A cursor is a store sequence number: up to 18 digits, below SQLite's and PostgreSQL's signed
#: 64-bit integers (19 digits can overflow them; ``2**63`` did).
MAX_CURSOR_DIGITS = 18
#: Largest unix-ms time accepted (2**53 - 1, the largest integer a JavaScript number holds exactly;
#: the year 287,396). Both ends are far inside a signed 64-bit column.
MAX_TIME_MS = 2**53 - 1

Cursor = Annotated[
    str | None,
    Query(
        pattern=rf"^[0-9]{{1,{MAX_CURSOR_DIGITS}}}$",
        description="`nextCursor` of the previous page",
    ),
]
Since = Annotated[int | None, Query(ge=0, le=MAX_TIME_MS, description="time >= since (unix ms)")]
Until = Annotated[int | None, Query(ge=0, le=MAX_TIME_MS, description="time < until (unix ms)")]


def bad_query(field: str, message: str, details: list[dict[str, str]] | None = None) -> JSONResponse:
    """The 400 of a bad query value; the same shape as the hub's other REST errors."""
    detail: dict[str, Any] = {"code": "bad_request", "field": field, "message": message}
    if details is not None:
        detail["details"] = details
    return JSONResponse(status_code=400, content={"detail": detail})


async def query_validation_handler(request: Request, exc: Exception) -> JSONResponse:
    """Query-string errors: 400 naming the first bad field (``details`` lists them all); any other
    request validation error keeps FastAPI's 422."""
    assert isinstance(exc, RequestValidationError)
    errors = [e for e in exc.errors() if tuple(e.get("loc", ("",)))[:1] == ("query",)]
    if not errors:
        return await request_validation_exception_handler(request, exc)
    details = [
        {"field": str(e["loc"][-1]), "code": str(e.get("type", "invalid")), "message": str(e.get("msg", ""))}
        for e in errors
    ]
    field = details[0]["field"]
    return bad_query(field, f"{field}: {details[0]['message']}", details)
