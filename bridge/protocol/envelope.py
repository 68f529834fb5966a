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

from bridge.protocol._fastpath import slot_setters
from bridge.protocol.codes import Error

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

    def __init__(self, code: Error, message: str, request_id: str | None = None) -> None:
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


#: The frozen dataclass's ``__init__`` goes through ``object.__setattr__`` per field; on the hot path the
#: slots are filled directly instead (same object, a third of the cost). Checked against the fields below.
_new = object.__new__
_set_type, _set_request_id, _set_channel, _set_payload = slot_setters(
    Envelope, "type", "request_id", "channel", "payload"
)
_JSON = Encoding.JSON
_INF = math.inf
_loads = orjson.loads
_unpackb = msgpack.unpackb


def _check_value(value: object, depth: int) -> None:
    """Reject anything JSON cannot carry, so a MessagePack publication re-encodes as JSON."""
    if depth > MAX_DEPTH:
        raise EnvelopeError(Error.BAD_REQUEST, f"payload nested deeper than {MAX_DEPTH}")
    if value is None or isinstance(value, (bool, str)):
        return
    if isinstance(value, int):
        if not INT64_MIN <= value <= UINT64_MAX:
            raise EnvelopeError(Error.BAD_REQUEST, "integer out of 64-bit range")
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise EnvelopeError(Error.BAD_REQUEST, "non-finite number")
        return
    if isinstance(value, list):
        for item in value:
            _check_value(item, depth + 1)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise EnvelopeError(Error.BAD_REQUEST, "object keys must be strings")
            _check_value(item, depth + 1)
        return
    raise EnvelopeError(Error.BAD_REQUEST, f"unsupported value type {type(value).__name__}")


def _request_id_of(obj: dict[Any, Any]) -> str | None:
    rid = obj.get("requestId")
    if isinstance(rid, str) and 0 < len(rid) <= MAX_REQUEST_ID_LENGTH:
        return rid
    return None


def from_object(obj: object, *, check_values: bool) -> Envelope:
    """Check a decoded object's shape and build an :class:`Envelope`."""
    if type(obj) is dict:
        envelope = _fast_envelope(obj, check_values)
        if envelope is not None:
            return envelope
    return _checked_envelope(obj, check_values)


def _fast_envelope(obj: dict[Any, Any], check_values: bool) -> Envelope | None:
    """The common, valid envelope, checked with as few operations as possible.

    Returns None whenever anything is unusual; :func:`_checked_envelope` then decides, and it alone
    builds the errors, so accepted input, rejected input and error texts are exactly its own.
    """
    mtype = obj.get("type")
    rid = obj.get("requestId")
    channel = obj.get("channel")
    payload = obj.get("payload")
    # Every key is a known one when each key present was found with a value: no unknown field, and no
    # explicit null (a null `requestId` is an error; the others are left to the full check too).
    if len(obj) != 1 + (rid is not None) + (channel is not None) + (payload is not None):
        return None
    if type(mtype) is not str or not 0 < len(mtype) <= MAX_TYPE_LENGTH:
        return None
    if rid is not None and (type(rid) is not str or not 0 < len(rid) <= MAX_REQUEST_ID_LENGTH):
        return None
    if channel is not None and (type(channel) is not str or not 0 < len(channel) <= MAX_CHANNEL_LENGTH):
        return None
    if payload is not None and type(payload) is not dict:
        return None
    if check_values and payload is not None and not _plain_object(payload, 1):
        return None
    envelope = _new(Envelope)
    _set_type(envelope, mtype)
    _set_request_id(envelope, rid)
    _set_channel(envelope, channel)
    _set_payload(envelope, payload)
    return envelope


def _plain_object(obj: dict[Any, Any], depth: int) -> bool:
    """Whether :func:`_check_value` surely accepts ``obj``, found at ``depth`` (False: let it decide).

    Scalars are checked inline (a call per value would cost more than the check itself).
    """
    inner = depth + 1
    if inner > MAX_DEPTH:
        return not obj
    for key, value in obj.items():
        if type(key) is not str:
            return False
        kind = type(value)
        if kind is str or value is None or kind is bool:
            continue
        if kind is float:
            if not -_INF < value < _INF:
                return False
        elif kind is int:
            if not INT64_MIN <= value <= UINT64_MAX:
                return False
        elif not _plain_container(value, inner):
            return False
    return True


