"""HubSink against a small local fake hub speaking protocol v1 (welcome, auth, publish, close codes)."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import orjson
import pytest
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from bridge.cli import marketdata as cli
from bridge.marketdata.base import AdapterConfig, VenueLimits
from bridge.marketdata.hubsink import SUBPROTOCOL, HubSink
from bridge.marketdata.mock import OkxFake
from bridge.marketdata.runner import config_from_mapping, run_adapters
from tests.support.marketdata import RECORDED, require_fixtures
from tests.support.waits import until

TOKEN = "test-token-not-a-real-jwt"


class FakeHub:
    """Accepts one token; answers every publish with a result; can close connections with a code."""

    def __init__(self, token: str = TOKEN) -> None:
        self.token = token
        self.published: list[dict[str, Any]] = []
        self.auths = 0
        self.connections: list[ServerConnection] = []
        self.server: Server | None = None
        self.offset = 0

    async def __aenter__(self) -> FakeHub:
        self.server = await serve(self.handler, "127.0.0.1", 0, subprotocols=[SUBPROTOCOL], compression=None)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"ws://127.0.0.1:{next(iter(self.server.sockets)).getsockname()[1]}/ws"

    async def handler(self, ws: ServerConnection) -> None:
        self.connections.append(ws)
        welcome = {
            "connectionId": f"c-{len(self.connections)}",
            "protocol": "mtbridge.v1",
            "encoding": "json",
            "authenticated": False,
            "limits": {},
        }
        await ws.send(orjson.dumps({"type": "welcome", "payload": welcome}).decode())
        try:
            first = orjson.loads(await ws.recv())
            assert set(first) <= {"type", "requestId", "channel", "payload"}
            if first["type"] != "auth" or first["payload"]["token"] != self.token:
                await ws.close(4500, "unauthorized")
                return
            self.auths += 1
            reply = {"sub": "md", "role": "engine", "expiresAt": 2**31}
            await ws.send(
                orjson.dumps({"type": "result", "requestId": first["requestId"], "payload": reply}).decode()
            )
            async for data in ws:
                msg = orjson.loads(data)
                assert set(msg) <= {"type", "requestId", "channel", "payload"}
                if msg["type"] == "publish" and msg["channel"].startswith("instrument:"):
                    self.offset += 1
                    self.published.append(msg)
                    result = {"offset": self.offset, "epoch": "E", "duplicate": False}
                    await ws.send(
                        orjson.dumps(
                            {"type": "result", "requestId": msg["requestId"], "payload": result}
                        ).decode()
                    )
                else:
                    error = {"code": "forbidden", "message": "no", "retryable": False}
                    await ws.send(
                        orjson.dumps(
                            {"type": "error", "requestId": msg["requestId"], "payload": error}
                        ).decode()
                    )
        except ConnectionClosed:
            pass

    async def close_all(self, code: int) -> None:
        for ws in self.connections:
            await ws.close(code, "test")


async def test_publishes_after_auth_and_survives_a_going_away_close() -> None:
    async with FakeHub() as hub, HubSink(hub.url, TOKEN, backoff_base=0.01, backoff_cap=0.05) as sink:
        await sink.publish("instrument:BTC-USDT:trades", {"n": 1}, None)
        await sink.drain()
        await hub.close_all(1001)
        await until(lambda: sink.connects == 2)
        await sink.publish("instrument:BTC-USDT:trades", {"n": 2}, None)
        await sink.drain()
        assert [m["payload"]["n"] for m in hub.published] == [1, 2]
        assert hub.auths == 2 and sink.acknowledged == 2
        assert TOKEN not in repr(sink)


async def test_terminal_close_code_stops_reconnecting() -> None:
    async with FakeHub(token="other") as hub, HubSink(hub.url, TOKEN, backoff_base=0.01) as sink:
        await asyncio.wait_for(sink.done.wait(), 30)
        assert sink.failed is not None and sink.failed.code == 4500
        assert len(hub.connections) == 1


async def test_queue_coalesces_by_key_while_disconnected() -> None:
    sink = HubSink("ws://127.0.0.1:9/ws", TOKEN, max_pending=3)
    for i in range(5):
        await sink.publish("instrument:BTC-USDT:top", {"n": i}, "binance")
    await sink.publish("instrument:BTC-USDT:top", {"n": 0}, "okx")
    assert sink.pending == 2
    for i in range(3):
        await sink.publish("instrument:BTC-USDT:trades", {"n": i}, None)
    assert sink.pending == 3 and sink.dropped == 2
    async with FakeHub() as hub:
        sink.url = hub.url
        async with sink:
            await sink.drain()
    assert [m["channel"].rsplit(":", 1)[1] for m in hub.published] == ["trades"] * 3


async def test_hub_errors_are_counted_not_fatal() -> None:
    async with FakeHub() as hub, HubSink(hub.url, TOKEN) as sink:
        await sink.publish("signals:alpha", {"n": 1}, None)
        await sink.publish("instrument:X-Y:trades", {"n": 2}, None)
        await sink.drain()
        assert sink.errors == 1 and sink.acknowledged == 1


async def test_adapter_into_hub_end_to_end() -> None:
    require_fixtures()
    fake = OkxFake(RECORDED / "OKX.ws.1.0")
    limits = VenueLimits(symbols_per_connection=10, messages_per_second=1000.0, connect_interval=0.0)
    async with fake, FakeHub() as hub, HubSink(hub.url, TOKEN) as sink:
        config = AdapterConfig(venue="okx", symbols=("BTC-USDT",), ws_url=fake.ws_url, limits=limits)
        stop = asyncio.Event()
        task = asyncio.create_task(run_adapters([config], sink, stop))
        await fake.wait_subscribed(keys=2)
        await fake.play()
        await until(lambda: any(m["channel"] == "instrument:BTC-USDT:trades" for m in hub.published))
        await until(lambda: any(m["channel"] == "instrument:BTC-USDT:depth" for m in hub.published))
        stop.set()
        await asyncio.wait_for(task, 30)
    depth = [m["payload"] for m in hub.published if m["channel"] == "instrument:BTC-USDT:depth"]
    assert depth[-1]["venue"] == "okx" and depth[-1]["state"] == "live"
    assert len(depth[-1]["bids"]) == 20


async def test_cli_runs_until_the_hub_refuses_the_token() -> None:
    require_fixtures()
    fake = OkxFake(RECORDED / "OKX.ws.1.0")
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    async with fake, FakeHub(token="other") as hub:
        args = parser.parse_args(
            [
                "--exchange",
                "okx",
                "--symbols",
                "BTC-USDT",
                "--hub",
                hub.url,
                "--token",
                TOKEN,
                "--endpoint",
                fake.ws_url,
            ]
        )
        assert await asyncio.wait_for(cli.run(args), 60) == cli.EXIT_AUTH


async def test_cli_rejects_bad_symbols() -> None:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    args = parser.parse_args(
        ["--exchange", "binance", "--symbols", "BTC/USDT!", "--hub", "ws://x", "--token", "t"]
    )
    assert await cli.run(args) == cli.EXIT_USAGE


def test_config_from_mapping() -> None:
    config = config_from_mapping({"venue": "kraken", "symbols": "BTC-USD, ETH-USD", "depth": 100})
    assert config.symbols == ("BTC-USD", "ETH-USD") and config.depth == 100
    with pytest.raises(ValueError, match="unknown"):
        config_from_mapping({"venue": "kraken", "symbols": ["BTC-USD"], "bogus": 1})
    with pytest.raises(ValueError, match="venue"):
        config_from_mapping({"venue": "nasdaq", "symbols": ["BTC-USD"]})
