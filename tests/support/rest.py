"""The REST API with one bearer token (:class:`Rest`, httpx), for tests that read the ledger's views
over HTTP. Request bodies come from :mod:`tests.support.factories`."""

from __future__ import annotations

from typing import Any

import httpx

from tests.support.waits import WAIT

__all__ = ["Rest"]


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