def _plain_container(value: Any, depth: int) -> bool:
    """Like :func:`_plain_object` for a list or an object found at ``depth``; anything else: False."""
    kind = type(value)
    if kind is dict:
        return _plain_object(value, depth)
    if kind is not list:
        return False
    inner = depth + 1
    if inner > MAX_DEPTH:
        return not value
    for item in value:
        kind = type(item)
        if kind is str or item is None or kind is bool:
            continue
        if kind is float:
            if not -_INF < item < _INF:
                return False
        elif kind is int:
            if not INT64_MIN <= item <= UINT64_MAX:
                return False
        elif not _plain_container(item, inner):
            return False
    return True


def _checked_envelope(obj: object, check_values: bool) -> Envelope:
    """The full check: every rule in order, with the error the first broken rule gives."""
    if not isinstance(obj, dict):
        raise EnvelopeError(Error.BAD_REQUEST, "a message must be an object")
    rid = _request_id_of(obj)
    extra = [k for k in obj if k not in ALLOWED_KEYS]
    if extra:
        raise EnvelopeError(Error.BAD_REQUEST, f"unknown field {str(extra[0])[:40]!r}", rid)
    mtype = obj.get("type")
    if not isinstance(mtype, str) or not 0 < len(mtype) <= MAX_TYPE_LENGTH:
        raise EnvelopeError(Error.BAD_REQUEST, "`type` must be a non-empty string", rid)
    if "requestId" in obj and rid is None:
        raise EnvelopeError(
            Error.BAD_REQUEST, f"`requestId` must be a string of 1-{MAX_REQUEST_ID_LENGTH} chars"
        )
    channel = obj.get("channel")
    if channel is not None and (not isinstance(channel, str) or not 0 < len(channel) <= MAX_CHANNEL_LENGTH):
        raise EnvelopeError(
            Error.INVALID_CHANNEL, f"`channel` must be a string of 1-{MAX_CHANNEL_LENGTH} chars", rid
        )
    payload = obj.get("payload")
    if payload is not None:
        if not isinstance(payload, dict):
            raise EnvelopeError(Error.BAD_REQUEST, "`payload` must be an object", rid)
        if check_values:
            try:
                _check_value(payload, 1)
            except EnvelopeError as exc:
                exc.request_id = rid
                raise
    return Envelope(mtype, rid, channel, payload)


def decode(data: bytes, encoding: Encoding) -> Envelope:
    """Decode one whole WebSocket message (text frames arrive as UTF-8 bytes)."""
    if encoding is _JSON:
        try:
            obj = _loads(data)
        except orjson.JSONDecodeError as exc:
            raise EnvelopeError(Error.INVALID_JSON, "malformed JSON") from exc
        # orjson accepts only finite floats and 64-bit integers, so only the shape is left to check.
        check_values = False
    else:
        try:
            obj = _unpackb(data, raw=False, strict_map_key=True, use_list=True, timestamp=0)
        except Exception as exc:  # msgpack raises several unrelated types for bad input
            raise EnvelopeError(Error.INVALID_MSGPACK, "malformed MessagePack") from exc
        check_values = True
    if type(obj) is dict:
        envelope = _fast_envelope(obj, check_values)
        if envelope is not None:
            return envelope
    return _checked_envelope(obj, check_values)


def encode_json(message: dict[str, Any]) -> bytes:
    return orjson.dumps(message)


def encode_msgpack(message: dict[str, Any]) -> bytes:
    return msgpack.packb(message, use_bin_type=True)  # type: ignore[no-any-return]


def encode(message: dict[str, Any], encoding: Encoding) -> bytes:
    return encode_json(message) if encoding is Encoding.JSON else encode_msgpack(message)
