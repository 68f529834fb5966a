"""WebSocket promises of docs/protocol.md found broken from outside (issue 16, items 1 and 7),
checked over real sockets."""

from __future__ import annotations

import json
from pathlib import Path

import msgpack
import pytest
import websockets

from tests.support.hub import WAIT, Client, running_hub

BAD_LIMIT = 20  # docs/protocol.md: "20 bad messages in a row close it with 4504"


async def _answered_heartbeat(c: Client) -> None:
    reply = await c.request("heartbeat")
    assert reply["type"] == "heartbeat", reply


async def test_a_valid_message_resets_the_bad_message_count(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as h:
        c = await h.connect(h.token("admin", "ops"))
        for _ in range(3):  # three runs of 19, each broken by valid messages: never closed
            for _ in range(BAD_LIMIT - 1):
                await c.ws.send("garbage")
                assert (await c.recv())["payload"]["code"] == "invalid_json"
            for _ in range(5):
                await _answered_heartbeat(c)
        await c.ws.send("garbage")
        assert (await c.recv())["payload"]["code"] == "invalid_json"
        await _answered_heartbeat(c)  # still open
        for _ in range(BAD_LIMIT):
            await c.ws.send("{}")  # decodes, but not an envelope
        assert (await c.closed())[0] == 4504  # twenty in a row still close
        await h.wait_clean()


async def test_bad_messages_in_a_row_over_msgpack(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as h:
        ws = await websockets.connect(h.url, subprotocols=["mtbridge.v1.msgpack"], ping_interval=None)  # type: ignore[list-item]
        c = Client(ws)
        c.welcome = await c.recv()
        assert c.welcome["type"] == "welcome"
        for _ in range(BAD_LIMIT - 1):
            await ws.send(b"\xc1")  # never-used MessagePack byte
            assert (await c.recv())["payload"]["code"] == "invalid_msgpack"
        await ws.send(msgpack.packb({"type": "heartbeat", "requestId": "h"}))
        assert (await c.recv())["type"] == "heartbeat"
        for _ in range(BAD_LIMIT - 1):
            await ws.send(b"\xc1")
            assert (await c.recv())["payload"]["code"] == "invalid_msgpack"
        await ws.send(msgpack.packb({"type": "heartbeat", "requestId": "h2"}))
        assert (await c.recv())["type"] == "heartbeat"
        await ws.close()
        await h.wait_clean()


@pytest.mark.parametrize(
    ("token", "code", "close"),
    [("not-a-jwt", "token_invalid", 4500), ("expired", "token_expired", 4004)],
)
async def test_bad_url_token_gets_welcome_first(tmp_path: Path, token: str, code: str, close: int) -> None:
    async with running_hub(tmp_path) as h:
        if token == "expired":
            token = h.token("ea", "ea-1", ttl=-3600, accounts=["50123"])
        ws = await websockets.connect(f"{h.url}?token={token}", ping_interval=None, open_timeout=WAIT)
        c = Client(ws)
        first = await c.recv()
        assert first["type"] == "welcome", first
        assert first["payload"]["authenticated"] is False
        assert first["payload"]["connectionId"].startswith("c-")
        error = await c.recv()
        assert error["type"] == "error" and error["payload"]["code"] == code, error
        assert (await c.closed())[0] == close
        await h.wait_clean()


async def test_good_url_token_welcome_says_authenticated(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as h:
        token = h.token("ea", "ea-1", accounts=["50123"])
        ws = await websockets.connect(f"{h.url}?token={token}", ping_interval=None, open_timeout=WAIT)
        first = json.loads(await ws.recv())
        assert first["type"] == "welcome" and first["payload"]["authenticated"] is True
        assert first["payload"]["sub"] == "ea-1"
        await ws.close()
        await h.wait_clean()
