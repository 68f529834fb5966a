"""Subscriptions managed over REST, over real sockets: a live connection, every connection of a
subject, refusals (a foreign account, a strategy the engine does not own), recovery with ``since``."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from bridge.store.exceptions import StoreUnavailable
from tests.support.hub import WAIT, RunningHub, publish, running_hub, settle

EA = "50123"
C = "/api/v1/connections"
S = "/api/v1/subjects"


async def rest(h: RunningHub, method: str, path: str, token: str, body: Any = None) -> httpx.Response:
    async with httpx.AsyncClient(base_url=h.http, timeout=WAIT) as http:
        return await http.request(method, path, json=body, headers={"Authorization": f"Bearer {token}"})


def ea_token(h: RunningHub, sub: str = f"ea-{EA}") -> str:
    return h.token("ea", sub, accounts=[EA], subscribe=["signals:*"])


async def test_admin_subscribes_and_unsubscribes_a_live_connection(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as h:
        admin = h.token("admin", "ops", accounts=["*"])
        engine = await h.connect(h.token("engine", "eng", publish=["signals:*"]))
        ea = await h.connect(ea_token(h))
        cid = ea.welcome["payload"]["connectionId"]
        first = await publish(engine)

        r = await rest(h, "POST", f"{C}/{cid}/subscriptions", admin, {"channel": "signals:alpha"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body == {
            "connectionId": cid,
            "channel": "signals:alpha",
            "result": {"offset": first, "epoch": body["result"]["epoch"], "durable": True},
        }
        pushed = await ea.until(lambda m: m["type"] == "subscribed")
        assert pushed == {"type": "subscribed", "channel": "signals:alpha", "payload": body["result"]}
        assert pushed["payload"]["offset"] == first

        # Live publications reach it, once each.
        second = await publish(engine)
        got = [m for m in await settle(ea) if m["type"] == "message"]
        assert [(m["channel"], m["offset"]) for m in got] == [("signals:alpha", second)]
        # The connection sees it as its own: subscribing again itself is `already_subscribed`.
        again = await ea.request("subscribe", "signals:alpha")
        assert again["payload"]["code"] == "already_subscribed"
        # Twice over REST: 409.
        dup = await rest(h, "POST", f"{C}/{cid}/subscriptions", admin, {"channel": "signals:alpha"})
        assert dup.status_code == 409 and dup.json()["detail"]["code"] == "already_subscribed"

        r = await rest(h, "DELETE", f"{C}/{cid}/subscriptions/signals:alpha", admin)
        assert r.status_code == 200, r.text
        assert r.json() == {"connectionId": cid, "channel": "signals:alpha"}
        gone = await ea.until(lambda m: m["type"] == "unsubscribed")
        assert gone == {"type": "unsubscribed", "channel": "signals:alpha", "payload": {"reason": "rest"}}
        await publish(engine)
        assert [m for m in await settle(ea) if m["type"] == "message"] == []
        missing = await rest(h, "DELETE", f"{C}/{cid}/subscriptions/signals:alpha", admin)
        assert missing.status_code == 404 and missing.json()["detail"]["code"] == "not_subscribed"
        unknown = await rest(h, "POST", f"{C}/c-0/subscriptions", admin, {"channel": "signals:a"})
        assert unknown.status_code == 404 and unknown.json()["detail"]["code"] == "not_found"

        await ea.close()
        await engine.close()
        await h.wait_clean()


async def test_engine_owning_the_strategy_subscribes_every_connection_of_a_subject(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as h:
        owner = h.token("engine", "eng", publish=["signals:alpha"])
        engine = await h.connect(owner)
        token = ea_token(h)
        eas = [await h.connect(token), await h.connect(token)]
        other = await h.connect(ea_token(h, "ea-other"))  # another subject: left alone
        ids = sorted(c.welcome["payload"]["connectionId"] for c in eas)

        r = await rest(h, "POST", f"{S}/ea-{EA}/subscriptions", owner, {"channel": "signals:alpha"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["subject"] == f"ea-{EA}" and body["refused"] == []
        assert [s["connectionId"] for s in body["subscribed"]] == ids
        for c in eas:
            assert (await c.until(lambda m: m["type"] == "subscribed"))["channel"] == "signals:alpha"
        offset = await publish(engine)
        for c in eas:
            assert [m["offset"] for m in await settle(c) if m["type"] == "message"] == [offset]
        assert await settle(other) == []

        r = await rest(h, "DELETE", f"{S}/ea-{EA}/subscriptions/signals:alpha", owner)
        assert r.status_code == 200, r.text
        assert r.json() == {
            "subject": f"ea-{EA}",
            "channel": "signals:alpha",
            "unsubscribed": ids,
            "notSubscribed": [],
        }
        for c in eas:
            assert (await c.until(lambda m: m["type"] == "unsubscribed"))["payload"] == {"reason": "rest"}
        nobody = await rest(h, "POST", f"{S}/nobody/subscriptions", owner, {"channel": "signals:alpha"})
        assert nobody.status_code == 404

        for c in [*eas, other, engine]:
            await c.close()
        await h.wait_clean()


async def test_refusals_name_why_and_leave_the_connection_untouched(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as h:
        admin = h.token("admin", "ops", accounts=["*"])
        ea = await h.connect(ea_token(h))
        cid = ea.welcome["payload"]["connectionId"]
        path = f"{C}/{cid}/subscriptions"

        # A foreign account's channel: the EA's own token holds 50123 only.
        r = await rest(h, "POST", path, admin, {"channel": "account:50999:events"})
        assert r.status_code == 403, r.text
        detail = r.json()["detail"]
        assert detail["code"] == "forbidden" and detail["reason"] == "foreign_account"
        assert detail["connectionId"] == cid
        # Its own account is fine (EAs subscribe to their account channels implicitly).
        ok = await rest(h, "POST", path, admin, {"channel": f"account:{EA}:events"})
        assert ok.status_code == 200, ok.text
        # A channel its token's patterns do not match; a namespace EAs get nothing in.
        eng_only = h.token("ea", "narrow", accounts=[EA], subscribe=["signals:alpha"])
        narrow = await h.connect(eng_only)
        nid = narrow.welcome["payload"]["connectionId"]
        r = await rest(h, "POST", f"{C}/{nid}/subscriptions", admin, {"channel": "signals:beta"})
        assert (r.status_code, r.json()["detail"]["reason"]) == (403, "no_matching_pattern")
        r = await rest(h, "POST", path, admin, {"channel": "system:health"})
        assert (r.status_code, r.json()["detail"]["reason"]) == (403, "role_not_allowed")
        # A whole subject refused: the status of the refusal, and each connection named.
        r = await rest(h, "POST", f"{S}/ea-{EA}/subscriptions", admin, {"channel": "account:1:x"})
        assert r.status_code == 403
        assert r.json()["detail"]["refused"] == [
            {
                "connectionId": cid,
                "code": "forbidden",
                "message": "not allowed to subscribe to account:1:x",
                "reason": "foreign_account",
            }
        ]
        # The callers: an engine only for strategies it may publish; dashboards and EAs not at all.
        engine = h.token("engine", "eng", publish=["signals:alpha"])
        r = await rest(h, "POST", path, engine, {"channel": "signals:beta"})
        assert (r.status_code, r.json()["detail"]["reason"]) == (403, "not_strategy_owner")
        r = await rest(h, "POST", path, engine, {"channel": f"account:{EA}:x"})
        assert (r.status_code, r.json()["detail"]["reason"]) == (403, "not_strategy_owner")
        for role in ("dashboard", "ea"):
            r = await rest(h, "POST", path, h.token(role, "x", accounts=["*"]), {"channel": "signals:alpha"})
            assert (r.status_code, r.json()["detail"]["reason"]) == (403, "role_not_allowed")
        # Bad input is a 4xx, never a 500.
        for bad in ({"channel": "nocolon"}, {"channel": "signals:a", "since": -1}, {"channel": "x", "y": 1}):
            r = await rest(h, "POST", path, admin, bad)
            assert 400 <= r.status_code < 500, (bad, r.status_code, r.text)
        r = await rest(h, "POST", path, admin, {"channel": "nope:x"})
        assert (r.status_code, r.json()["detail"]["code"]) == (400, "unknown_namespace")
        # Nothing of the refusals reached the connection; the one allowed subscription did.
        pushed = [m for m in await settle(ea) if m["type"] == "subscribed"]
        assert [m["channel"] for m in pushed] == [f"account:{EA}:events"]

        for c in (ea, narrow):
            await c.close()
        await h.wait_clean()


async def test_since_replays_the_gap_then_goes_live_with_no_duplicate(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as h:
        admin = h.token("admin", "ops", accounts=["*"])
        engine = await h.connect(h.token("engine", "eng", publish=["signals:*"]))
        offsets = [await publish(engine) for _ in range(4)]
        ea = await h.connect(ea_token(h))
        cid = ea.welcome["payload"]["connectionId"]

        r = await rest(
            h, "POST", f"{C}/{cid}/subscriptions", admin,
            {"channel": "signals:alpha", "since": offsets[0]},
        )  # fmt: skip
        assert r.status_code == 200, r.text
        result = r.json()["result"]
        assert result["recovered"] is True and result["replayed"] == 3
        live = await publish(engine)
        got = await settle(ea)
        assert got[0] == {"type": "subscribed", "channel": "signals:alpha", "payload": result}
        assert [m["offset"] for m in got[1:] if m["type"] == "message"] == [*offsets[1:], live]

        # A gap the history cannot cover is said so, as for a subscribe of the connection's own.
        r = await rest(h, "POST", f"{S}/ea-other/subscriptions", admin, {"channel": "signals:alpha"})
        assert r.status_code == 404
        other = await h.connect(ea_token(h, "ea-other"))
        r = await rest(
            h, "POST", f"{S}/ea-other/subscriptions", admin,
            {"channel": "signals:alpha", "since": live + 10},
        )  # fmt: skip
        assert r.status_code == 200, r.text
        res = r.json()["subscribed"][0]["result"]
        assert (res["recovered"], res["reason"]) == (False, "offset_ahead")

        for c in (ea, other, engine):
            await c.close()
        await h.wait_clean()


async def test_openapi_describes_the_endpoints_and_their_models(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as h, httpx.AsyncClient(base_url=h.http, timeout=WAIT) as http:
        spec = (await http.get("/openapi.json")).json()
    paths = spec["paths"]
    assert set(paths[f"{C}/{{conn_id}}/subscriptions"]) == {"post"}
    assert set(paths[f"{C}/{{conn_id}}/subscriptions/{{channel}}"]) == {"delete"}
    assert set(paths[f"{S}/{{subject}}/subscriptions"]) == {"post"}
    assert set(paths[f"{S}/{{subject}}/subscriptions/{{channel}}"]) == {"delete"}
    post = paths[f"{C}/{{conn_id}}/subscriptions"]["post"]
    ok = post["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok == {"$ref": "#/components/schemas/ConnectionSubscribed"}
    assert post["responses"]["403"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")
    schemas = spec["components"]["schemas"]
    assert {"code", "message", "reason", "refused"} <= set(schemas["ErrorDetail"]["properties"])
    assert {"offset", "epoch", "durable", "recovered", "replayed", "reason"} <= set(
        schemas["SubscriptionResult"]["properties"]
    )


async def test_a_caller_that_goes_away_does_not_cut_the_replay_short(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as h:
        engine = await h.connect(h.token("engine", "eng", publish=["signals:*"]))
        offsets = [await publish(engine) for _ in range(3)]
        ea = await h.connect(ea_token(h))
        conn = h.hub.connections[ea.welcome["payload"]["connectionId"]]
        call = asyncio.ensure_future(h.hub.subscribe_on_behalf(conn, "signals:alpha", since=0))
        await asyncio.sleep(0)  # a yield, not a wait: the call has started and awaits the store
        call.cancel()
        pushed = await ea.until(lambda m: m["type"] == "subscribed")
        assert pushed["payload"]["replayed"] == 3
        got = [await ea.until(lambda m: m["type"] == "message") for _ in offsets]
        assert [m["offset"] for m in got] == offsets
        assert "signals:alpha" in conn.subscriptions and "signals:alpha" not in conn.recovering
        for c in (ea, engine):
            await c.close()
        await h.wait_clean()


async def test_an_unreachable_store_is_503_and_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_hub(tmp_path) as h:
        admin = h.token("admin", "ops", accounts=["*"])
        ea = await h.connect(ea_token(h))
        cid = ea.welcome["payload"]["connectionId"]

        async def down(channel: str) -> Any:
            raise StoreUnavailable("database unreachable", operation="position")

        monkeypatch.setattr(h.hub.log, "position", down)
        r = await rest(h, "POST", f"{C}/{cid}/subscriptions", admin, {"channel": "signals:alpha"})
        assert r.status_code == 503, r.text
        assert r.json()["detail"]["code"] == "unavailable"
        conn = h.hub.connections[cid]
        assert not conn.subscriptions and not conn.recovering
        assert "signals:alpha" not in h.hub.channels
        await ea.close()
        await h.wait_clean()
