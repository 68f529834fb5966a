"""Server-side WebSocket frame building for the fan-out path.

Inbound frames are parsed by ``websockets``' sans-I/O protocol. Outbound *data* frames are built
here instead, because a broadcast frame is built once and the same ``bytes`` object is written to
every subscriber; ``websockets.frames.Frame.serialize`` would work too but is built for one
connection at a time (extension hooks, per-call checks), and this is the hot path.
Server frames are never masked (RFC 6455 section 5.1), so one frame fits every subscriber.
"""

from __future__ import annotations

import struct

__all__ = ["OP_BINARY", "OP_TEXT", "data_frame"]

OP_TEXT = 0x1
OP_BINARY = 0x2

_pack_16 = struct.Struct("!BBH").pack
_pack_64 = struct.Struct("!BBQ").pack


def data_frame(payload: bytes, opcode: int) -> bytes:
    """One final, unmasked frame carrying ``payload``, with the minimal length encoding."""
    first = 0x80 | opcode
    length = len(payload)
    if length < 126:
        return bytes((first, length)) + payload
    if length < 65536:
        return _pack_16(first, 126, length) + payload
    return _pack_64(first, 127, length) + payload
