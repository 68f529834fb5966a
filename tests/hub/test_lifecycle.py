"""Token expiry and refresh, revocation, slow consumers, recovery by offset and graceful shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import websockets
from websockets.asyncio.client import connect

from tests.support import factories
from tests.support.hub import ROOT, WAIT, Client, HubProcess, RunningHub, running_hub
from tests.support.waits import until


class TestTokenExpiry:
    async def test_expiring_token_without_refresh_is_warned_then_closed_4004(self, tmp_path: Path) -> None:
        async with running_hub(tmp_path, token_warning=2.0, token_grace=0.5, jwt_leeway=0.0) as h:
            c = await h.connect(h.token("engine", "e", ttl=2.5))
            warning = await c.until(lambda m: m["type"] == "warning")
            assert warning["payload"]["code"] == "token_expiring"
            assert (await c.closed())[0] == 4004
            await h.wait_clean()

    async def test_refresh_keeps_the_connection_and_subscriptions(self, tmp_path: Path) -> None:
        async with running_hub(tmp_path, token_warning=2.0, token_grace=0.5, jwt_leeway=0.0) as h:
            c = await h.connect(h.token("admin", "ops", ttl=2.5))
            assert (await c.request("subscribe", "instrument:X"))["type"] == "result"
            warning = await c.until(lambda m: m["type"] == "warning")
            res = await c.request("auth.refresh", payload={"token": h.token("admin", "ops", ttl=600)})
            assert res["type"] == "result" and res["payload"]["expiresAt"] > time.time() + 500
            # Past the old token's expiry and grace (closeAt is whole seconds, hence + 1) by the hub's
            # own clock, then one expiry check of the kind its housekeeping timer runs: it must spare
            # the refreshed connection.
            await until(
                lambda: h.hub.clock() >= warning["payload"]["closeAt"] + 1, "the old token's grace end"
            )
            h.hub.housekeep(h.hub.clock())
            pub = await h.connect(h.token("admin", "pub"))
            await pub.request("publish", "instrument:X", {"p": 1})
            msg = await c.until(lambda m: m["type"] == "message")
            assert msg["payload"] == {"p": 1}
            other = await c.request("auth.refresh", payload={"token": h.token("admin", "someone-else")})
            assert other["payload"]["code"] == "subject_mismatch"
            await c.close()
            await pub.close()
            await h.wait_clean()


class TestBadTokens:
    @pytest.mark.parametrize(
        ("kind", "code"),
        [("garbage", 4500), ("wrong-key", 4500), ("expired", 4004), ("wrong-aud", 4500), ("alg-none", 4500)],
    )
    async def test_bad_token_is_refused_and_the_hub_goes_on(
        self, tmp_path: Path, kind: str, code: int
    ) -> None:
        import jwt as pyjwt

        async with running_hub(tmp_path) as h:
            good = await h.connect(h.token("admin", "ok"))
            now = time.time()
            base = {"sub": "x", "role": "admin", "aud": "mtbridge", "iss": "mtbridge", "exp": now + 60}
            token = {
                "garbage": "not.a.jwt",
                "wrong-key": pyjwt.encode(base, b"k" * 64),
                "expired": h.token("admin", "x", ttl=-60),
                "wrong-aud": pyjwt.encode(
                    {**base, "aud": "other"}, h.settings.secret_path.read_bytes().strip()
                ),
                "alg-none": pyjwt.encode(base, None, algorithm="none"),
            }[kind]
            bad = await Client.open(h.url)
            err = await bad.request("auth", payload={"token": token})
            assert err["type"] == "error"
            assert (await bad.closed())[0] == code
            assert (await good.request("heartbeat"))["type"] == "heartbeat"
            await good.close()
            await h.wait_clean()


class TestRevocation:
    async def test_api_revocation_closes_live_connections_and_refuses_reconnects(
        self, tmp_path: Path
    ) -> None:
        async with running_hub(tmp_path) as h:
            victim_token = h.token("ea", "ea-9", accounts=["9"], jti="victim")
            victim = await h.connect(victim_token)
            bystander = await h.connect(h.token("ea", "ea-8", accounts=["8"]))
            admin = h.token("admin", "ops")
            req = urllib.request.Request(
                h.http + "/api/v1/tokens/revoke",
                data=json.dumps({"kind": "jti", "value": "victim"}).encode(),
                headers={"Authorization": f"Bearer {admin}", "Content-Type": "application/json"},
            )
            body = await asyncio.to_thread(lambda: json.loads(urllib.request.urlopen(req).read()))
            assert body["closedConnections"] == 1
            assert (await victim.closed())[0] == 4501
            again = await Client.open(h.url)
            err = await again.request("auth", payload={"token": victim_token})
            assert err["payload"]["code"] == "token_revoked"
            assert (await again.closed())[0] == 4501
            assert (await bystander.request("heartbeat"))["type"] == "heartbeat"
            await bystander.close()
            await h.wait_clean()

    async def test_cli_revocation_reaches_a_running_hub(self, tmp_path: Path) -> None:
        async with running_hub(tmp_path) as h:
            rogue = h.token("engine", "rogue-engine")
            c = await h.connect(rogue)
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bridge.cli",
                "revoke",
                "--data-dir",
                str(h.settings.data_dir),
                "--sub",
                "rogue-engine",
                cwd=ROOT,
            )
            assert await proc.wait() == 0
            assert (await c.closed(timeout=10))[0] == 4501
            await h.wait_clean()
        # The revocation is persisted: a restarted hub still refuses the old token.
        async with running_hub(tmp_path, data_dir=h.settings.data_dir) as h2:
            again = await Client.open(h2.url)
            err = await again.request("auth", payload={"token": rogue})
            assert err["payload"]["code"] == "token_revoked"


def raw_subscriber(port: int, token: str, channel: str) -> socket.socket:
    """A client that subscribes and then never reads: the slowest possible consumer."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    s.sendall(
        f"GET /ws?token={token} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    payload = json.dumps({"type": "subscribe", "requestId": "s", "channel": channel}).encode()
    s.sendall(struct.pack("!BB", 0x81, 0x80 | len(payload)) + b"\0\0\0\0" + payload)
    return s


