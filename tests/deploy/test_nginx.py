"""The shipped nginx configuration (deploy/nginx/), run by a real nginx in front of one hub.

EAs (the simulator) use wss:// through nginx's TLS; engines use REST through it; the hub's per-IP
limit sees the client's address, believed from X-Forwarded-For only because nginx is a trusted
proxy; and a hub restart behind nginx (SIGTERM: reconnect hint, 1001) loses nothing.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import ssl
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from websockets.exceptions import InvalidStatus

from bridge.client import WebSocketTransport, connect
from bridge.simulator import SimulatedEA, load_state, state_path
from tests.support.factories import numbered_signal
from tests.support.hub import WAIT, HubProcess
from tests.support.nginx import NGINX, Nginx
from tests.support.waits import until

pytestmark = pytest.mark.skipif(
    shutil.which("nginx") is None and not Path(NGINX).exists(),
    reason="nginx is installed by scripts/test.sh (apt-get install nginx)",
)

DRAIN_WINDOW = 1.0


@pytest.fixture
def stack(tmp_path: Path) -> Any:
    hub = HubProcess(
        tmp_path / "hub",
        None,
        "--trusted-proxy",
        "127.0.0.1/32",
        env={"MTBRIDGE_MAX_CONNECTIONS_PER_IP": "2", "MTBRIDGE_DRAIN_WINDOW": str(DRAIN_WINDOW)},
    ).start()
    proxy = Nginx(tmp_path / "nginx", [f"127.0.0.1:{hub.port}"])
    proxy.check()
    proxy.start()
    try:
        yield hub, proxy
    finally:
        proxy.stop()
        hub.kill()


def test_ea_engine_and_limits_through_nginx_and_a_drained_restart(stack: Any, tmp_path: Path) -> None:
    hub, proxy = stack
    tls = ssl.create_default_context(cafile=str(proxy.cert))
    ea_token = hub.token("ea", "ea-50123", accounts=["50123"], subscribe=["signals:*"])
    eng_token = hub.token("engine", "eng", publish=["signals:*"])
    ops_token = hub.token("admin", "ops")

    async def scenario() -> None:
        async with httpx.AsyncClient(
            base_url=proxy.https, verify=tls, headers={"Authorization": f"Bearer {eng_token}"}
        ) as http:
            # Plain HTTP only redirects; the metrics stay private; health and REST go through.
            async with httpx.AsyncClient() as plain:
                r = await plain.get(f"http://127.0.0.1:{proxy.http_port}/ws")
                assert r.status_code == 301 and r.headers["location"].startswith("https://")
            assert (await http.get("/metrics")).status_code == 404
            assert (await http.get("/readyz")).json()["status"] == "ok"

            ea = SimulatedEA(
                proxy.wss,
                ea_token,
                "50123",
                ["alpha"],
                tmp_path / "ea",
                from_start=True,
                snapshot_interval=None,
                transport=WebSocketTransport(ssl=tls),
                client_options={"backoff_initial": 0.1, "backoff_max": 0.5},
            )
            await ea.start()
            try:
                for n in range(3):
                    r = await http.post("/api/v1/signals", json=numbered_signal(n, volume=0.01))
                    assert r.status_code == 201, r.text
                await until(lambda: len(ea.state.signals) == 3)
                await until(lambda: ea.state.outbox == [])

                # The per-IP limit (2) counts the client behind nginx, not nginx: 127.0.0.2 gets two
                # connections and a 429 for the third, even when it claims another address, while
                # 127.0.0.3 still gets in.
                await check_per_ip_limit(proxy, tls)

                # Drain behind nginx: the hint and 1001 pass through; the EA waits afterMs, nginx
                # answers 502 while the hub is away, and the EA recovers by offset when it is back.
                assert ea.client is not None
                hub.signal(signal.SIGTERM)
                assert hub.wait() in (0, -signal.SIGTERM)
                hub.start()
                for n in range(3, 6):
                    r = await http.post("/api/v1/signals", json=numbered_signal(n, volume=0.01))
                    assert r.status_code == 201, r.text
                await until(lambda: len(ea.state.signals) == 6)
                await asyncio.wait_for(ea.drain(), WAIT * 3)
                waits = [(delay, code) for _, delay, code in ea.client.stats.delays]
                assert any(code == 1001 and 0 < delay <= DRAIN_WINDOW for delay, code in waits), waits
                assert ea.client.stats.reconnects >= 1

                status = await http.get(
                    f"/api/v1/signals/{numbered_signal(5, volume=0.01)['id']}",
                    headers={"Authorization": f"Bearer {ops_token}"},
                )
                assert status.json()["deliveries"][0]["status"] == "executed", status.text
            finally:
                await ea.stop()
        state = load_state(state_path(tmp_path / "ea", "50123"), "50123")
        assert list(state.signals) == [
            numbered_signal(n, volume=0.01)["id"] for n in range(6)
        ]  # once each, in order

        # Every trade event stored once, as a dashboard sees it through nginx.
        dash = hub.token("dashboard", "ops", accounts=["*"])
        viewer = await connect(proxy.wss, dash, transport=WebSocketTransport(ssl=tls))
        try:
            sub = await viewer.subscribe("account:50123:events", since=0)
            stored: list[dict[str, Any]] = []
            async with asyncio.timeout(WAIT * 3):
                while len(stored) < 18:
                    stored.append((await sub.__anext__()).payload)
        finally:
            await viewer.close()
        assert len({e["id"] for e in stored}) == 18  # 3 events per signal

    asyncio.run(scenario())


async def check_per_ip_limit(proxy: Nginx, tls: ssl.SSLContext) -> None:
    def open_from(source: str, claim: str | None = None) -> Any:
        headers = {"X-Forwarded-For": claim} if claim else None
        return websockets.connect(
            proxy.wss, ssl=tls, local_addr=(source, 0), additional_headers=headers, open_timeout=WAIT
        )

    first = await open_from("127.0.0.2")
    second = await open_from("127.0.0.2", "9.9.9.9")
    try:
        with pytest.raises(InvalidStatus) as refused:
            await open_from("127.0.0.2", "198.51.100.1")
        assert refused.value.response.status_code == 429
        other = await open_from("127.0.0.3")
        await other.close()
    finally:
        await first.close()
        await second.close()
