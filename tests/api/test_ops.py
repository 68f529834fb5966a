"""Health, readiness, metrics and the admin endpoints over real HTTP."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.support.hub import running_hub

METRICS = [
    "mtbridge_connections",
    "mtbridge_messages_in_total",
    "mtbridge_messages_out_total",
    "mtbridge_bytes_in_total",
    "mtbridge_bytes_out_total",
    "mtbridge_queue_bytes",
    "mtbridge_drops",
    "mtbridge_slow_consumer_closes_total",
    "mtbridge_auth_failures",
    "mtbridge_connection_age_seconds_bucket",
    "mtbridge_connections_opened_total",
]


async def test_health_ready_and_metrics(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as h:
        c = await h.connect(h.token("admin", "ops"))
        await c.request("subscribe", "instrument:X")
        await c.request("publish", "instrument:X", {"p": 1})
        async with httpx.AsyncClient(base_url=h.http) as http:
            assert (await http.get("/healthz")).json() == {"status": "ok"}
            ready = await http.get("/readyz")
            assert ready.status_code == 200 and ready.json()["checks"] == {"hub": True, "store": True}
            text = (await http.get("/metrics")).text
            for name in METRICS:
                assert name in text, name
            assert 'mtbridge_connections{role="admin"} 1.0' in text
            assert 'mtbridge_messages_in_total{type="publish"} 1.0' in text
            docs = await http.get("/openapi.json")
            assert "/api/v1/signals" in docs.json()["paths"]
        await c.close()
        await h.wait_clean()


async def test_admin_endpoints_need_an_admin(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as h:
        dash = h.token("dashboard", "viewer", accounts=["*"])
        admin = h.token("admin", "ops")
        victim = await h.connect(h.token("ea", "ea-1", accounts=["1"]))
        async with httpx.AsyncClient(base_url=h.http) as http:
            assert (await http.get("/api/v1/connections")).status_code == 401
            listing = await http.get("/api/v1/connections", headers={"Authorization": f"Bearer {dash}"})
            assert listing.status_code == 200
            [row] = [r for r in listing.json()["items"] if r["sub"] == "ea-1"]
            for method, url, body in (
                ("DELETE", f"/api/v1/connections/{row['id']}", None),
                ("POST", "/api/v1/tokens/revoke", {"kind": "sub", "value": "ea-1"}),
                ("POST", "/api/v1/tokens", {"role": "admin", "sub": "x"}),
            ):
                r = await http.request(method, url, json=body, headers={"Authorization": f"Bearer {dash}"})
                assert r.status_code == 403, (url, r.text)
            made = await http.post(
                "/api/v1/tokens",
                json={"role": "ea", "sub": "ea-2", "accounts": ["2"], "ttl": 60},
                headers={"Authorization": f"Bearer {admin}"},
            )
            assert made.status_code == 201 and made.json()["token"].count(".") == 2
            me = await http.get("/api/v1/me", headers={"Authorization": f"Bearer {made.json()['token']}"})
            assert me.json()["sub"] == "ea-2" and me.json()["role"] == "ea"
            gone = await http.delete(
                f"/api/v1/connections/{row['id']}", headers={"Authorization": f"Bearer {admin}"}
            )
            assert gone.status_code == 200
        assert (await victim.closed())[0] == 4006
        await h.wait_clean()
