"""Client-side codec: envelopes to wire frames and hub messages back to checked objects.

The hub is a peer like any other: its messages are checked for shape and types before the client
acts on them, so a broken or hostile hub causes a :class:`ProtocolViolation`, not a crash deep in a
callback.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgpack
import orjson

from bridge.protocol.envelope import Encoding

__all__ = ["HUB_FIELDS", "Incoming", "ProtocolViolation", "decode_incoming", "encode_outgoing"]

HUB_FIELDS = frozenset({"type", "requestId", "channel", "payload", "offset"})
MAX_TYPE_LENGTH = 32


class ProtocolViolation(ValueError):
    """A hub message that does not follow docs/protocol.md."""


@dataclass(frozen=True, slots=True)
class Incoming:
    """One checked hub → client message."""

    type: str
    request_id: str | None = None
    channel: str | None = None
    payload: dict[str, Any] | None = None
    offset: int | None = None


def encode_outgoing(message: dict[str, Any], encoding: Encoding) -> str | bytes:
    """JSON goes in text frames (``str``), MessagePack in binary frames (``bytes``)."""
    if encoding is Encoding.JSON:
        return orjson.dumps(message).decode()
    packed: bytes = msgpack.packb(message, use_bin_type=True)
    return packed


def decode_incoming(data: str | bytes, encoding: Encoding) -> Incoming:
    """Decode and check one whole message from the hub.

    Raises:
        ProtocolViolation: wrong frame kind, undecodable data or a wrong shape.
    """
    if encoding is Encoding.JSON:
        if not isinstance(data, str):
            raise ProtocolViolation("binary frame on a JSON connection")
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise ProtocolViolation("malformed JSON") from exc
    else:
        if not isinstance(data, bytes):
            raise ProtocolViolation("text frame on a MessagePack connection")
        try:
            obj = msgpack.unpackb(data, raw=False, strict_map_key=True, timestamp=0)
        except Exception as exc:  # msgpack raises several unrelated types for bad input
            raise ProtocolViolation("malformed MessagePack") from exc
    if not isinstance(obj, dict):
        raise ProtocolViolation("a message must be an object")
    extra = set(obj) - HUB_FIELDS
    if extra:
        raise ProtocolViolation(f"unknown field {sorted(map(str, extra))[0][:40]!r}")
    mtype = obj.get("type")
    if not isinstance(mtype, str) or not 0 < len(mtype) <= MAX_TYPE_LENGTH:
        raise ProtocolViolation("`type` must be a non-empty string")
    rid = obj.get("requestId")
    if rid is not None and not isinstance(rid, str):
        raise ProtocolViolation("`requestId` must be a string")
    channel = obj.get("channel")
    if channel is not None and not isinstance(channel, str):
        raise ProtocolViolation("`channel` must be a string")
    payload = obj.get("payload")
    if payload is not None and not isinstance(payload, dict):
        raise ProtocolViolation("`payload` must be an object")
    offset = obj.get("offset")
    if offset is not None and (isinstance(offset, bool) or not isinstance(offset, int) or offset < 0):
        raise ProtocolViolation("`offset` must be an integer >= 0")
    return Incoming(mtype, rid, channel, payload, offset)
