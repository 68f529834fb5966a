"""Builders for signals and trade events, a REST helper and a polling wait, for the ledger tests."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx

from tests.support.hub import WAIT

__all__ = [
    "RANK",
    "Rest",
    "account_snapshot",
    "deal",
    "eventually",
    "now_ms",
    "order",
    "signal",
]

T = TypeVar("T")

#: Delivery statuses in the order they may move (expired ranks below the final two).
RANK = {"pending": 0, "delivered": 1, "acked": 2, "expired": 3, "executed": 4, "rejected": 4}


def now_ms() -> int:
    return int(time.time() * 1000)


def signal(
    strategy: str = "alpha", accounts: list[str] | None = None, sid: str | None = None, **extra: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": sid or str(uuid.uuid4()),
        "strategy": strategy,
        "accounts": accounts if accounts is not None else ["50123"],
        "symbol": "EURUSD",
        "action": "open",
        "side": "buy",
        "orderType": "market",
        "volume": 0.10,
        "sl": 1.0700,
        "tp": 1.0900,
        "ttl": 600,
    }
    body.update(extra)
    return body


def numbered_signal(n: int, **extra: Any) -> dict[str, Any]:
    """:func:`signal` with an id that follows from ``n`` (UUID ``n + 1``), for tests that compare the
    ids received with the ids published, in order."""
    return signal(sid=str(uuid.UUID(int=n + 1, version=4)), **extra)


def deal(account: str, signal_id: str | None = None, eid: str | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": eid or str(uuid.uuid4()),
        "kind": "deal",
        "account": account,
        "ts": now_ms(),
        "ticket": 991,
        "symbol": "EURUSD",
        "side": "buy",
        "entry": "in",
        "volume": 0.1,
        "price": 1.0801,
    }
    if signal_id is not None:
        body["signalId"] = signal_id
    body.update(extra)
    return body


def order(account: str, signal_id: str | None, state: str, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "kind": "order",
        "account": account,
        "ts": now_ms(),
        "state": state,
        "symbol": "EURUSD",
        "side": "buy",
        "orderType": "market",
        "volume": 0.1,
    }
    if signal_id is not None:
        body["signalId"] = signal_id
    body.update(extra)
    return body


def account_snapshot(account: str, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "kind": "account",
        "account": account,
        "ts": now_ms(),
        "balance": 10_000.0,
        "equity": 10_012.5,
        "margin": 108.0,
        "freeMargin": 9_904.5,
        "currency": "USD",
        "leverage": 100,
        "positions": [
            {
                "ticket": 991,
                "symbol": "EURUSD",
                "side": "buy",
                "volume": 0.1,
                "priceOpen": 1.0801,
                "profit": 12.5,
            }
        ],
    }
    body.update(extra)
    return body


async def eventually(
    probe: Callable[[], Awaitable[T]], accept: Callable[[T], bool], timeout: float = WAIT * 2
) -> T:
    """Poll ``probe`` until ``accept`` says yes; fails with the last value seen (never a timing check)."""
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if accept(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not reached; last value: {value!r}")
        await asyncio.sleep(0.1)


class Rest:
    """The REST API with one bearer token."""

    def __init__(self, base: str, token: str) -> None:
        self.client = httpx.AsyncClient(
            base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=WAIT * 3
        )

    async def __aenter__(self) -> Rest:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.client.aclose()

    async def get(self, path: str, **params: Any) -> httpx.Response:
        return await self.client.get(path, params={k: v for k, v in params.items() if v is not None})

    async def post(self, path: str, body: Any) -> httpx.Response:
        return await self.client.post(path, json=body)

    async def delete(self, path: str) -> httpx.Response:
        return await self.client.delete(path)

    async def ok(self, path: str, **params: Any) -> Any:
        r = await self.get(path, **params)
        assert r.status_code == 200, (r.status_code, r.text)
        return r.json()

    async def signal(self, signal_id: str) -> dict[str, Any]:
        data: dict[str, Any] = await self.ok(f"/api/v1/signals/{signal_id}")
        return data

    async def statuses(self, signal_id: str) -> dict[str, str]:
        """account -> delivery status of one signal."""
        view = await self.signal(signal_id)
        return {d["account"]: d["status"] for d in view["deliveries"]}

    async def all_pages(self, path: str, limit: int = 100, **params: Any) -> list[dict[str, Any]]:
        """Follow ``nextCursor`` to the end; returns every item in page order."""
        items: list[dict[str, Any]] = []
        cursor: str | None = None
        for _ in range(100_000):
            page = await self.ok(path, limit=limit, cursor=cursor, **params)
            items.extend(page["items"])
            cursor = page["nextCursor"]
            if not cursor:
                return items
        raise AssertionError("pagination does not end")