async def subscribers(h: RunningHub, channel: str, count: int) -> None:
    """Wait until ``channel`` has ``count`` subscribers (a raw subscriber's subscribe is not answered
    to the test, so the hub's registry is the condition)."""

    def subscribed() -> bool:
        ch = h.hub.channels.get(channel)
        return ch is not None and len(ch) >= count

    await until(subscribed, f"{count} subscribers of {channel}", timeout=WAIT)


def read_close_code(s: socket.socket) -> int | None:
    s.settimeout(20)
    data = b""
    while True:
        try:
            chunk = s.recv(1 << 20)
        except (ConnectionResetError, TimeoutError):
            break
        if not chunk:
            break
        data += chunk
    idx = data.rfind(b"\x88\x0f")  # close frame with a 2-byte code and "slow consumer"
    return int.from_bytes(data[idx + 2 : idx + 4], "big") if idx >= 0 else None


class TestSlowConsumers:
    async def test_lossless_slow_consumer_is_closed_4001_and_recovers_by_offset(self, tmp_path: Path) -> None:
        async with running_hub(
            tmp_path,
            max_queue_bytes=256 * 1024,
            rate_per_second=None,
            close_timeout=30.0,
            ping_interval=600.0,
            pong_timeout=60.0,
        ) as h:
            channel = "account:7:feed"
            slow = raw_subscriber(h.settings.port, h.token("dashboard", "slow", accounts=["*"]), channel)
            fast = await h.connect(h.token("dashboard", "fast", accounts=["*"]))
            await fast.request("subscribe", channel)
            pub = await h.connect(h.token("ea", "ea-7", accounts=["7"], publish=["account:7:*"]))
            await subscribers(h, channel, 2)  # fast and slow
            n = 600
            received: list[int] = []

            async def read_fast() -> None:
                while len(received) < n:
                    m = await fast.recv()
                    if m["type"] == "message":
                        received.append(m["offset"])

            reader = asyncio.create_task(read_fast())
            for i in range(n):
                await pub.send(
                    {"type": "publish", "channel": channel, "payload": {"i": i, "pad": "z" * 8000}}
                )
            await asyncio.wait_for(reader, 60)
            assert received == list(range(1, n + 1))  # the fast subscriber lost nothing
            code = await asyncio.to_thread(read_close_code, slow)
            assert code == 4001
            assert h.hub.metrics.slow_closes._value.get() >= 1
            # Recovery: the slow client reconnects, resubscribes from offset 0 and gets everything in order.
            again = await h.connect(h.token("dashboard", "slow", accounts=["*"]))
            res = await again.request("subscribe", channel, {"since": 0})
            assert res["payload"]["recovered"] is True and res["payload"]["replayed"] == n
            offsets = [(await again.recv())["offset"] for _ in range(n)]
            assert offsets == list(range(1, n + 1))
            for c in (fast, pub, again):
                await c.close()
            slow.close()
            await h.wait_clean()

    async def test_lossy_slow_consumer_keeps_the_latest_and_stays_open(self, tmp_path: Path) -> None:
        async with running_hub(
            tmp_path, max_queue_bytes=32 * 1024, rate_per_second=None, ping_interval=600.0, pong_timeout=60.0
        ) as h:
            token = h.token("engine", "slow")
            slow = raw_subscriber(h.settings.port, token, "instrument:EURUSD")
            pub = await h.connect(h.token("engine", "pub", publish=["instrument:*"]))
            await subscribers(h, "instrument:EURUSD", 1)
            for i in range(3000):
                await pub.send(
                    {
                        "type": "publish",
                        "channel": "instrument:EURUSD",
                        "payload": {"i": i, "pad": "y" * 2000},
                    }
                )
            await pub.request("heartbeat")
            drops = sum(
                s.value for m in h.hub.metrics.drops.collect() for s in m.samples if s.name.endswith("_total")
            )
            assert drops > 0
            assert len(h.hub.connections) == 2  # the slow one was not closed

            # Drain (in a thread: the hub shares this event loop): the newest value arrives last.
            def drain() -> bytes:
                slow.settimeout(20)
                data = b""
                while b'"i":2999' not in data:
                    chunk = slow.recv(1 << 20)
                    if not chunk:
                        break
                    data += chunk
                return data

            assert b'"i":2999' in await asyncio.to_thread(drain)
            slow.close()
            await pub.close()
            await h.wait_clean()


