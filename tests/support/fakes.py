"""Stand-ins for the socketless hub tests: a sink that records what the hub writes, a hub with a
known JWT secret, and tokens signed with it. The real sockets are in :mod:`tests.support.hub`."""

from __future__ import annotations

import json
import time
from typing import Any

import msgpack

from bridge.auth.tokens import Verifier, issue
from bridge.hub.hub import Hub
from bridge.hub.limits import HubLimits

__all__ = ["SECRET", "FakeSink", "make_hub", "token"]

#: The HS256 secret of :func:`make_hub` and :func:`token` (64 bytes: the size `mtbridge` generates).
SECRET = b"k" * 64


class FakeSink:
    """Records what the hub writes; `full` makes the socket refuse more (transport paused)."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closed: tuple[int, str] | None = None
        self.pending = 0

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def buffered(self) -> int:
        return self.pending

    def ping_frame(self) -> bytes:
        return b"\x89\x00"

    def close_frame(self, code: int, reason: str) -> bytes:
        self.closed = (code, reason)
        return b"\x88\x02" + code.to_bytes(2, "big")

    def finish(self, flush: bool) -> None:
        pass

    def messages(self) -> list[dict[str, Any]]:
        out = []
        for chunk in self.written:
            i = 0
            while i < len(chunk):
                op, n = chunk[i] & 0x0F, chunk[i + 1] & 0x7F
                i += 2
                if n == 126:
                    n = int.from_bytes(chunk[i : i + 2], "big")
                    i += 2
                elif n == 127:
                    n = int.from_bytes(chunk[i : i + 8], "big")
                    i += 8
                body = chunk[i : i + n]
                i += n
                if op == 1:
                    out.append(json.loads(body))
                elif op == 2:
                    out.append(msgpack.unpackb(body))
        return out


def make_hub(**limits: Any) -> Hub:
    return Hub(Verifier(["HS256"], secret=SECRET), limits=HubLimits(**limits))


def token(role: str = "admin", sub: str = "ops", **claims: Any) -> str:
    return issue(SECRET, sub=sub, role=role, now=time.time(), ttl=600, **claims)
