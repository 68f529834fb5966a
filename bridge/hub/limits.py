"""Limits and timing defaults the hub enforces: the one declaration of each. ``None`` disables a limit.

:class:`HubLimits` declares every limit of a WebSocket connection with its default. A field whose
metadata says :data:`SETTING` is an operator setting: :mod:`bridge.config` makes one ``Settings``
field of it (same name, type, default and bounds; ``MTBRIDGE_<NAME>``, a TOML key) and builds
``HubLimits`` from those fields, so a limit is never declared twice. The other fields are fixed.
docs/configuration.md lists both kinds with their defaults (tests/test_config.py checks it).

The HTTP limits (``DEFAULT_HANDSHAKE_TIMEOUT``, ``DEFAULT_BODY_TIMEOUT``,
``DEFAULT_MAX_REQUEST_BYTES``) are not a connection's: bridge/hub/http.py applies them to every
HTTP request, the WebSocket handshake included. The handshake has no timeout of its own: it is an
HTTP request, and ``http_header_timeout`` bounds it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import Field, asdict, dataclass, field, fields
from types import MappingProxyType
from typing import Any

__all__ = [
    "DEFAULT_BODY_TIMEOUT",
    "DEFAULT_HANDSHAKE_TIMEOUT",
    "DEFAULT_MAX_REQUEST_BYTES",
    "NULLABLE_LIMITS",
    "SETTING",
    "HubLimits",
    "settable_limits",
]

#: Seconds an HTTP request (the WebSocket handshake too) has to send its request line and headers
#: (``http_header_timeout``, bridge/hub/http.py).
DEFAULT_HANDSHAKE_TIMEOUT = 5.0
#: HTTP request bodies must arrive whole within this many seconds of their headers (bridge/hub/http.py).
DEFAULT_BODY_TIMEOUT = 10.0
#: 1 MiB: a signal is a few KiB, a token request with four lists of 256 patterns about 130 KiB.
DEFAULT_MAX_REQUEST_BYTES = 1024 * 1024

#: The metadata key of a settable limit; its value holds the setting's bounds (pydantic's ``ge``,
#: ``le``, ...), empty when any value of the type is accepted.
SETTING = "setting"


def _setting(**bounds: float) -> Mapping[str, Any]:
    return MappingProxyType({SETTING: MappingProxyType(bounds)})


@dataclass(frozen=True, kw_only=True, slots=True)
class HubLimits:
    max_message_bytes: int = field(default=64 * 1024, metadata=_setting())
    max_queue_bytes: int = field(default=1024 * 1024, metadata=_setting())
    max_queue_messages: int = field(default=10_000, metadata=_setting())
    max_subscriptions: int = field(default=256, metadata=_setting())
    rate_per_second: float | None = field(default=2_000.0, metadata=_setting())
    rate_burst: float = field(default=4_000.0, metadata=_setting())
    #: Messages refused by the rate limit before the connection is closed 4003 (fixed).
    rate_strikes_before_close: int = 200
    #: Invalid messages in a row before the connection is closed 4504 (fixed).
    bad_messages_before_close: int = 20
    auth_timeout: float = field(default=5.0, metadata=_setting())
    ping_interval: float = field(default=25.0, metadata=_setting())
    pong_timeout: float = field(default=10.0, metadata=_setting())
    token_warning: float = field(default=60.0, metadata=_setting())
    token_grace: float = field(default=10.0, metadata=_setting())
    close_timeout: float = field(default=5.0, metadata=_setting())
    #: Reconnect hints at shutdown are spread uniformly over this many seconds (docs/deploy.md: 10,000 EAs
    #: over 5 s land on the other nodes at about 2,000 per second instead of all in the same second).
    drain_window: float = field(default=5.0, metadata=_setting(ge=0, le=600))
    max_connections_per_ip: int | None = field(default=1_000, metadata=_setting())
    max_connections_per_subject: int | None = field(default=100, metadata=_setting())
    #: Requests of one connection awaiting their answer (durable writes mostly); past it
    #: ``rate_limited`` (fixed).
    max_in_flight: int = 1_024
    #: The most messages a subscription replays to recover a gap; a larger gap is not recovered (fixed).
    max_recovery: int = 100_000

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


def settable_limits() -> tuple[Field[Any], ...]:
    """The fields of :class:`HubLimits` an operator sets (``Settings`` has one field for each)."""
    return tuple(f for f in fields(HubLimits) if SETTING in f.metadata)


#: The settable limits that may be None (disabled): an empty setting disables them (docs/configuration.md).
NULLABLE_LIMITS = tuple(f.name for f in settable_limits() if "None" in str(f.type))