class TestRecovery:
    async def test_since_replays_missed_then_live_with_no_gap_or_duplicate(self, tmp_path: Path) -> None:
        async with running_hub(tmp_path) as h:
            eng = await h.connect(h.token("engine", "eng", publish=["signals:*"]))
            for _ in range(5):
                await eng.request("publish", "signals:alpha", factories.signal(ttl=30))
            ea = await h.connect(h.token("ea", "ea", accounts=["50123"], subscribe=["signals:*"]))
            res = await ea.request("subscribe", "signals:alpha", {"since": 2})
            assert res["payload"]["recovered"] is True and res["payload"]["offset"] == 5
            epoch = res["payload"]["epoch"]
            await eng.request("publish", "signals:alpha", factories.signal(ttl=30))
            offsets = [(await ea.until(lambda m: m["type"] == "message"))["offset"] for _ in range(4)]
            assert offsets == [3, 4, 5, 6]
            await ea.request("unsubscribe", "signals:alpha")
            ahead = await ea.request("subscribe", "signals:alpha", {"since": 99})
            assert ahead["payload"]["recovered"] is False and ahead["payload"]["reason"] == "offset_ahead"
            await ea.request("unsubscribe", "signals:alpha")
            wrong = await ea.request("subscribe", "signals:alpha", {"since": 1, "epoch": "nope"})
            assert wrong["payload"]["recovered"] is False and wrong["payload"]["reason"] == "epoch_changed"
            await ea.request("unsubscribe", "signals:alpha")
            ok = await ea.request("subscribe", "signals:alpha", {"since": 6, "epoch": epoch})
            assert ok["payload"] == {**ok["payload"], "recovered": True, "replayed": 0}
            bad = await ea.request("subscribe", "signals:beta", {"since": -1})
            assert bad["payload"]["code"] == "bad_offset"
            await ea.close()
            await eng.close()
            await h.wait_clean()


class TestGracefulShutdown:
    def test_sigterm_sends_reconnect_hint_and_1001_then_exits(self, tmp_path: Path) -> None:
        hub = HubProcess(tmp_path / "data").start()
        try:
            token = hub.token("admin", "ops")

            async def scenario() -> tuple[dict[str, object], int | None]:
                ws = await connect(hub.url, ping_interval=None)
                await ws.recv()
                await ws.send(json.dumps({"type": "auth", "requestId": "1", "payload": {"token": token}}))
                await ws.recv()
                hub.signal(signal.SIGTERM)
                hint = json.loads(await asyncio.wait_for(ws.recv(), 10))
                with contextlib.suppress(websockets.ConnectionClosed):
                    await asyncio.wait_for(ws.recv(), 10)
                rcvd = ws.protocol.close_rcvd
                return hint, rcvd.code if rcvd else None

            hint, code = asyncio.run(scenario())
            assert hint["type"] == "reconnect" and int(hint["payload"]["afterMs"]) > 0  # type: ignore[call-overload]
            assert code == 1001
            assert hub.wait() in (0, -signal.SIGTERM)  # uvicorn re-raises the signal after draining
            with pytest.raises(OSError):
                urllib.request.urlopen(hub.http + "/healthz", timeout=1)
        finally:
            hub.kill()


def test_serve_prints_where_the_secret_is(tmp_path: Path) -> None:
    hub = HubProcess(tmp_path / "fresh").start()
    try:
        secret = tmp_path / "fresh" / "jwt-secret"
        assert secret.exists() and (secret.stat().st_mode & 0o777) == 0o600
    finally:
        hub.stop()
    assert str(secret) in hub.log.read_text() or "jwt-secret" in hub.log.read_text()
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "bridge.cli",
            "token",
            "--data-dir",
            str(tmp_path / "fresh"),
            "--role",
            "ea",
            "--sub",
            "a",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    assert out.stdout.count(".") == 2
