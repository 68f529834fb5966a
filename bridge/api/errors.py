"""How REST answers failures that are not the handler's own: bad query values (400, see
:mod:`bridge.api.params`), a cursor the store refuses (400), the database being away (503
``unavailable`` with ``Retry-After``), any other store error (500 ``internal``, logged once).

Every error body has the shape ``{"detail": {"code", "message", ...}}``; :data:`ERROR_RESPONSES`
declares it in the OpenAPI schema for every operation, so clients (and the schema-driven tests)
know every status the hub may answer. The status of each code is decided in
:mod:`bridge.api.replies`, which also builds the handlers' own refusals.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from bridge.api.params import UnknownQuery, bad_query, query_validation_handler, unknown_query_handler
from bridge.api.replies import HTTP_STATUS
from bridge.protocol.codes import Error
from bridge.store.exceptions import InvalidCursor, StoreError

__all__ = ["ERROR_RESPONSES", "ErrorBody", "install"]

logger = logging.getLogger("mtbridge.api")

#: Seconds a client should wait before retrying a request answered 503 ``unavailable``.
RETRY_AFTER = 1


class ErrorDetail(BaseModel):
    code: str
    message: str
    field: str | None = None
    details: list[dict[str, Any]] | None = None
    #: Why a subscription managed over REST was refused (``foreign_account``, ...).
    reason: str | None = None
    #: The connections of a subject that refused, or whose node could not be asked.
    refused: list[dict[str, Any]] | None = None


class ErrorBody(BaseModel):
    """``detail`` is an object with ``code`` and ``message`` (a plain string for a few framework
    answers, e.g. 401 "bearer token required")."""

    detail: ErrorDetail | str


_TEXT = {"content": {"text/plain": {"schema": {"type": "string"}}}}

#: Responses every operation may give besides its own success, as OpenAPI declares them.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "a query value is malformed or out of range (`field` names it)"},
    401: {"model": ErrorBody, "description": "bearer token missing, invalid, expired or revoked"},
    403: {"model": ErrorBody, "description": "the token's role or accounts do not allow this"},
    404: {"model": ErrorBody, "description": "no such object"},
    408: {"description": "the request body did not arrive within `http_body_timeout`", **_TEXT},
    409: {"model": ErrorBody, "description": "conflict with the hub's state (e.g. paused)"},
    413: {"description": "the request body is over `max_request_bytes`", **_TEXT},
    422: {"model": ErrorBody, "description": "the request body failed validation"},
    431: {"description": "the request headers are over 64 KiB", **_TEXT},
    500: {"model": ErrorBody, "description": "hub fault (`internal`): retry with backoff"},
    503: {"model": ErrorBody, "description": "database or hub unavailable: retry after `Retry-After`"},
}


async def _store_error(request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, InvalidCursor):
        return bad_query("cursor", "cursor: not a cursor this hub issued")
    assert isinstance(exc, StoreError)
    if exc.retryable:
        # The store's outage log tells the story once; no line per request.
        return JSONResponse(
            status_code=HTTP_STATUS[Error.UNAVAILABLE],
            content={"detail": {"code": Error.UNAVAILABLE, "message": "database unavailable; retry"}},
            headers={"Retry-After": str(RETRY_AFTER)},
        )
    logger.error("%s %s: store error", request.method, request.url.path, exc_info=exc)
    body = {"detail": {"code": Error.INTERNAL, "message": "internal error"}}
    return JSONResponse(status_code=HTTP_STATUS[Error.INTERNAL], content=body)


def install(app: FastAPI) -> None:
    """Register the handlers on ``app``."""
    app.add_exception_handler(RequestValidationError, query_validation_handler)
    app.add_exception_handler(UnknownQuery, unknown_query_handler)
    app.add_exception_handler(StoreError, _store_error)
