"""REST answers to hostile input over a real HTTP connection (issue 16, items 5 and 6): bad query
values get a structured 400 naming the field, the CSV export never sends 200 and then breaks,
and every text cell of the export is safe to open in a spreadsheet."""

from __future__ import annotations

import csv
import io
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from tests.support.hub import WAIT, RunningHub, running_hub

ACCOUNT = "50123"
BAD_CURSORS = [
    "-1",
    "abc",
    "9" * 400,
    "\x00",
    "1\x00",
    "Zm9vYmFyYmF6Cg==",
    str(2**63),
    "9" * 19,
    "١٢٣",  # Arabic-Indic digits: str.isdigit() says yes, a database integer says no
    "",
    " 12",
]
BAD_TIMES = [str(2**63), str(2**70), str(-(2**63) - 1), "-1", "abc", "1.5", "1e3", ""]
LISTS = ["/api/v1/signals", "/api/v1/events", "/api/v1/events.csv"]


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[RunningHub]:
    async with running_hub(tmp_path) as h:
        yield h


def _client(hub: RunningHub, token: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=hub.http, headers={"Authorization": f"Bearer {token}"}, timeout=WAIT)


def _assert_bad(r: httpx.Response, field: str) -> None:
    assert r.status_code == 400, (r.status_code, r.text[:300])
    detail = r.json()["detail"]
    assert detail["code"] == "bad_request" and detail["field"] == field, detail
    assert field in detail["message"]


async def test_bad_cursor_is_a_400_naming_it(hub: RunningHub) -> None:
    async with _client(hub, hub.token("admin", "op")) as rest:
        for path in LISTS[:2]:
            for cursor in BAD_CURSORS:
                _assert_bad(await rest.get(path, params={"cursor": cursor}), "cursor")


async def test_bad_time_is_a_400_naming_it(hub: RunningHub) -> None:
    async with _client(hub, hub.token("admin", "op")) as rest:
        for path in LISTS:
            for field in ("since", "until"):
                for value in BAD_TIMES:
                    _assert_bad(await rest.get(path, params={field: value}), field)


async def test_other_bad_query_values_are_400_too(hub: RunningHub) -> None:
    async with _client(hub, hub.token("admin", "op")) as rest:
        _assert_bad(await rest.get("/api/v1/signals", params={"limit": "0"}), "limit")
        _assert_bad(await rest.get("/api/v1/events", params={"kind": "trade"}), "kind")
        _assert_bad(await rest.get("/api/v1/signals", params={"status": "lost"}), "status")
        r = await rest.get("/api/v1/signals", params={"limit": "0", "cursor": "x"})
        assert r.status_code == 400
        assert {d["field"] for d in r.json()["detail"]["details"]} == {"limit", "cursor"}


async def test_good_extremes_still_answer(hub: RunningHub) -> None:
    async with _client(hub, hub.token("admin", "op")) as rest:
        for path in LISTS:
            r = await rest.get(path, params={"since": "0", "until": str(2**53 - 1)})
            assert r.status_code == 200, r.text
        r = await rest.get("/api/v1/events", params={"cursor": "9" * 18})
        assert r.status_code == 200 and r.json()["items"] == []


async def _send_events(hub: RunningHub, events: list[dict[str, object]]) -> None:
    ea = await hub.connect(hub.token("ea", "ea-1", accounts=[ACCOUNT]))
    try:
        for event in events:
            reply = await ea.request("trade.event", payload=event)
            assert reply["type"] == "result", reply
    finally:
        await ea.close()


def _deal(symbol: str, comment: str | None = None, profit: float | None = None) -> dict[str, object]:
    event: dict[str, object] = {
        "id": str(uuid.uuid4()),
        "kind": "deal",
        "account": ACCOUNT,
        "ts": int(time.time() * 1000),
        "ticket": 991,
        "symbol": symbol,
        "side": "buy",
        "entry": "in",
        "volume": 0.1,
        "price": 1.0801,
    }
    if comment is not None:
        event["comment"] = comment
    if profit is not None:
        event["profit"] = profit
    return event


async def test_csv_export_neutralises_formulas(hub: RunningHub) -> None:
    hostile = ["+1+1", "-2+3"]  # symbols the validator accepts (it refuses "=" and "@")
    events = [_deal(s) for s in hostile]
    events.append(_deal("EURUSD", comment='=HYPERLINK("http://x","y")', profit=-12.5))
    events.append(_deal("EURUSD", comment="@SUM(1)"))
    await _send_events(hub, events)
    async with _client(hub, hub.token("admin", "op")) as rest:
        r = await rest.get("/api/v1/events.csv")
        assert r.status_code == 200
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert len(rows) == len(events)
    assert [row["symbol"] for row in rows[:2]] == ["'" + s for s in hostile]
    assert rows[2]["comment"] == '\'=HYPERLINK("http://x","y")'
    assert rows[2]["profit"] == "-12.5"  # a number stays a number
    assert rows[2]["symbol"] == "EURUSD"
    assert rows[3]["comment"] == "'@SUM(1)"
    for row in rows:
        for value in row.values():
            assert not value.startswith(("=", "+", "@", "\t", "\r")), row
            assert not value.startswith("-") or value.lstrip("-").replace(".", "", 1).isdigit(), row


async def test_csv_error_comes_before_the_200(hub: RunningHub) -> None:
    """A CSV download is answered with its real status: never 200 and then a cut-off body."""
    await _send_events(hub, [_deal("EURUSD")])
    async with _client(hub, hub.token("admin", "op")) as rest:
        async with rest.stream("GET", "/api/v1/events.csv", params={"since": str(2**63)}) as r:
            assert r.status_code == 400
            await r.aread()
        async with rest.stream("GET", "/api/v1/events.csv", params={"until": str(2**53 - 1)}) as r:
            assert r.status_code == 200
            body = (await r.aread()).decode()
    assert len(list(csv.DictReader(io.StringIO(body)))) == 1


HOSTILE_TEXT = ["\x00", "a\x00b", "x" * 1000, "'; drop table signals; --", "\u202eabc", "a b", "é"]


@pytest.fixture(params=["sqlite", "postgres"])
async def any_hub(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[RunningHub]:
    url = None if request.param == "sqlite" else request.getfixturevalue("pg_database")
    async with running_hub(tmp_path, database_url=url) as h:
        yield h


async def test_text_query_values_never_reach_the_database_malformed(any_hub: RunningHub) -> None:
    """PostgreSQL refuses NUL in text: unvalidated, `account=%00` was a 500 there."""
    fields = {
        "/api/v1/events": ["account", "signalId"],
        "/api/v1/events.csv": ["account", "signalId"],
        "/api/v1/signals": ["account", "strategy"],
    }
    async with _client(any_hub, any_hub.token("admin", "op")) as rest:
        for path, names in fields.items():
            for name in names:
                for value in HOSTILE_TEXT:
                    _assert_bad(await rest.get(path, params={name: value}), name)
        for value in HOSTILE_TEXT[:-2]:
            r = await rest.get("/api/v1/signals/" + quote(value, safe=""))
            assert r.status_code in (400, 404), (value, r.status_code, r.text)
            assert r.status_code == 404 or r.json()["detail"]["field"] == "signal_id"
        assert (await rest.get("/api/v1/events", params={"account": ACCOUNT})).status_code == 200
        assert (await rest.get(f"/api/v1/signals/{uuid.uuid4()}")).status_code == 404
