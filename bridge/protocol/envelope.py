"""Envelope codec: bytes from the network to a checked :class:`Envelope`, and back.

Everything here is pure (no I/O, no clock) so every rule is tested without sockets.
Inbound messages are untrusted: the size was bounded by the framing layer, and here the shape
and the types are checked. Any failure raises :class:`EnvelopeError` carrying a stable error code
from :mod:`bridge.protocol.codes` and, where it could be read, the request id.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import msgpack
import orjson

__all__ = [
    "MAX_CHANNEL_LENGTH",
    "MAX_DEPTH",
    "MAX_REQUEST_ID_LENGTH",
    "MAX_TYPE_LENGTH",
    "Encoding",
    "Envelope",
    "EnvelopeError",
    "decode",
    "encode",
    "encode_json",
    "encode_msgpack",
]

MAX_REQUEST_ID_LENGTH = 64
MAX_TYPE_LENGTH = 32
MAX_CHANNEL_LENGTH = 200
MAX_DEPTH = 32
ALLOWED_KEYS = frozenset({"type", "requestId", "channel", "payload"})
INT64_MIN = -(2**63)
UINT64_MAX = 2**64 - 1


class Encoding(StrEnum):
    """Wire encodings, chosen by WebSocket subprotocol."""

    JSON = "json"
    MSGPACK = "msgpack"

    @property
    def subprotocol(self) -> str:
        return f"mtbridge.v1.{self.value}"


class EnvelopeError(Exception):
    """A message that cannot be accepted; ``code`` is a key of ``codes.ERRORS``."""

    def __init__(self, code: str, message: str, request_id: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.request_id = request_id


@dataclass(frozen=True, slots=True)
class Envelope:
    """A checked inbound message."""

    type: str
    request_id: str | None = None
    channel: str | None = None
    payload: dict[str, Any] | None = None


def _check_value(value: object, depth: int) -> None:
    """Reject anything JSON cannot carry, so a MessagePack publication re-encodes as JSON."""
    if depth > MAX_DEPTH:
        raise EnvelopeError("bad_request", f"payload nested deeper than {MAX_DEPTH}")
    if value is None or isinstance(value, (bool, str)):
        return
    if isinstance(value, int):
        if not INT64_MIN <= value <= UINT64_MAX:
            raise EnvelopeError("bad_request", "integer out of 64-bit range")
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise EnvelopeError("bad_request", "non-finite number")
        return
    if isinstance(value, list):
        for item in value:
            _check_value(item, depth + 1)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise EnvelopeError("bad_request", "object keys must be strings")
            _check_value(item, depth + 1)
        return
    raise EnvelopeError("bad_request", f"unsupported value type {type(value).__name__}")


def _request_id_of(obj: dict[Any, Any]) -> str | None:
    rid = obj.get("requestId")
    if isinstance(rid, str) and 0 < len(rid) <= MAX_REQUEST_ID_LENGTH:
        return rid
    return None


def from_object(obj: object, *, check_values: bool) -> Envelope:
    """Check a decoded object's shape and build an :class:`Envelope`."""
    if not isinstance(obj, dict):
        raise EnvelopeError("bad_request", "a message must be an object")
    rid = _request_id_of(obj)
    extra = [k for k in obj if k not in ALLOWED_KEYS]
    if extra:
        raise EnvelopeError("bad_request", f"unknown field {str(extra[0])[:40]!r}", rid)
    mtype = obj.get("type")
    if not isinstance(mtype, str) or not 0 < len(mtype) <= MAX_TYPE_LENGTH:
        raise EnvelopeError("bad_request", "`type` must be a non-empty string", rid)
    if "requestId" in obj and rid is None:
        raise EnvelopeError("bad_request", f"`requestId` must be a string of 1-{MAX_REQUEST_ID_LENGTH} chars")
    channel = obj.get("channel")
    if channel is not None and (not isinstance(channel, str) or not 0 < len(channel) <= MAX_CHANNEL_LENGTH):
        raise EnvelopeError(
            "invalid_channel", f"`channel` must be a string of 1-{MAX_CHANNEL_LENGTH} chars", rid
        )
    payload = obj.get("payload")
    if payload is not None:
        if not isinstance(payload, dict):
            raise EnvelopeError("bad_request", "`payload` must be an object", rid)
        if check_values:
            try:
                _check_value(payload, 1)
            except EnvelopeError as exc:
                exc.request_id = rid
                raise
    return Envelope(mtype, rid, channel, payload)


def decode(data: bytes, encoding: Encoding) -> Envelope:
    """Decode one whole WebSocket message (text frames arrive as UTF-8 bytes)."""
    if encoding is Encoding.JSON:
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise EnvelopeError("invalid_json", "malformed JSON") from exc
        # orjson accepts only finite floats and 64-bit integers, so only the shape is left to check.
        return from_object(obj, check_values=False)
    try:
        obj = msgpack.unpackb(data, raw=False, strict_map_key=True, use_list=True, timestamp=0)
    except Exception as exc:  # msgpack raises several unrelated types for bad input
        raise EnvelopeError("invalid_msgpack", "malformed MessagePack") from exc
    return from_object(obj, check_values=True)


def encode_json(message: dict[str, Any]) -> bytes:
    return orjson.dumps(message)


def encode_msgpack(message: dict[str, Any]) -> bytes:
    return msgpack.packb(message, use_bin_type=True)  # type: ignore[no-any-return]


def encode(message: dict[str, Any], encoding: Encoding) -> bytes:
    return encode_json(message) if encoding is Encoding.JSON else encode_msgpack(message)
