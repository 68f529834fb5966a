"""Limits and timing defaults the hub enforces. ``None`` disables a limit."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = [
    "DEFAULT_AUTH_TIMEOUT",
    "DEFAULT_BODY_TIMEOUT",
    "DEFAULT_CLOSE_TIMEOUT",
    "DEFAULT_DRAIN_WINDOW",
    "DEFAULT_HANDSHAKE_TIMEOUT",
    "DEFAULT_MAX_MESSAGE_BYTES",
    "DEFAULT_MAX_REQUEST_BYTES",
    "DEFAULT_PING_INTERVAL",
    "DEFAULT_PONG_TIMEOUT",
    "HubLimits",
]

DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024
DEFAULT_MAX_QUEUE_BYTES = 1024 * 1024
DEFAULT_MAX_QUEUE_MESSAGES = 10_000
DEFAULT_MAX_SUBSCRIPTIONS = 256
DEFAULT_RATE = 2_000.0
DEFAULT_BURST = 4_000.0
DEFAULT_RATE_STRIKES = 200
DEFAULT_BAD_MESSAGES = 20
DEFAULT_AUTH_TIMEOUT = 5.0
DEFAULT_HANDSHAKE_TIMEOUT = 5.0
#: HTTP request bodies must arrive whole within this many seconds of their headers (bridge/hub/http.py).
DEFAULT_BODY_TIMEOUT = 10.0
#: 1 MiB: a signal is a few KiB, a token request with four lists of 256 patterns about 130 KiB.
DEFAULT_MAX_REQUEST_BYTES = 1024 * 1024
DEFAULT_PING_INTERVAL = 25.0
DEFAULT_PONG_TIMEOUT = 10.0
DEFAULT_TOKEN_WARNING = 60.0
DEFAULT_TOKEN_GRACE = 10.0
DEFAULT_CLOSE_TIMEOUT = 5.0
#: Reconnect hints at shutdown are spread uniformly over this many seconds (docs/deploy.md: 10,000 EAs
#: over 5 s land on the other nodes at about 2,000 per second instead of all in the same second).
DEFAULT_DRAIN_WINDOW = 5.0
DEFAULT_MAX_CONNECTIONS_PER_IP = 1_000
DEFAULT_MAX_CONNECTIONS_PER_SUBJECT = 100
DEFAULT_MAX_IN_FLIGHT = 1_024
DEFAULT_MAX_RECOVERY = 100_000


@dataclass(frozen=True, kw_only=True, slots=True)
class HubLimits:
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    max_queue_bytes: int = DEFAULT_MAX_QUEUE_BYTES
    max_queue_messages: int = DEFAULT_MAX_QUEUE_MESSAGES
    max_subscriptions: int = DEFAULT_MAX_SUBSCRIPTIONS
    rate_per_second: float | None = DEFAULT_RATE
    rate_burst: float = DEFAULT_BURST
    rate_strikes_before_close: int = DEFAULT_RATE_STRIKES
    bad_messages_before_close: int = DEFAULT_BAD_MESSAGES
    auth_timeout: float = DEFAULT_AUTH_TIMEOUT
    handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT
    ping_interval: float = DEFAULT_PING_INTERVAL
    pong_timeout: float = DEFAULT_PONG_TIMEOUT
    token_warning: float = DEFAULT_TOKEN_WARNING
    token_grace: float = DEFAULT_TOKEN_GRACE
    close_timeout: float = DEFAULT_CLOSE_TIMEOUT
    drain_window: float = DEFAULT_DRAIN_WINDOW
    max_connections_per_ip: int | None = DEFAULT_MAX_CONNECTIONS_PER_IP
    max_connections_per_subject: int | None = DEFAULT_MAX_CONNECTIONS_PER_SUBJECT
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
    max_recovery: int = DEFAULT_MAX_RECOVERY

    def warnings(self) -> list[str]:
        """Inconsistent combinations worth a warning at startup."""
        out = []
        if self.pong_timeout >= self.ping_interval:
            out.append("pong timeout >= ping interval: dead peers are detected late")
        if self.ping_interval >= 60:
            out.append("ping interval >= 60 s: proxies (nginx default 60 s) may cut idle sockets")
        if self.max_queue_bytes < 4 * self.max_message_bytes:
            out.append("max queue bytes < 4 x max message bytes: slow-consumer closes will be frequent")
        return out

    def public(self) -> dict[str, Any]:
        """The limits a client needs to know, as sent in ``welcome``."""
        d = asdict(self)
        return {
            "maxMessageBytes": d["max_message_bytes"],
            "maxQueueBytes": d["max_queue_bytes"],
            "maxQueueMessages": d["max_queue_messages"],
            "maxSubscriptions": d["max_subscriptions"],
            "ratePerSecond": d["rate_per_second"],
            "rateBurst": d["rate_burst"],
            "authTimeoutMs": int(self.auth_timeout * 1000),
            "pingIntervalMs": int(self.ping_interval * 1000),
            "pongTimeoutMs": int(self.pong_timeout * 1000),
            "tokenGraceMs": int(self.token_grace * 1000),
        }
