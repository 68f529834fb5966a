"""Close codes and reply error codes: the one registry every client is written against.

Close-code ranges (WebSocket close frames, RFC 6455 section 7.4):

- 1000-1015: RFC 6455 codes (``websockets.frames.CloseCode``); 1001 means the hub is going away,
  reconnect with backoff.
- 4000-4499: *reconnect*. Something transient ended this connection; reconnect with exponential
  backoff and jitter, then recover every subscription by offset.
- 4500-4999: *terminal*. Reconnecting with the same credentials will fail the same way; stop and
  tell the operator (or obtain a new token first).

Reply errors (``error`` envelopes) are a separate registry of stable snake_case strings, each with
a ``retryable`` flag that says whether the same request may succeed if sent again later.

Close reasons are kept short: a close frame's payload is at most 125 bytes, 2 of which hold the code.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from websockets.frames import CloseCode

__all__ = [
    "AUTH_TIMEOUT",
    "CLOSE_CODES",
    "ERRORS",
    "FORBIDDEN",
    "GOING_AWAY",
    "HEARTBEAT_TIMEOUT",
    "INTERNAL_ERROR",
    "INVALID_PAYLOAD",
    "MESSAGE_TOO_BIG",
    "NORMAL",
    "OPERATOR_CLOSED",
    "PROTOCOL_ERROR",
    "RATE_LIMITED",
    "REJECT_REASONS",
    "SLOW_CONSUMER",
    "TOKEN_EXPIRED",
    "TOKEN_REVOKED",
    "TOO_MANY_BAD_MESSAGES",
    "TOO_MANY_CONNECTIONS",
    "UNAUTHORIZED",
    "UNSUPPORTED_PROTOCOL",
    "Disconnect",
    "Error",
    "ErrorCode",
    "RejectReason",
    "is_reconnect",
]

RECONNECT_RANGE = range(4000, 4500)
TERMINAL_RANGE = range(4500, 5000)
MAX_REASON_BYTES = 123


@dataclass(frozen=True, slots=True)
class Disconnect:
    """A close code with its short reason and whether a client should reconnect."""

    code: int
    reason: str
    reconnect: bool
    advice: str

    def __post_init__(self) -> None:
        if len(self.reason.encode()) > MAX_REASON_BYTES:
            raise ValueError("close reason longer than 123 bytes")


# RFC 6455 codes the hub sends.
NORMAL = Disconnect(CloseCode.NORMAL_CLOSURE, "normal", False, "The client asked to close; nothing to do.")
GOING_AWAY = Disconnect(
    CloseCode.GOING_AWAY, "hub shutting down", True, "Reconnect with backoff and jitter; recover by offset."
)
PROTOCOL_ERROR = Disconnect(
    CloseCode.PROTOCOL_ERROR,
    "protocol error",
    True,
    "A WebSocket framing error; fix the client, then reconnect.",
)
INVALID_PAYLOAD = Disconnect(
    CloseCode.INVALID_DATA, "invalid utf-8", True, "A text frame was not valid UTF-8; fix the client."
)
MESSAGE_TOO_BIG = Disconnect(
    CloseCode.MESSAGE_TOO_BIG, "message too big", True, "Keep messages under welcome.limits.maxMessageBytes."
)

# Reconnect range: transient, reconnect with backoff and recover by offset.
SLOW_CONSUMER = Disconnect(
    4001,
    "slow consumer",
    True,
    "Outbound queue overflowed on a lossless channel; reconnect and recover by offset.",
)
HEARTBEAT_TIMEOUT = Disconnect(4002, "heartbeat timeout", True, "No pong in time; reconnect.")
RATE_LIMITED = Disconnect(
    4003, "rate limited", True, "Sustained flood past the rate limit; back off, reconnect."
)
TOKEN_EXPIRED = Disconnect(
    4004, "token expired", True, "The token expired without auth.refresh; get a fresh token, then reconnect."
)
AUTH_TIMEOUT = Disconnect(4005, "auth timeout", True, "Send auth as the first message; reconnect.")
OPERATOR_CLOSED = Disconnect(
    4006, "closed by operator", True, "An operator closed this connection; reconnect."
)
TOO_MANY_CONNECTIONS = Disconnect(
    4007,
    "too many connections",
    True,
    "Per-subject or per-IP limit reached; back off longer, then reconnect.",
)
INTERNAL_ERROR = Disconnect(4008, "internal error", True, "Hub fault; reconnect with backoff.")

# Terminal range: do not reconnect with the same credentials.
UNAUTHORIZED = Disconnect(4500, "unauthorized", False, "The token is invalid; obtain a valid token.")
TOKEN_REVOKED = Disconnect(4501, "token revoked", False, "The token or subject was revoked; ask an operator.")
FORBIDDEN = Disconnect(4502, "forbidden", False, "The token's role may not use this endpoint.")
UNSUPPORTED_PROTOCOL = Disconnect(
    4503, "unsupported protocol", False, "Negotiate mtbridge.v1.json or mtbridge.v1.msgpack."
)
TOO_MANY_BAD_MESSAGES = Disconnect(
    4504, "too many bad messages", False, "The client keeps sending invalid messages; fix it."
)

CLOSE_CODES: dict[int, Disconnect] = {
    d.code: d
    for d in (
        NORMAL,
        GOING_AWAY,
        PROTOCOL_ERROR,
        INVALID_PAYLOAD,
        MESSAGE_TOO_BIG,
        SLOW_CONSUMER,
        HEARTBEAT_TIMEOUT,
        RATE_LIMITED,
        TOKEN_EXPIRED,
        AUTH_TIMEOUT,
        OPERATOR_CLOSED,
        TOO_MANY_CONNECTIONS,
        INTERNAL_ERROR,
        UNAUTHORIZED,
        TOKEN_REVOKED,
        FORBIDDEN,
        UNSUPPORTED_PROTOCOL,
        TOO_MANY_BAD_MESSAGES,
    )
}


def is_reconnect(code: int) -> bool:
    """Whether a client should reconnect after a close with ``code``."""
    if code in CLOSE_CODES:
        return CLOSE_CODES[code].reconnect
    return code not in TERMINAL_RANGE


class Error(StrEnum):
    """The name of every reply error: pass these, never a string literal, so that mypy rejects a
    code that is not in the registry (a typo cannot silently become ``internal``)."""

    BAD_REQUEST = "bad_request"
    INVALID_JSON = "invalid_json"
    INVALID_MSGPACK = "invalid_msgpack"
    UNKNOWN_TYPE = "unknown_type"
    AUTH_REQUIRED = "auth_required"
    ALREADY_AUTHENTICATED = "already_authenticated"
    TOKEN_INVALID = "token_invalid"
    TOKEN_EXPIRED = "token_expired"
    TOKEN_REVOKED = "token_revoked"
    SUBJECT_MISMATCH = "subject_mismatch"
    FORBIDDEN = "forbidden"
    INVALID_CHANNEL = "invalid_channel"
    UNKNOWN_NAMESPACE = "unknown_namespace"
    ALREADY_SUBSCRIBED = "already_subscribed"
    NOT_SUBSCRIBED = "not_subscribed"
    TOO_MANY_SUBSCRIPTIONS = "too_many_subscriptions"
    RATE_LIMITED = "rate_limited"
    VALIDATION_FAILED = "validation_failed"
    NOT_FOUND = "not_found"
    BAD_OFFSET = "bad_offset"
    PAUSED = "paused"
    UNAVAILABLE = "unavailable"
    INTERNAL = "internal"


@dataclass(frozen=True, slots=True)
class ErrorCode:
    """A reply error: stable code, whether retrying the same request can succeed, and advice."""

    code: Error
    retryable: bool
    advice: str


_ERRORS = (
    ErrorCode(
        Error.BAD_REQUEST,
        False,
        "The envelope's shape is wrong (unknown field, wrong type); fix the request.",
    ),
    ErrorCode(Error.INVALID_JSON, False, "The text frame is not a JSON object; fix the encoder."),
    ErrorCode(Error.INVALID_MSGPACK, False, "The binary frame is not a MessagePack map; fix the encoder."),
    ErrorCode(Error.UNKNOWN_TYPE, False, "The `type` is not part of protocol v1."),
    ErrorCode(Error.AUTH_REQUIRED, False, "Authenticate first with `auth`."),
    ErrorCode(Error.ALREADY_AUTHENTICATED, False, "Use `auth.refresh` to replace the token."),
    ErrorCode(Error.TOKEN_INVALID, False, "Signature, algorithm, audience, issuer or claims are wrong."),
    ErrorCode(Error.TOKEN_EXPIRED, False, "Obtain a fresh token."),
    ErrorCode(Error.TOKEN_REVOKED, False, "The token or its subject was revoked."),
    ErrorCode(Error.SUBJECT_MISMATCH, False, "auth.refresh must keep the same `sub` and `role`."),
    ErrorCode(Error.FORBIDDEN, False, "The token's claims do not allow this channel or command."),
    ErrorCode(
        Error.INVALID_CHANNEL, False, "Channel names are `namespace:rest`, 1-200 chars of [A-Za-z0-9:._-]."
    ),
    ErrorCode(Error.UNKNOWN_NAMESPACE, False, "Use signals:, account:<login>:, instrument: or system:."),
    ErrorCode(Error.ALREADY_SUBSCRIBED, False, "The connection already holds this subscription."),
    ErrorCode(Error.NOT_SUBSCRIBED, False, "There is no such subscription to remove."),
    ErrorCode(Error.TOO_MANY_SUBSCRIPTIONS, False, "Unsubscribe first; see welcome.limits.maxSubscriptions."),
    ErrorCode(Error.RATE_LIMITED, True, "Slow down; retry after `retryAfterMs`."),
    ErrorCode(Error.VALIDATION_FAILED, False, "The payload failed validation; see `details` for each field."),
    ErrorCode(Error.NOT_FOUND, False, "No such object."),
    ErrorCode(Error.BAD_OFFSET, False, "`since` must be an integer offset >= 0 for this channel."),
    ErrorCode(Error.PAUSED, True, "An operator paused this strategy or account; retry after resume."),
    ErrorCode(
        Error.UNAVAILABLE, True, "The hub cannot serve this now (store or broker down); retry with backoff."
    ),
    ErrorCode(Error.INTERNAL, True, "Hub fault; retry with backoff."),
)

ERRORS: dict[Error, ErrorCode] = {e.code: e for e in _ERRORS}
assert set(ERRORS) == set(Error), "every Error has exactly one ErrorCode row"


@dataclass(frozen=True, slots=True)
class RejectReason:
    """Why an EA refused a signal: the ``message`` of an ``order`` event with ``state: "rejected"``.

    ``code`` is the whole message, except for the trade server's refusals, whose message is
    ``"trade_server: <description>"`` (with the MT5 ``retcode``) and is matched by its prefix.
    ``limit`` marks the account risk limits (position sizing and the limits an operator sets on the EA).
    """

    code: str
    label: str
    advice: str
    limit: bool = False


_REJECT_REASONS = (
    RejectReason("paused", "paused", "An operator paused the account or the strategy; resume it."),
    RejectReason("trading_disabled", "trading disabled", "The EA's TradingEnabled input is false."),
    RejectReason("expired", "expired", "The signal reached the EA after its expiresAt."),
    RejectReason("stale", "stale", "The signal was older than the EA's MaxSignalAgeSec when it arrived."),
    RejectReason("symbol_not_allowed", "symbol not allowed", "The symbol is not in the EA's AllowedSymbols."),
    RejectReason(
        "unknown_symbol", "unknown symbol", "The broker has no such symbol; check SymbolMap/Suffix."
    ),
    RejectReason(
        "unsupported_action", "unsupported action", "The EA knows open, close, close_all, modify, cancel."
    ),
    RejectReason("unsupported_order_type", "unsupported order type", "The EA places market, limit and stop."),
    RejectReason("invalid_side", "invalid side", "An open needs side buy or sell."),
    RejectReason("invalid_volume", "invalid volume", "LotMode multiplier needs a signal volume above 0."),
    RejectReason("invalid_price", "invalid price", "A limit or stop order needs a price above 0."),
    RejectReason("slippage", "slippage", "The market was further from the signal price than allowed."),
    RejectReason("no_position", "no position", "Nothing of this EA to close or modify on the symbol."),
    RejectReason("no_order", "no pending order", "No pending order of this EA to cancel on the symbol."),
    RejectReason("interrupted", "interrupted", "The terminal stopped while the order was being sent."),
    RejectReason("trade_server", "trade server", "The broker refused the order; see retcode."),
    RejectReason(
        "no_stop_loss", "no stop loss", "LotMode risk sizes from the SL distance: send an sl.", limit=True
    ),
    RejectReason(
        "volume_below_min",
        "volume below minimum",
        "The sized volume rounds below the symbol's minimum lot; raise the multiplier, lot or risk %.",
        limit=True,
    ),
    RejectReason(
        "max_open_positions",
        "max open positions",
        "The EA holds MaxOpenPositions positions and pending orders; close some first.",
        limit=True,
    ),
    RejectReason(
        "outside_trading_hours",
        "outside trading hours",
        "The broker's server time is outside the EA's TradingHours windows.",
        limit=True,
    ),
    RejectReason(
        "daily_loss",
        "daily loss limit",
        "The account lost MaxDailyLossPct of the day's starting equity: paused until the next broker day "
        "or an operator's resume.",
        limit=True,
    ),
)

#: Every reason an EA (the MQL5 EA and the simulator alike) gives for refusing a signal.
REJECT_REASONS: dict[str, RejectReason] = {r.code: r for r in _REJECT_REASONS}
