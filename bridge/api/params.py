"""The one validation of REST query values: their types and ranges, and the 400 a bad one gets.

A query value is part of the request's shape, like an envelope field on the WebSocket: a bad one
is answered ``400 {"detail": {"code": "bad_request", "field": ..., "message": ...}}`` before any
handler runs, so no malformed value reaches the store (where a 400-digit cursor or ``since=2**70``
used to end as a 500 with a traceback, and ``events.csv`` as a 200 cut off mid-body). A body that
fails validation is 422 ``validation_failed`` with the same ``details`` list as a signal's.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from bridge.api.replies import HTTP_STATUS
from bridge.protocol.codes import Error

__all__ = [
    "MAX_CURSOR_DIGITS",
    "MAX_TIME_MS",
    "SIGNAL_ID_PATTERN",
    "Account",
    "Cursor",
    "SignalId",
    "SignalIdPath",
    "Since",
    "Strategy",
    "UnknownQuery",
    "Until",
    "bad_query",
    "query_validation_handler",
    "strict_query",
    "unknown_query_handler",
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
Account = Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_-]{1,32}$", description="an account (MT5 login)")]
Strategy = Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="a strategy name")]
#: Signal ids are UUIDs; the pattern keeps bytes PostgreSQL refuses (NUL) away from the database.
SIGNAL_ID_PATTERN = r"^[0-9A-Za-z-]{1,36}$"
SignalId = Annotated[str | None, Query(pattern=SIGNAL_ID_PATTERN, description="a signal id (UUID)")]
SignalIdPath = Annotated[str, Path(pattern=SIGNAL_ID_PATTERN, description="a signal id (UUID)")]
Since = Annotated[int | None, Query(ge=0, le=MAX_TIME_MS, description="time >= since (unix ms)")]
Until = Annotated[int | None, Query(ge=0, le=MAX_TIME_MS, description="time < until (unix ms)")]


async def strict_query(request: Request) -> None:
    """Refuse query parameters the operation does not declare: a typo such as ``?acount=50123``
    would otherwise be ignored and list every account's events."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return
    known = _known_query(dependant)
    for name in request.query_params:
        if name not in known:
            raise UnknownQuery(name)


def _known_query(dependant: Any) -> frozenset[str]:
    """The query names of a route and its dependencies (a walk over a handful of objects)."""
    names: set[str] = set()
    todo = [dependant]
    while todo:
        current = todo.pop()
        names.update(p.alias for p in current.query_params)
        todo.extend(current.dependencies)
    return frozenset(names)


class UnknownQuery(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


async def unknown_query_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, UnknownQuery)
    field = exc.name[:64]
    return bad_query(field, f"unknown query parameter {field!r}")


def bad_query(field: str, message: str, details: list[dict[str, str]] | None = None) -> JSONResponse:
    """The 400 of a bad query value; the same shape as the hub's other REST errors."""
    detail: dict[str, Any] = {"code": Error.BAD_REQUEST, "field": field, "message": message}
    if details is not None:
        detail["details"] = details
    return JSONResponse(status_code=HTTP_STATUS[Error.BAD_REQUEST], content={"detail": detail})


async def query_validation_handler(request: Request, exc: Exception) -> JSONResponse:
    """Request validation errors in the hub's error shape. Query values: 400 ``bad_request``
    naming the first bad field; anything else (the body): 422 ``validation_failed``. ``details``
    lists every error as ``{field, code, message}``, like a signal's ``validation_failed``."""
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    query = [e for e in errors if tuple(e.get("loc", ("",)))[:1] in (("query",), ("path",))]
    details = [_detail(e) for e in (query or errors)]
    field = details[0]["field"] if details else ""
    if query:
        return bad_query(field, f"{field}: {details[0]['message']}", details)
    message = f"{field}: {details[0]['message']}" if details else "request failed validation"
    return JSONResponse(
        status_code=HTTP_STATUS[Error.VALIDATION_FAILED],
        content={"detail": {"code": Error.VALIDATION_FAILED, "message": message[:500], "details": details}},
    )


def _detail(error: Any) -> dict[str, str]:
    loc = [str(part) for part in error.get("loc", ()) if part not in ("query", "path", "body")]
    return {
        "field": ".".join(loc) or "body",
        "code": str(error.get("type", "invalid")),
        "message": str(error.get("msg", ""))[:200],
    }
