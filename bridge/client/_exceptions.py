"""Exceptions raised by the SDK.

Tree::

    ClientError
    ├── ConnectError            the hub could not be reached (and no retry was asked for)
    ├── AuthenticationFailed    the hub refused the token (code: token_invalid, token_expired, ...)
    ├── ConnectionClosed        the connection ended; ``code``/``reason`` from the close frame
    │   └── ClientClosed        the client was closed (by the application or terminally)
    ├── RequestError            the hub answered a request with ``error`` (code, retryable, details)
    ├── RequestTimeout          no ``result`` within the timeout
    └── RecoveryFailed          a resubscribe could not recover the gap (``recovered: false``)
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AuthenticationFailed",
    "ClientClosed",
    "ClientError",
    "ConnectError",
    "ConnectionClosed",
    "RecoveryFailed",
    "RequestError",
    "RequestTimeout",
]


class ClientError(Exception):
    """Base of every SDK exception."""


class ConnectError(ClientError):
    """The transport could not open a connection to the hub."""


class AuthenticationFailed(ClientError):
    """The hub refused the token; ``code`` is the protocol error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class ConnectionClosed(ClientError):
    """The connection ended before the operation completed."""

    def __init__(self, code: int | None, reason: str = "") -> None:
        super().__init__(f"connection closed ({code} {reason})".strip())
        self.code = code
        self.reason = reason


class ClientClosed(ConnectionClosed):
    """The client is closed for good: by :meth:`Client.close` or a terminal close code."""


class RequestError(ClientError):
    """The hub answered a request with an ``error`` envelope."""

    def __init__(
        self, code: str, message: str, retryable: bool, payload: dict[str, Any] | None = None
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.retryable = retryable
        self.payload = payload or {}

    @property
    def details(self) -> list[Any]:
        """Field errors of ``validation_failed`` (empty otherwise)."""
        details = self.payload.get("details")
        return details if isinstance(details, list) else []


class RequestTimeout(ClientError):
    """No answer within the request timeout; the request may or may not have taken effect."""

    def __init__(self, mtype: str, timeout: float) -> None:
        super().__init__(f"no answer to {mtype} within {timeout:g} s")
        self.type = mtype
        self.timeout = timeout


class RecoveryFailed(ClientError):
    """A (re)subscribe could not recover the gap: the application must reload state, then continue.

    The subscription stays live from ``offset``; what was published in between was not delivered.
    """

    def __init__(
        self, channel: str, reason: str, advice: str, since: int | None, offset: int, epoch: str | None
    ) -> None:
        super().__init__(f"{channel}: recovery failed ({reason}) after offset {since}; {advice}")
        self.channel = channel
        self.reason = reason
        self.advice = advice
        self.since = since
        self.offset = offset
        self.epoch = epoch
