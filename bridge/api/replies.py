"""The REST answer of a reply error: the HTTP status of every :class:`~bridge.protocol.codes.Error`
and the one constructor of the API's error body ``{"detail": {"code", "message", ...}}``.

Every REST failure that names a code goes through :func:`api_error` (a handler's own refusal) or
:func:`hub_error` (a refusal of the hub, the ledger or the cluster), so the status of a code is
decided here and only here. :data:`HTTP_STATUS` and :data:`WEBSOCKET_ONLY` together cover every
``Error`` (checked below at import, and by tests/api/test_replies.py): a code added to the registry
without a REST status is a failing test, not a silent 400. Failures that are not the handler's
(bad query values, the store away) are answered in :mod:`bridge.api.errors` and
:mod:`bridge.api.params` with the same statuses.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from fastapi import HTTPException, status

from bridge.hub.hub import HubError
from bridge.protocol.codes import Error

__all__ = ["HTTP_STATUS", "WEBSOCKET_ONLY", "api_error", "http_status", "hub_error"]

logger = logging.getLogger("mtbridge.api")

#: The HTTP status of each reply error a REST request can be answered with.
HTTP_STATUS: dict[Error, int] = {
    Error.BAD_REQUEST: status.HTTP_400_BAD_REQUEST,
    Error.INVALID_CHANNEL: status.HTTP_400_BAD_REQUEST,
    Error.UNKNOWN_NAMESPACE: status.HTTP_400_BAD_REQUEST,
    Error.BAD_OFFSET: status.HTTP_400_BAD_REQUEST,
    # The bearer token (bridge.api.deps.bearer_claims), with ``WWW-Authenticate: Bearer``.
    Error.TOKEN_INVALID: status.HTTP_401_UNAUTHORIZED,
    Error.TOKEN_EXPIRED: status.HTTP_401_UNAUTHORIZED,
    Error.TOKEN_REVOKED: status.HTTP_401_UNAUTHORIZED,
    Error.FORBIDDEN: status.HTTP_403_FORBIDDEN,
    Error.NOT_FOUND: status.HTTP_404_NOT_FOUND,
    Error.NOT_SUBSCRIBED: status.HTTP_404_NOT_FOUND,
    Error.PAUSED: status.HTTP_409_CONFLICT,
    Error.ALREADY_SUBSCRIBED: status.HTTP_409_CONFLICT,
    Error.TOO_MANY_SUBSCRIPTIONS: status.HTTP_409_CONFLICT,
    Error.VALIDATION_FAILED: status.HTTP_422_UNPROCESSABLE_CONTENT,
    # A hub fault: a store error that is not an outage (bridge.api.errors), or a peer node's
    # refusal with a code this node does not know (bridge.cluster.subscriptions).
    Error.INTERNAL: status.HTTP_500_INTERNAL_SERVER_ERROR,
    Error.UNAVAILABLE: status.HTTP_503_SERVICE_UNAVAILABLE,
}

#: Reply errors only the WebSocket protocol gives: a frame's encoding and type, the ``auth``
#: exchange, and the per-connection rate limit and in-flight bound (REST has neither).
WEBSOCKET_ONLY: frozenset[Error] = frozenset(
    {
        Error.INVALID_JSON,
        Error.INVALID_MSGPACK,
        Error.UNKNOWN_TYPE,
        Error.AUTH_REQUIRED,
        Error.ALREADY_AUTHENTICATED,
        Error.SUBJECT_MISMATCH,
        Error.RATE_LIMITED,
    }
)

assert not WEBSOCKET_ONLY & HTTP_STATUS.keys(), "a code is either answered over REST or WebSocket-only"
assert WEBSOCKET_ONLY | HTTP_STATUS.keys() == set(Error), "every Error has a REST status or is WebSocket-only"


def http_status(code: Error) -> int:
    """The status of ``code``; a WebSocket-only code that reaches REST is a bug, logged, and
    answered 400 (the request could not be served as sent)."""
    answer = HTTP_STATUS.get(code)
    if answer is None:
        logger.error("WebSocket-only reply error %r reached a REST answer", code.value)
        return status.HTTP_400_BAD_REQUEST
    return answer


def api_error(
    code: Error,
    message: str,
    *,
    status_code: int | None = None,
    headers: Mapping[str, str] | None = None,
    **extra: object,
) -> HTTPException:
    """``{"detail": {"code", "message", **extra}}`` with the status of ``code`` (``status_code``
    overrides it for the rare answer that says more, e.g. 504 for a node that did not answer)."""
    return _answer(code, message, extra, status_code, headers)


def hub_error(exc: HubError, **extra: object) -> HTTPException:
    """The REST answer to a refused hub request: ``{"detail": {code, message, ...}}``."""
    return _answer(exc.code, exc.message, {**exc.extra, **extra}, None, None)


def _answer(
    code: Error,
    message: str,
    extra: Mapping[str, object],
    status_code: int | None,
    headers: Mapping[str, str] | None,
) -> HTTPException:
    # ``extra`` is a plain mapping, not keywords: a peer node's refusal may carry any field name.
    return HTTPException(
        http_status(code) if status_code is None else status_code,
        {"code": code, "message": message, **extra},
        headers=dict(headers) if headers is not None else None,
    )
