"""Exchange adapters configured to run inside the hub publish onto instrument: channels."""

from __future__ import annotations

from pathlib import Path

from bridge.marketdata.mock import OkxFake
from tests.support.hub import running_hub
from tests.support.marketdata import RECORDED


async def test_configured_adapter_feeds_subscribers(tmp_path: Path) -> None:
    fake = OkxFake(RECORDED / "OKX.ws.1.0")
    async with fake:
        config = [{"venue": "okx", "symbols": ["BTC-USDT"], "ws_url": fake.ws_url}]
        async with running_hub(tmp_path, marketdata=config) as h:
            c = await h.connect(h.token("dashboard", "screen"))
            assert (await c.request("subscribe", "instrument:BTC-USDT:depth"))["type"] == "result"
            assert (await c.request("subscribe", "instrument:BTC-USDT:trades"))["type"] == "result"
            await fake.wait_subscribed(keys=2)
            await fake.play()
            depth = await c.until(
                lambda m: (
                    m["type"] == "message"
                    and m["channel"].endswith(":depth")
                    and m["payload"].get("state") == "live"
                ),
                timeout=60,
            )
            assert depth["payload"]["venue"] == "okx" and len(depth["payload"]["bids"]) == 20
            trade = await c.until(
                lambda m: m["type"] == "message" and m["channel"].endswith(":trades"), timeout=60
            )
            assert trade["payload"]["venue"] == "okx"
            await c.close()
