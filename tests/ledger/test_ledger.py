"""Issue 3 acceptance, over real sockets and real databases: idempotent publishing and trade events,
the REST API (signals, delivery status, events, accounts, control, connections), expiry and
``signal.status`` pushes."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.factories import account_snapshot, deal, order, signal
from tests.support.hub import WAIT, Client, HubProcess, RunningHub, running_hub
from tests.support.rest import Rest
from tests.support.waits import eventually

A1, A2 = "50123", "50124"
#: Delivery statuses in the order they may move (expired ranks below the final two).
RANK = {"pending": 0, "delivered": 1, "acked": 2, "expired": 3, "executed": 4, "rejected": 4}


@contextlib.asynccontextmanager
async def hub_on(tmp_path: Path, database_url: str | None) -> AsyncIterator[RunningHub]:
    async with running_hub(tmp_path, database_url=database_url) as h:
        yield h


def engine_token(h: RunningHub, sub: str = "eng") -> str:
    return h.token("engine", sub, publish=["signals:*"], subscribe=["signals:*"])


def ea_token(h: RunningHub, account: str = A1) -> str:
    return h.token("ea", f"ea-{account}", accounts=[account], subscribe=["signals:*"])


async def subscribe(c: Client, channel: str, since: int | None = None) -> dict[str, Any]:
    res = await c.request("subscribe", channel, None if since is None else {"since": since})
    assert res["type"] == "result", res
    payload: dict[str, Any] = res["payload"]
    return payload


async def next_message(c: Client, channel: str, timeout: float = WAIT) -> dict[str, Any]:
    return await c.until(lambda m: m["type"] == "message" and m.get("channel") == channel, timeout)


async def no_message(c: Client, channel: str, wait: float = 0.5) -> None:
    """Nothing more on ``channel`` (a bounded look, used only after a later marker was seen)."""
    with contextlib.suppress(TimeoutError):
        msg = await next_message(c, channel, wait)
        raise AssertionError(f"unexpected message {msg}")


async def publish(c: Client, sig: dict[str, Any]) -> dict[str, Any]:
    res = await c.request("publish", f"signals:{sig['strategy']}", sig)
    assert res["type"] == "result", res
    payload: dict[str, Any] = res["payload"]
    return payload


async def trade_event(c: Client, event: dict[str, Any]) -> dict[str, Any]:
    res = await c.request("trade.event", payload=event)
    assert res["type"] == "result", res
    payload: dict[str, Any] = res["payload"]
    return payload


# -- duplicates change nothing --------------------------------------------------------------------


async def test_duplicate_publish_over_websocket_and_rest(tmp_path: Path, database_url: str | None) -> None:
    async with hub_on(tmp_path, database_url) as h:
        eng = await h.connect(engine_token(h))
        ea = await h.connect(ea_token(h))
        await subscribe(ea, "signals:alpha")
        async with Rest(h.http, engine_token(h)) as rest:
            sig = signal()
            first = await publish(eng, sig)
            assert first["duplicate"] is False and first["offset"] >= 1
            again = await publish(eng, sig)
            assert again == {**first, "duplicate": True}
            r = await rest.post("/api/v1/signals", sig)
            assert r.status_code in (200, 201), r.text
            assert r.json()["offset"] == first["offset"] and r.json()["duplicate"] is True

            # A signal first published over REST, then again over WebSocket.
            sig2 = signal()
            r = await rest.post("/api/v1/signals", sig2)
            assert r.status_code in (200, 201), r.text
            assert r.json()["duplicate"] is False and r.json()["offset"] == first["offset"] + 1
            again2 = await publish(eng, sig2)
            assert again2["offset"] == first["offset"] + 1 and again2["duplicate"] is True

            # Even a different body under the same id creates nothing.
            changed = await publish(eng, {**sig, "volume": 5.0})
            assert changed["offset"] == first["offset"] and changed["duplicate"] is True

            marker = await publish(eng, signal())
            assert marker["offset"] == first["offset"] + 2
            got = [await next_message(ea, "signals:alpha") for _ in range(3)]
            assert [m["payload"]["id"] for m in got] == [sig["id"], sig2["id"], got[2]["payload"]["id"]]
            assert [m["offset"] for m in got] == [first["offset"], first["offset"] + 1, marker["offset"]]
            assert got[0]["payload"]["volume"] == 0.10
            await no_message(ea, "signals:alpha")

            rows = await rest.all_pages("/api/v1/signals", strategy="alpha")
            assert sorted(r["id"] for r in rows) == sorted([sig["id"], sig2["id"], got[2]["payload"]["id"]])
            one = await rest.signal(sig["id"])
            assert one["offset"] == first["offset"] and one["payload"]["volume"] == 0.10
        await ea.close()
        await eng.close()


async def test_duplicate_trade_event_is_stored_and_broadcast_once(
    tmp_path: Path, database_url: str | None
) -> None:
    async with hub_on(tmp_path, database_url) as h:
        dash_token = h.token("dashboard", "ops", accounts=["*"])
        dash = await h.connect(dash_token)
        await subscribe(dash, f"account:{A1}:events")
        ea = await h.connect(ea_token(h))
        event = deal(A1)
        assert await trade_event(ea, event) == {"id": event["id"], "duplicate": False}
        assert await trade_event(ea, event) == {"id": event["id"], "duplicate": True}
        # Reconnected EA resending from its outbox: still nothing new.
        await ea.close()
        ea = await h.connect(ea_token(h))
        assert await trade_event(ea, {**event, "price": 2.0}) == {"id": event["id"], "duplicate": True}
        marker = deal(A1)
        await trade_event(ea, marker)

        first = await next_message(dash, f"account:{A1}:events")
        second = await next_message(dash, f"account:{A1}:events")
        assert first["payload"]["id"] == event["id"] and first["payload"]["price"] == 1.0801
        assert second["payload"]["id"] == marker["id"]
        assert second["offset"] == first["offset"] + 1
        await no_message(dash, f"account:{A1}:events")

        # The durable channel's history holds it once too.
        replay = await h.connect(dash_token)
        res = await subscribe(replay, f"account:{A1}:events", since=0)
        assert res["recovered"] is True and res["replayed"] == 2
        ids = [(await next_message(replay, f"account:{A1}:events"))["payload"]["id"] for _ in range(2)]
        assert ids == [event["id"], marker["id"]]

        async with Rest(h.http, dash_token) as rest:
            items = await rest.all_pages("/api/v1/events", account=A1)
            assert sorted(e["id"] for e in items) == sorted([event["id"], marker["id"]])
        for c in (ea, dash, replay):
            await c.close()


# -- REST publishing ------------------------------------------------------------------------------


async def test_rest_publish_shares_the_channel_offsets_and_reaches_the_ea(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as h:
        eng = await h.connect(engine_token(h))
        ea = await h.connect(ea_token(h))
        await subscribe(ea, "signals:alpha")
        async with Rest(h.http, engine_token(h)) as rest:
            sigs = [signal() for _ in range(4)]
            offsets = []
            for n, sig in enumerate(sigs):
                if n % 2:
                    r = await rest.post("/api/v1/signals", sig)
                    assert r.status_code in (200, 201), r.text
                    body = r.json()
                    assert body["id"] == sig["id"] and body["channel"] == "signals:alpha"
                    assert isinstance(body["epoch"], str) and body["duplicate"] is False
                    offsets.append(body["offset"])
                else:
                    offsets.append((await publish(eng, sig))["offset"])
            assert offsets == list(range(offsets[0], offsets[0] + 4))
            got = [await next_message(ea, "signals:alpha") for _ in sigs]
            assert [m["offset"] for m in got] == offsets
            assert [m["payload"]["id"] for m in got] == [s["id"] for s in sigs]
            # The canonical form: ttl resolved to expiresAt, createdAt set.
            delivered = got[1]["payload"]
            assert "ttl" not in delivered
            assert delivered["expiresAt"] - delivered["createdAt"] == 600_000

            # Only an engine allowed to publish there may use REST.
            other = h.token("engine", "eng-beta", publish=["signals:beta"])
            async with Rest(h.http, other) as beta_only:
                r = await beta_only.post("/api/v1/signals", signal())
                assert r.status_code == 403, r.text
            ea_rest = Rest(h.http, ea_token(h))
            async with ea_rest:
                r = await ea_rest.post("/api/v1/signals", signal())
                assert r.status_code == 403, r.text
            async with Rest(h.http, "not-a-token") as anonymous:
                r = await anonymous.post("/api/v1/signals", signal())
                assert r.status_code == 401, r.text
        await ea.close()
        await eng.close()


async def test_invalid_signal_gives_422_with_field_details(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as h:
        eng = await h.connect(engine_token(h))
        async with Rest(h.http, engine_token(h)) as rest:
            bad = signal(volume=-1, comment="x" * 32, side="long", sl=2.0, tp=1.0)
            del bad["action"]
            r = await rest.post("/api/v1/signals", bad)
            assert r.status_code == 422, r.text
            detail = r.json()["detail"]
            assert detail["code"] == "validation_failed"
            fields = {d["field"] for d in detail["details"]}
            assert {"action", "comment"} <= fields, detail
            assert all({"field", "code", "message"} <= set(d) for d in detail["details"])

            r = await rest.post("/api/v1/signals", signal(ttl=30, expiresAt=1))
            assert r.status_code == 422 and {"ttl", "expiresAt"} & {
                d["field"] for d in r.json()["detail"]["details"]
            }, r.text
            r = await rest.post("/api/v1/signals", signal(volume=True))
            assert r.status_code == 422 and "volume" in {d["field"] for d in r.json()["detail"]["details"]}
            r = await rest.post("/api/v1/signals", signal(id="not-a-uuid"))
            assert r.status_code == 422 and "id" in {d["field"] for d in r.json()["detail"]["details"]}
            r = await rest.post("/api/v1/signals", signal(strategy="bad strategy!"))
            assert r.status_code == 422, r.text
            r = await rest.post("/api/v1/signals", signal(accounts=[], groups=[]))
            assert r.status_code == 422, r.text

            # The same rules over WebSocket, and nothing was stored by any refusal.
            res = await eng.request("publish", "signals:alpha", bad)
            assert res["type"] == "error" and res["payload"]["code"] == "validation_failed"
            assert {"action", "comment"} <= {d["field"] for d in res["payload"]["details"]}
            res = await eng.request("publish", "signals:beta", signal("alpha"))
            assert res["type"] == "error" and res["payload"]["code"] == "validation_failed"
            assert (await rest.ok("/api/v1/signals"))["items"] == []
            ok = await publish(eng, signal())
            assert ok["offset"] == 1  # refusals consumed no offset
        await eng.close()


# -- listing, filters and pagination --------------------------------------------------------------


async def test_list_signals_filters_and_cursor_pagination(tmp_path: Path, database_url: str | None) -> None:
    async with hub_on(tmp_path, database_url) as h:
        eng = await h.connect(engine_token(h))
        ea = await h.connect(ea_token(h, A2))
        alpha_a1 = [signal("alpha", [A1]) for _ in range(5)]
        alpha_a2 = [signal("alpha", [A2]) for _ in range(3)]
        beta_both = [signal("beta", [A1, A2]) for _ in range(4)]
        for sig in alpha_a1 + alpha_a2 + beta_both:
            await publish(eng, sig)
        executed = alpha_a2[1]["id"]
        await trade_event(ea, deal(A2, executed))
        dash = h.token("dashboard", "ops", accounts=["*"])
        async with Rest(h.http, dash) as rest:
            everything = await rest.all_pages("/api/v1/signals", limit=3)
            ids = [s["id"] for s in everything]
            assert len(ids) == len(set(ids)) == 12
            created = [s["createdAt"] for s in everything]
            assert created == sorted(created, reverse=True)  # newest first, across pages

            def ids_of(rows: list[dict[str, Any]]) -> set[str]:
                return {r["id"] for r in rows}

            assert ids_of(await rest.all_pages("/api/v1/signals", limit=2, strategy="beta")) == ids_of(
                beta_both
            )
            assert ids_of(await rest.all_pages("/api/v1/signals", limit=2, account=A1)) == ids_of(
                alpha_a1 + beta_both
            )
            assert ids_of(
                await rest.all_pages("/api/v1/signals", limit=2, strategy="alpha", account=A2)
            ) == ids_of(alpha_a2)
            done = await eventually(
                lambda: rest.all_pages("/api/v1/signals", status="executed"), lambda rows: len(rows) == 1
            )
            assert done[0]["id"] == executed
            assert {d["account"]: d["status"] for d in done[0]["deliveries"]} == {A2: "executed"}
            pending = await rest.all_pages("/api/v1/signals", limit=4, status="pending", account=A1)
            assert ids_of(pending) == ids_of(alpha_a1 + beta_both)
            page = await rest.ok("/api/v1/signals", limit=5)
            assert len(page["items"]) == 5 and page["nextCursor"]
            r = await rest.get("/api/v1/signals", limit=0)
            assert r.status_code == 400  # bad query values: 400 naming the field (bridge/api/params.py)
            r = await rest.get("/api/v1/signals", status="lost")
            assert r.status_code == 400
            missing = await rest.get(f"/api/v1/signals/{uuid.uuid4()}")
            assert missing.status_code == 404
        await ea.close()
        await eng.close()


# -- delivery status ------------------------------------------------------------------------------


async def test_status_moves_pending_delivered_acked_executed(
    tmp_path: Path, database_url: str | None
) -> None:
    async with hub_on(tmp_path, database_url) as h:
        eng = await h.connect(engine_token(h))
        sig = signal("alpha", [A1, A2])
        res = await publish(eng, sig)
        async with Rest(h.http, h.token("dashboard", "ops", accounts=["*"])) as rest:
            view = await rest.signal(sig["id"])
            assert view["offset"] == res["offset"] and view["strategy"] == "alpha"
            assert view["channel"] == "signals:alpha" and sorted(view["accounts"]) == [A1, A2]
            assert await rest.statuses(sig["id"]) == {A1: "pending", A2: "pending"}

            ea = await h.connect(ea_token(h, A1))
            sub = await subscribe(ea, "signals:alpha", since=0)
            assert sub["recovered"] is True and sub["replayed"] == 1
            msg = await next_message(ea, "signals:alpha")
            assert msg["payload"]["id"] == sig["id"]
            await eventually(
                lambda: rest.statuses(sig["id"]), lambda s: s == {A1: "delivered", A2: "pending"}
            )

            ack = await ea.request("signal.ack", payload={"signalId": sig["id"], "account": A1})
            assert ack["type"] == "result"
            assert ack["payload"] == {"signalId": sig["id"], "account": A1, "status": "acked"}
            assert (await rest.statuses(sig["id"]))[A1] == "acked"

            await trade_event(ea, deal(A1, sig["id"]))
            await eventually(lambda: rest.statuses(sig["id"]), lambda s: s == {A1: "executed", A2: "pending"})

            # Final states do not move back: a late ack reports the current status.
            late = await ea.request("signal.ack", payload={"signalId": sig["id"]})
            assert late["payload"]["status"] == "executed"
            unknown = await ea.request("signal.ack", payload={"signalId": str(uuid.uuid4())})
            assert unknown["type"] == "error" and unknown["payload"]["code"] == "not_found"
            # An EA may not ack for an account it does not hold.
            other = await ea.request("signal.ack", payload={"signalId": sig["id"], "account": A2})
            assert other["type"] == "error" and other["payload"]["code"] == "forbidden"

            view = await rest.signal(sig["id"])
            a1 = next(d for d in view["deliveries"] if d["account"] == A1)
            assert {"delivered", "acked", "executed"} <= set(a1["times"])

            # A rejected order makes the other account's delivery rejected, with the reason.
            ea2 = await h.connect(ea_token(h, A2))
            await trade_event(ea2, order(A2, sig["id"], "rejected", retcode=10019, message="no money"))
            done = await eventually(
                lambda: rest.signal(sig["id"]),
                lambda v: (
                    len(v["deliveries"]) == 2
                    and all(d["status"] in ("executed", "rejected") for d in v["deliveries"])
                ),
            )
            a2 = next(d for d in done["deliveries"] if d["account"] == A2)
            assert a2["status"] == "rejected" and a2["detail"] == "no money"
            # An order that is merely placed proves nothing.
            sig2 = signal("alpha", [A2])
            await publish(eng, sig2)
            await trade_event(ea2, order(A2, sig2["id"], "placed", ticket=7))
            await trade_event(ea2, deal(A2))  # marker: an event with no signal
            # An absence has no event to wait on: the marker's answer orders it after the placed order,
            # and 0.3 s more leaves room for a late (wrong) status change to show.
            await asyncio.sleep(0.3)
            assert (await rest.statuses(sig2["id"]))[A2] in ("pending", "delivered")
            await ea2.close()
            await ea.close()
        await eng.close()


async def test_short_ttl_signal_nobody_executes_becomes_expired(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as h:
        eng = await h.connect(engine_token(h))
        ea = await h.connect(ea_token(h))
        await subscribe(ea, "signals:alpha")
        short = signal(ttl=1)
        await publish(eng, short)
        assert (await next_message(ea, "signals:alpha"))["payload"]["id"] == short["id"]
        async with Rest(h.http, h.token("admin", "root")) as rest:
            # Delivered but never executed: the sweep (every second) marks it expired.
            await eventually(lambda: rest.statuses(short["id"]), lambda s: s == {A1: "expired"}, WAIT * 3)
            expired = await rest.all_pages("/api/v1/signals", status="expired")
            assert [s["id"] for s in expired] == [short["id"]]
            # A late execution report still overtakes expired.
            await trade_event(ea, deal(A1, short["id"]))
            await eventually(lambda: rest.statuses(short["id"]), lambda s: s == {A1: "executed"})
        await ea.close()
        await eng.close()


async def test_expired_signals_are_not_replayed_and_are_marked_expired(
    tmp_path: Path, database_url: str | None
) -> None:
    async with hub_on(tmp_path, database_url) as h:
        eng = await h.connect(engine_token(h))
        short = [signal(ttl=1) for _ in range(3)]
        long = [signal(ttl=600) for _ in range(2)]
        order_ = [short[0], long[0], short[1], short[2], long[1]]
        offsets = {s["id"]: (await publish(eng, s))["offset"] for s in order_}
        async with Rest(h.http, h.token("dashboard", "ops", accounts=["*"])) as rest:
            for s in short:
                await eventually(
                    lambda s=s: rest.statuses(s["id"]), lambda st: st == {A1: "expired"}, WAIT * 3
                )
            ea = await h.connect(ea_token(h))
            res = await subscribe(ea, "signals:alpha", since=0)
            assert res["recovered"] is True and res["replayed"] == 2
            got = [await next_message(ea, "signals:alpha") for _ in long]
            assert [m["payload"]["id"] for m in got] == [s["id"] for s in long]
            assert [m["offset"] for m in got] == [offsets[s["id"]] for s in long]
            live = signal()
            live_offset = (await publish(eng, live))["offset"]
            nxt = await next_message(ea, "signals:alpha")
            assert nxt["payload"]["id"] == live["id"] and nxt["offset"] == live_offset
            for s in short:
                assert await rest.statuses(s["id"]) == {A1: "expired"}
            # The replayed long-lived ones were delivered, the expired ones stay expired.
            await eventually(lambda: rest.statuses(long[1]["id"]), lambda st: st == {A1: "delivered"})
            await ea.close()
        await eng.close()


async def test_publishing_engine_receives_signal_status_pushes(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as h:
        eng = await h.connect(engine_token(h, "eng-a"))
        bystander = await h.connect(engine_token(h, "eng-b"))
        ea = await h.connect(ea_token(h))
        ea2 = await h.connect(ea_token(h, A2))
        await subscribe(ea, "signals:alpha")
        sig = signal("alpha", [A1, A2])
        await publish(eng, sig)
        assert (await next_message(ea, "signals:alpha"))["payload"]["id"] == sig["id"]
        await ea.request("signal.ack", payload={"signalId": sig["id"]})
        await trade_event(ea, deal(A1, sig["id"]))
        await trade_event(ea2, order(A2, sig["id"], "rejected", message="market closed"))

        pushes: list[dict[str, Any]] = []
        while not (
            any(p["account"] == A1 and p["status"] == "executed" for p in pushes)
            and any(p["account"] == A2 and p["status"] == "rejected" for p in pushes)
        ):
            msg = await eng.until(lambda m: m["type"] == "signal.status", WAIT * 2)
            assert msg["payload"]["signalId"] == sig["id"]
            assert isinstance(msg["payload"]["at"], int)
            pushes.append(msg["payload"])
        a1 = [p["status"] for p in pushes if p["account"] == A1]
        assert "acked" in a1 and a1[-1] == "executed"
        assert [RANK[s] for s in a1] == sorted(RANK[s] for s in a1) and len(set(a1)) == len(a1)
        rejected = next(p for p in pushes if p["account"] == A2)
        assert rejected["status"] == "rejected" and rejected["detail"] == "market closed"

        # A REST publish by the same subject is followed the same way on its WebSocket.
        async with Rest(h.http, engine_token(h, "eng-a")) as rest:
            sig2 = signal("alpha", [A2])
            r = await rest.post("/api/v1/signals", sig2)
            assert r.status_code in (200, 201), r.text
        await trade_event(ea2, deal(A2, sig2["id"]))
        push = await eng.until(
            lambda m: m["type"] == "signal.status" and m["payload"]["signalId"] == sig2["id"]
        )
        assert push["payload"]["status"] == "executed" and push["payload"]["account"] == A2

        # Another engine hears nothing about signals it did not publish.
        with pytest.raises(TimeoutError):
            await bystander.until(lambda m: m["type"] == "signal.status", 0.5)
        for c in (ea, ea2, eng, bystander):
            await c.close()


async def test_dashboards_follow_signals_and_events_on_system_channels(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as h:
        dash = await h.connect(h.token("dashboard", "ops", accounts=["*"]))
        await subscribe(dash, "system:signals")
        await subscribe(dash, "system:events")
        eng = await h.connect(engine_token(h))
        ea = await h.connect(ea_token(h))
        sig = signal()
        await publish(eng, sig)
        event = deal(A1, sig["id"])
        await trade_event(ea, event)
        seen = await dash.until(lambda m: m.get("channel") == "system:events")
        assert seen["payload"]["id"] == event["id"]
        status = await dash.until(
            lambda m: m.get("channel") == "system:signals" and m["payload"].get("status") == "executed"
        )
        assert status["payload"]["signalId"] == sig["id"] and status["payload"]["account"] == A1
        for c in (dash, eng, ea):
            await c.close()


# -- trade events over REST -----------------------------------------------------------------------


async def test_events_list_filter_paginate_and_csv(tmp_path: Path, database_url: str | None) -> None:
    async with hub_on(tmp_path, database_url) as h:
        ea1 = await h.connect(ea_token(h, A1))
        ea2 = await h.connect(ea_token(h, A2))
        sid = str(uuid.uuid4())
        e1 = [deal(A1, sid, ticket=n) for n in range(1, 6)]
        e1.append(order(A1, sid, "placed", ticket=42))
        e1.append(account_snapshot(A1))
        e2 = [deal(A2, ticket=n) for n in range(7)]
        for e in e1:
            await trade_event(ea1, e)
        for e in e2:
            await trade_event(ea2, e)
        # Not stored: a refused event, and one for an account the EA does not hold.
        res = await ea1.request("trade.event", payload={**deal(A1), "entry": "sideways", "extra": 1})
        assert res["type"] == "error" and res["payload"]["code"] == "validation_failed"
        assert {"entry", "extra"} <= {d["field"] for d in res["payload"]["details"]}
        res = await ea1.request("trade.event", payload=deal(A2))
        assert res["type"] == "error" and res["payload"]["code"] == "forbidden"

        def ids(rows: list[dict[str, Any]]) -> list[str]:
            return [r["id"] for r in rows]

        async with Rest(h.http, h.token("dashboard", "ops", accounts=["*"])) as rest:
            every = await rest.all_pages("/api/v1/events", limit=4)
            assert len(ids(every)) == len(set(ids(every))) == 14
            assert set(ids(every)) == set(ids(e1 + e2))
            seqs = [e["seq"] for e in every]
            assert seqs == sorted(seqs, reverse=True)  # newest first
            one = next(e for e in every if e["id"] == e1[0]["id"])
            assert one["kind"] == "deal" and one["account"] == A1 and one["signalId"] == sid
            assert one["payload"]["ticket"] == 1 and one["ts"] == e1[0]["ts"]

            assert set(ids(await rest.all_pages("/api/v1/events", limit=3, account=A2))) == set(ids(e2))
            deals_a1 = await rest.all_pages("/api/v1/events", limit=2, account=A1, kind="deal")
            assert set(ids(deals_a1)) == set(ids(e1[:5]))
            by_signal = await rest.all_pages("/api/v1/events", signalId=sid)
            assert set(ids(by_signal)) == set(ids(e1[:6]))
            snap = await rest.ok("/api/v1/events", kind="account")
            assert ids(snap["items"]) == [e1[6]["id"]]
            ts_cut = e2[3]["ts"]
            recent = await rest.all_pages("/api/v1/events", account=A2, since=ts_cut)
            assert all(e["ts"] >= ts_cut for e in recent) and e2[-1]["id"] in ids(recent)
            r = await rest.get("/api/v1/events", kind="trade")
            assert r.status_code == 400

            r = await rest.get("/api/v1/events.csv", account=A1)
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
            rows = list(csv.DictReader(io.StringIO(r.text)))
            assert [row["id"] for row in rows] == ids(e1)  # oldest first
            assert rows[0]["kind"] == "deal" and rows[0]["signalId"] == sid and rows[0]["ticket"] == "1"
            assert float(rows[0]["price"]) == 1.0801
            all_rows = list(csv.DictReader(io.StringIO((await rest.get("/api/v1/events.csv")).text)))
            assert sorted(row["id"] for row in all_rows) == sorted(ids(e1 + e2))

        # An EA sees only its own account.
        async with Rest(h.http, ea_token(h, A1)) as mine:
            assert set(ids(await mine.all_pages("/api/v1/events", account=A1))) == set(ids(e1))
            r = await mine.get("/api/v1/events", account=A2)
            assert r.status_code == 403
        await ea1.close()
        await ea2.close()


# -- accounts, control, connections ---------------------------------------------------------------


async def test_accounts_show_snapshot_and_connection_state(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as h:
        async with Rest(h.http, h.token("dashboard", "ops", accounts=["*"])) as rest:
            ea = await h.connect(ea_token(h))

            def row(items: dict[str, Any]) -> dict[str, Any] | None:
                return next((a for a in items["items"] if a["account"] == A1), None)

            first = await eventually(
                lambda: rest.ok("/api/v1/accounts"), lambda d: (row(d) or {}).get("connected")
            )
            assert row(first)["lastSeen"] is not None  # type: ignore[index]
            snap = account_snapshot(A1, equity=12_345.5, balance=12_000.0)
            await trade_event(ea, snap)
            got = await eventually(
                lambda: rest.ok("/api/v1/accounts"), lambda d: (row(d) or {}).get("equity") == 12_345.5
            )
            acc = row(got)
            assert acc is not None
            assert acc["balance"] == 12_000.0 and acc["margin"] == 108.0 and acc["freeMargin"] == 9_904.5
            assert acc["currency"] == "USD" and acc["connected"] is True
            assert [p["ticket"] for p in acc["positions"]] == [991]
            assert acc["updatedAt"] == snap["ts"]

            # An older snapshot arriving late does not replace the newer one.
            await trade_event(ea, account_snapshot(A1, ts=snap["ts"] - 60_000, equity=1.0))
            await asyncio.sleep(0.3)  # an absence has no event to wait on: room for a wrong replacement
            acc = row(await rest.ok("/api/v1/accounts"))
            assert acc is not None and acc["equity"] == 12_345.5

            await ea.close()
            await eventually(
                lambda: rest.ok("/api/v1/accounts"), lambda d: (row(d) or {}).get("connected") is False
            )

        # An EA token sees its own account only.
        async with Rest(h.http, ea_token(h, A2)) as other:
            assert [a["account"] for a in (await other.ok("/api/v1/accounts"))["items"]] == []


async def test_control_pause_resume_strategy_and_account(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as h:
        eng = await h.connect(engine_token(h))
        ea = await h.connect(ea_token(h))
        await subscribe(ea, f"account:{A1}:control")
        async with (
            Rest(h.http, h.token("admin", "root")) as admin,
            Rest(h.http, engine_token(h)) as eng_rest,
            Rest(h.http, h.token("dashboard", "ops", accounts=["*"])) as dash,
        ):
            r = await admin.post(
                "/api/v1/control", {"scope": "strategy", "command": "pause", "strategy": "alpha"}
            )
            assert r.status_code == 200, r.text
            assert r.json()["strategies"] == ["alpha"]
            msg = await next_message(ea, f"account:{A1}:control")
            assert msg["payload"]["command"] == "pause" and msg["payload"]["scope"] == "strategy"
            assert msg["payload"]["strategy"] == "alpha" and msg["payload"]["by"] == "root"

            res = await eng.request("publish", "signals:alpha", signal())
            assert res["type"] == "error" and res["payload"]["code"] == "paused"
            assert res["payload"]["retryable"] is True
            r = await eng_rest.post("/api/v1/signals", signal())
            assert r.status_code == 409 and r.json()["detail"]["code"] == "paused", r.text
            assert (await publish(eng, signal("beta")))["duplicate"] is False  # other strategies flow
            assert (await dash.ok("/api/v1/control"))["strategies"] == ["alpha"]

            r = await admin.post(
                "/api/v1/control", {"scope": "strategy", "command": "resume", "strategy": "alpha"}
            )
            assert r.status_code == 200 and r.json()["strategies"] == []
            msg = await next_message(ea, f"account:{A1}:control")
            assert msg["payload"]["command"] == "resume"
            assert (await publish(eng, signal()))["duplicate"] is False

            r = await admin.post("/api/v1/control", {"scope": "account", "command": "pause", "account": A1})
            assert r.status_code == 200 and r.json()["accounts"] == [A1]
            msg = await next_message(ea, f"account:{A1}:control")
            assert msg["payload"]["scope"] == "account" and msg["payload"]["account"] == A1
            # An EA that was offline recovers the command from the durable channel.
            late = await h.connect(ea_token(h))
            res = await subscribe(late, f"account:{A1}:control", since=0)
            assert res["recovered"] is True and res["replayed"] == 3

            # Admin only: a dashboard token and an engine token are refused.
            body = {"scope": "account", "command": "resume", "account": A1}
            assert (await dash.post("/api/v1/control", body)).status_code == 403
            assert (await eng_rest.post("/api/v1/control", body)).status_code == 403
            r = await admin.post("/api/v1/control", {"scope": "account", "command": "pause"})
            assert r.status_code == 422
            r = await admin.post("/api/v1/control", {"scope": "galaxy", "command": "pause", "account": A1})
            assert r.status_code == 422
            await late.close()
        await ea.close()
        await eng.close()


async def test_connections_list_and_operator_close(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as h:
        ea = await h.connect(ea_token(h))
        conn_id = ea.welcome["payload"]["connectionId"]
        async with (
            Rest(h.http, h.token("admin", "root")) as admin,
            Rest(h.http, h.token("dashboard", "ops", accounts=["*"])) as dash,
            Rest(h.http, engine_token(h)) as eng_rest,
        ):
            listed = (await dash.ok("/api/v1/connections"))["items"]
            mine = next(c for c in listed if c["id"] == conn_id)
            assert mine["sub"] == f"ea-{A1}" and mine["role"] == "ea" and mine["accounts"] == [A1]
            assert (await eng_rest.get("/api/v1/connections")).status_code == 403
            assert (await dash.delete(f"/api/v1/connections/{conn_id}")).status_code == 403
            assert (await admin.delete("/api/v1/connections/c-nosuchconnection")).status_code == 404
            r = await admin.delete(f"/api/v1/connections/{conn_id}")
            assert r.status_code == 200, r.text
            code, _ = await ea.closed()
            assert code == 4006
            await eventually(
                lambda: dash.ok("/api/v1/connections"),
                lambda d: conn_id not in {c["id"] for c in d["items"]},
            )
            # Token administration is admin only as well.
            req = {"role": "ea", "sub": "ea-9", "accounts": ["9"]}
            assert (await dash.post("/api/v1/tokens", req)).status_code == 403
            assert (
                await dash.post("/api/v1/tokens/revoke", {"kind": "sub", "value": "x"})
            ).status_code == 403
            r = await admin.post("/api/v1/tokens", req)
            assert r.status_code == 201, r.text
            issued = await h.connect(r.json()["token"])
            await issued.close()


# -- recovery racing a publication that is committed but not yet fanned out -----------------------


async def test_recovery_does_not_duplicate_a_publication_fanned_out_after_it(tmp_path: Path) -> None:
    """A publication committed before a subscriber's recovery reads the log, whose publishing
    coroutine resumes (and fans out) only after that recovery finished, must not reach the
    recovered subscriber a second time. Under load the event loop can resume the publisher
    after the recovery (the store's writer thread hands back its results after the commit);
    here the store is made to hand back late so the interleaving is certain."""
    async with running_hub(tmp_path) as h:
        log = h.hub.log
        original = log.append_many
        committed = asyncio.Event()
        release = asyncio.Event()

        async def late_append_many(requests: Any) -> Any:
            appended = await original(requests)
            committed.set()
            await release.wait()  # committed, but this coroutine resumes late
            return appended

        log.append_many = late_append_many
        try:
            eng = await h.connect(engine_token(h))
            ea = await h.connect(ea_token(h))
            sig = signal()
            await eng.send({"type": "publish", "requestId": "p1", "channel": "signals:alpha", "payload": sig})
            await asyncio.wait_for(committed.wait(), WAIT)
            res = await subscribe(ea, "signals:alpha", since=0)
            assert res["offset"] == 1 and res["replayed"] == 1
            first = await next_message(ea, "signals:alpha")
            assert first["offset"] == 1 and first["payload"]["id"] == sig["id"]
            release.set()
            assert (await eng.until(lambda m: m.get("requestId") == "p1"))["payload"]["offset"] == 1
        finally:
            log.append_many = original
            release.set()
        marker = signal()
        assert (await publish(eng, marker))["offset"] == 2
        nxt = await next_message(ea, "signals:alpha")
        assert (nxt["offset"], nxt["payload"]["id"]) == (2, marker["id"]), "offset 1 delivered twice"
        await ea.close()
        await eng.close()


# -- a status proved by a trade event survives a crash right after the event's result ------------


async def test_executed_status_survives_a_kill_right_after_the_event_result(tmp_path: Path) -> None:
    """The `result` of a trade event promises it is stored; the status it proves must be too,
    or a SIGKILL just after the result leaves the signal `delivered` forever (the EA never
    resends an event it has a result for)."""
    hub = HubProcess(tmp_path / "hub")
    await asyncio.to_thread(hub.start)
    try:
        eng = await Client.open(hub.url, hub.token("engine", "eng", publish=["signals:*"]))
        sigs = [signal() for _ in range(50)]
        for sig in sigs:
            await publish(eng, sig)
        await eng.close()
        ea = await Client.open(hub.url, hub.token("ea", f"ea-{A1}", accounts=[A1], subscribe=["signals:*"]))
        for n, sig in enumerate(sigs):
            await ea.send({"type": "trade.event", "requestId": f"e{n}", "payload": deal(A1, sig["id"])})
        results = 0
        while results < len(sigs):
            msg = await ea.recv()
            assert msg["type"] == "result", msg
            results += 1
        hub.signal(9)  # SIGKILL the moment every result is in
        await asyncio.to_thread(hub.wait)
        await asyncio.to_thread(hub.start)
        async with Rest(hub.http, hub.token("admin", "root")) as rest:
            rows = await rest.all_pages("/api/v1/signals", limit=1000)
            statuses = {r["id"]: {d["account"]: d["status"] for d in r["deliveries"]} for r in rows}
            lost = [sid for sid, st in statuses.items() if st != {A1: "executed"}]
            assert lost == [], f"{len(lost)} of {len(sigs)} executed statuses lost by the kill"
    finally:
        await asyncio.to_thread(hub.stop)


# -- an EA's ack and its execution report keep their order through the hub's batching ------------


async def test_pipelined_ack_then_report_are_applied_in_order(
    tmp_path: Path, database_url: str | None
) -> None:
    """EAs that ack a signal and report its execution right away, many at once and without waiting
    for answers: every ack must find the delivery not yet executed (answer "acked"), and every
    signal must end executed. A hub that batched acks and reports separately could commit one
    EA's report before its ack, when another EA's report opened the batch first."""
    accounts = [A1, A2, "50125", "50126"]
    async with hub_on(tmp_path, database_url) as h:
        eng = await h.connect(engine_token(h))
        eas = [await h.connect(ea_token(h, a)) for a in accounts]
        for ea in eas:
            await subscribe(ea, "signals:alpha")
        rounds = 25
        sigs = [signal(accounts=[a]) for _ in range(rounds) for a in accounts]
        for sig in sigs:
            await eng.send(
                {"type": "publish", "requestId": sig["id"], "channel": "signals:alpha", "payload": sig}
            )

        async def answer_all(ea: Any, account: str) -> list[str]:
            ids = [(await next_message(ea, "signals:alpha"))["payload"]["id"] for _ in range(rounds)]
            for n, sid in enumerate(ids):  # back to back: one read holds a report, then the next ack
                await ea.send({"type": "signal.ack", "requestId": f"k{n}", "payload": {"signalId": sid}})
                await ea.send({"type": "trade.event", "requestId": f"e{n}", "payload": deal(account, sid)})
            answers: dict[str, dict[str, Any]] = {}
            while len(answers) < 2 * rounds:  # answers to different request types may come in any order
                res = await ea.until(lambda m: "requestId" in m)
                assert res["type"] == "result", res
                answers[res["requestId"]] = res["payload"]
            assert all(answers[f"e{n}"]["duplicate"] is False for n in range(rounds))
            return [answers[f"k{n}"]["status"] for n in range(rounds)]

        answered = await asyncio.gather(*(answer_all(ea, a) for ea, a in zip(eas, accounts, strict=True)))
        assert all(s == "acked" for statuses in answered for s in statuses), answered
        for sig in sigs:
            view = await h.services.store.get_signal(sig["id"])
            assert view is not None
            assert [(d.status.value, d.times.get("acked") is not None) for d in view.deliveries] == [
                ("executed", True)
            ]
        for c in (*eas, eng):
            await c.close()


# -- a store that cannot write: retryable answers, nothing half done --------------------------------


async def test_store_outage_answers_unavailable_and_a_resend_succeeds(tmp_path: Path) -> None:
    """While the database refuses writes, a publish, an ack and a trade event each get a retryable
    `unavailable` (with their requestId) and the connections stay open; sent again afterwards, the
    same messages succeed once."""
    from bridge.store.exceptions import StoreUnavailable

    async with running_hub(tmp_path) as h:
        store = h.services.store
        eng = await h.connect(engine_token(h))
        ea = await h.connect(ea_token(h))
        await subscribe(ea, "signals:alpha")
        sig = signal()
        assert (await publish(eng, sig))["offset"] == 1
        await next_message(ea, "signals:alpha")

        originals = (store.append_many, store.update_statuses, store.record_events)

        async def down(*_args: Any, **_kwargs: Any) -> Any:
            raise StoreUnavailable("write: database unavailable", operation="write")

        store.append_many = store.update_statuses = store.record_events = down  # type: ignore[method-assign]
        try:
            again = signal()
            event = deal(A1, sig["id"])
            answers = [
                await eng.request("publish", "signals:alpha", again),
                await ea.request("signal.ack", payload={"signalId": sig["id"]}),
                await ea.request("trade.event", payload=event),
            ]
        finally:
            store.append_many, store.update_statuses, store.record_events = originals  # type: ignore[method-assign]
        for res in answers:
            assert res["type"] == "error", res
            assert (res["payload"]["code"], res["payload"]["retryable"]) == ("unavailable", True), res
        assert (await publish(eng, again))["offset"] == 2
        ack = await ea.request("signal.ack", payload={"signalId": sig["id"]})
        assert ack["payload"]["status"] == "acked", ack
        assert (await trade_event(ea, event))["duplicate"] is False
        assert (await trade_event(ea, event))["duplicate"] is True
        await ea.close()
        await eng.close()
