"""HTTP-level timeouts and the request size limit, over raw TCP sockets (issue 16, items 2-4).

The hub runs with 0.5 s header and body timeouts so the tests wait on the connection closing, not
on the 5 s and 10 s defaults; the rule under test is the same.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.hub import WAIT, RunningHub, running_hub

HEADER_TIMEOUT = 0.5
BODY_TIMEOUT = 0.5
LIMIT = 128 * 1024


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[RunningHub]:
    async with running_hub(
        tmp_path,
        http_header_timeout=HEADER_TIMEOUT,
        http_body_timeout=BODY_TIMEOUT,
        max_request_bytes=LIMIT,
    ) as h:
        yield h


async def _open(hub: RunningHub) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", hub.settings.port)


async def _response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One whole response with a Content-Length body."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    body = await asyncio.wait_for(reader.readexactly(length), WAIT)
    return status, body


async def _closed(reader: asyncio.StreamReader) -> bytes:
    """Everything the hub still sends, until it closes the connection (fails after WAIT)."""
    return await asyncio.wait_for(reader.read(), WAIT)


async def _keepalive_get(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: hub\r\n\r\n")
    status, body = await _response(reader)
    assert status == 200 and b"ok" in body


async def test_second_request_on_keepalive_connection_must_finish_headers(hub: RunningHub) -> None:
    reader, writer = await _open(hub)
    try:
        await _keepalive_get(reader, writer)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: hu")  # and nothing more
        assert await _closed(reader) == b""
    finally:
        writer.close()


async def test_trickled_headers_on_keepalive_connection_are_cut(hub: RunningHub) -> None:
    reader, writer = await _open(hub)
    try:
        await _keepalive_get(reader, writer)
        closed = asyncio.ensure_future(_closed(reader))
        sent = 0
        for byte in b"GET /healthz HTTP/1.1\r\nX-Slow: " + b"a" * 10_000:
            if closed.done():
                break
            with contextlib.suppress(ConnectionError):
                writer.write(bytes([byte]))
                await writer.drain()
            sent += 1
            await asyncio.wait([closed], timeout=0.05)  # one byte every 50 ms
        assert await closed == b""
        assert sent < 10_000  # cut long before the trickle ended
    finally:
        writer.close()


async def test_first_request_headers_still_cut(hub: RunningHub) -> None:
    reader, writer = await _open(hub)
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\n")
        assert await _closed(reader) == b""
    finally:
        writer.close()


@pytest.mark.parametrize("with_token", [False, True])
async def test_stalled_body_is_cut(hub: RunningHub, with_token: bool) -> None:
    token = hub.token("engine", "e1", publish=["signals:*"])
    auth = f"Authorization: Bearer {token}\r\n" if with_token else ""
    reader, writer = await _open(hub)
    try:
        writer.write(
            f"POST /api/v1/signals HTTP/1.1\r\nHost: hub\r\n{auth}Content-Type: application/json\r\n"
            f"Content-Length: 100000\r\n\r\n".encode()
            + b'{"strategy": "alpha", '
        )
        rest = await _closed(reader)
        assert rest.startswith(b"HTTP/1.1 408 "), rest
    finally:
        writer.close()


async def test_stalled_body_after_headers_gets_408(hub: RunningHub) -> None:
    token = hub.token("admin", "op")
    reader, writer = await _open(hub)
    try:
        writer.write(
            f"POST /api/v1/control HTTP/1.1\r\nHost: hub\r\nAuthorization: Bearer {token}\r\n"
            "Content-Type: application/json\r\nContent-Length: 500\r\n\r\n{".encode()
        )
        rest = await _closed(reader)
        assert rest.startswith(b"HTTP/1.1 408 "), rest
    finally:
        writer.close()


async def test_declared_body_over_limit_is_refused_before_reading(hub: RunningHub) -> None:
    token = hub.token("engine", "e1", publish=["signals:*"])
    reader, writer = await _open(hub)
    try:
        writer.write(
            f"POST /api/v1/signals HTTP/1.1\r\nHost: hub\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {16 * 1024 * 1024}\r\n\r\n".encode()
        )  # no body at all: the answer must not wait for it
        status, body = await _response(reader)
        assert status == 413, body
        assert str(LIMIT).encode() in body
        assert await _closed(reader) == b""
    finally:
        writer.close()


async def test_chunked_body_over_limit_is_refused(hub: RunningHub) -> None:
    token = hub.token("engine", "e1", publish=["signals:*"])
    reader, writer = await _open(hub)
    try:
        writer.write(
            f"POST /api/v1/signals HTTP/1.1\r\nHost: hub\r\nAuthorization: Bearer {token}\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
        )
        chunk = b"a" * 8192
        status = 0
        with contextlib.suppress(ConnectionError):
            for _ in range(2 * LIMIT // len(chunk)):
                writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                await writer.drain()
        status, _ = await _response(reader)
        assert status == 413
        assert await _closed(reader) == b""
    finally:
        writer.close()


async def test_headers_over_limit_get_431(hub: RunningHub) -> None:
    reader, writer = await _open(hub)
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: hub\r\n")
        with contextlib.suppress(ConnectionError):
            for i in range(20):
                writer.write(b"X-Pad-%d: %s\r\n" % (i, b"p" * 8000))
                await writer.drain()
        status, _ = await _response(reader)
        assert status == 431
    finally:
        writer.close()


async def test_bodies_within_limits_still_served_on_keepalive(hub: RunningHub) -> None:
    token = hub.token("admin", "op")
    reader, writer = await _open(hub)
    try:
        for _ in range(3):
            body = b'{"scope": "account", "command": "pause", "account": "50123"}'
            writer.write(
                f"POST /api/v1/control HTTP/1.1\r\nHost: hub\r\nAuthorization: Bearer {token}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            status, answer = await _response(reader)
            assert status == 200, answer
        await _keepalive_get(reader, writer)
    finally:
        writer.close()
