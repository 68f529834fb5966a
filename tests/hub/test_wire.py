"""The hub over real sockets: the documented flow, encodings, authorisation, abuse and cleanup."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path

import msgpack
import pytest
import websockets
from websockets.asyncio.client import connect

from tests.support.factories import signal
from tests.support.hub import WAIT, Client, running_hub
from tests.support.waits import until


class TestDocumentedFlow:
    async def test_exact_lines_from_the_issue(self, tmp_path: Path) -> None:
        async with running_hub(tmp_path) as h:
            ea_token = h.token("ea", "ea-1", accounts=["50123"], subscribe=["signals:*"])
            eng = await h.connect(h.token("engine", "eng", publish=["signals:*"]))
            ws = await connect(h.url, ping_interval=None)
            welcome = json.loads(await ws.recv())
            assert welcome["type"] == "welcome"
            assert welcome["payload"]["limits"]["maxMessageBytes"] == 65536
            await ws.send(f'{{"type":"auth","requestId":"1","payload":{{"token":"{ea_token}"}}}}')
            assert json.loads(await ws.recv())["type"] == "result"
            await ws.send('{"type":"subscribe","requestId":"2","channel":"signals:alpha"}')
            res = json.loads(await ws.recv())
            assert res["type"] == "result" and res["requestId"] == "2"
            sig = signal(ttl=30)
            pub = await eng.request("publish", "signals:alpha", sig)
            assert pub["type"] == "result" and pub["payload"]["offset"] >= 1
            msg = json.loads(await ws.recv())
            assert msg["type"] == "message" and msg["channel"] == "signals:alpha"
            assert msg["offset"] == pub["payload"]["offset"]
            assert msg["payload"]["id"] == sig["id"]
            await ws.close()
            await eng.close()
            await h.wait_clean()

    async def test_msgpack_subprotocol_carries_the_same_envelopes(self, tmp_path: Path) -> None:
        async with running_hub(tmp_path) as h:
            token = h.token("admin", "ops")
            ws = await connect(h.url, subprotocols=["mtbridge.v1.msgpack"], ping_interval=None)
            assert ws.subprotocol == "mtbridge.v1.msgpack"
            welcome = msgpack.unpackb(await ws.recv())
            assert welcome["payload"]["encoding"] == "msgpack"
            await ws.send(msgpack.packb({"type": "auth", "requestId": "1", "payload": {"token": token}}))
            assert msgpack.unpackb(await ws.recv())["type"] == "result"
            await ws.send(
                msgpack.packb({"type": "subscribe", "requestId": "2", "channel": "instrument:EURUSD"})
            )
            assert msgpack.unpackb(await ws.recv())["type"] == "result"
            js = await h.connect(token)
            await js.request("publish", "instrument:EURUSD", {"bid": 1.1, "ask": 1.2})
            msg = msgpack.unpackb(await ws.recv())
            assert msg == {
                "type": "message",
                "channel": "instrument:EURUSD",
                "offset": 1,
                "payload": {"bid": 1.1, "ask": 1.2},
            }
            # A text frame on a msgpack connection is refused, the connection stays.
            await ws.send("{}")
            err = msgpack.unpackb(await ws.recv())
            assert err["type"] == "error" and err["payload"]["code"] == "bad_request"
            await ws.close()
            await js.close()
            await h.wait_clean()

    async def test_token_in_url_authenticates_and_is_not_logged(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        async with running_hub(tmp_path) as h:
            token = h.token("dashboard", "dash", accounts=["*"])
            caplog.set_level("INFO")
            ws = await connect(f"{h.url}?token={token}", ping_interval=None)
            welcome = json.loads(await ws.recv())
            assert welcome["payload"]["authenticated"] is True
            assert welcome["payload"]["role"] == "dashboard"
            await ws.close()
            assert token not in caplog.text
            assert "token=[REDACTED]" in caplog.text
            await h.wait_clean()

    async def test_heartbeat_unsubscribe_and_errors_echo_request_ids(self, tmp_path: Path) -> None:
        async with running_hub(tmp_path) as h:
            c = await h.connect(h.token("engine", "e", subscribe=["signals:*"]))
            hb = await c.request("heartbeat")
            assert hb["type"] == "heartbeat" and isinstance(hb["payload"]["ts"], int)
            assert (await c.request("unsubscribe", "signals:alpha"))["payload"]["code"] == "not_subscribed"
            assert (await c.request("subscribe", "signals:alpha"))["type"] == "result"
            assert (await c.request("subscribe", "signals:alpha"))["payload"]["code"] == "already_subscribed"
            assert (await c.request("unsubscribe", "signals:alpha"))["type"] == "result"
            assert (await c.request("nope"))["payload"]["code"] == "unknown_type"
            assert (await c.request("subscribe", "bad channel"))["payload"]["code"] == "invalid_channel"
            assert (await c.request("subscribe", "zzz:x"))["payload"]["code"] == "unknown_namespace"
            await c.close()
            await h.wait_clean()


class TestAuthorisation:
    @pytest.mark.parametrize(
        ("role", "claims", "channel", "allowed"),
        [
            ("ea", {"accounts": ["1"]}, "account:2:events", False),
            ("ea", {"accounts": ["1"]}, "account:1:events", True),
            ("ea", {"accounts": ["1"]}, "signals:alpha", False),
            ("ea", {"accounts": ["1"], "subscribe": ["signals:alpha"]}, "signals:alpha", True),
            ("ea", {"accounts": ["1"]}, "system:health", False),
            ("dashboard", {}, "account:1:events", False),
            ("dashboard", {"accounts": ["*"]}, "account:1:events", True),
            ("engine", {}, "instrument:EURUSD", True),
        ],
    )
    async def test_subscribe_rights(
        self, tmp_path: Path, role: str, claims: dict[str, list[str]], channel: str, allowed: bool
    ) -> None:
        async with running_hub(tmp_path) as h:
            c = await h.connect(h.token(role, "x", **claims))
            res = await c.request("subscribe", channel)
            assert (res["type"] == "result") is allowed, res
            if not allowed:
                assert res["payload"]["code"] == "forbidden"
            # The connection goes on either way.
            assert (await c.request("heartbeat"))["type"] == "heartbeat"
            await c.close()
            await h.wait_clean()

    async def test_publish_rights(self, tmp_path: Path) -> None:
        async with running_hub(tmp_path) as h:
            ea = await h.connect(h.token("ea", "ea", accounts=["1"]))
            res = await ea.request("publish", "signals:alpha", signal(ttl=30))
            assert res["payload"]["code"] == "forbidden"
            eng = await h.connect(h.token("engine", "eng", publish=["signals:beta"]))
            res = await eng.request("publish", "signals:alpha", signal(ttl=30))
            assert res["payload"]["code"] == "forbidden"
            res = await eng.request("publish", "system:health", {"x": 1})
            assert res["payload"]["code"] == "forbidden"
            await ea.close()
            await eng.close()
            await h.wait_clean()

    async def test_signals_reach_only_targeted_eas(self, tmp_path: Path) -> None:
        async with running_hub(tmp_path) as h:
            eng = await h.connect(h.token("engine", "eng", publish=["signals:*"]))
            a = await h.connect(h.token("ea", "a", accounts=["111"], subscribe=["signals:*"]))
            b = await h.connect(h.token("ea", "b", accounts=["222"], subscribe=["signals:*"]))
            for c in (a, b):
                assert (await c.request("subscribe", "signals:alpha"))["type"] == "result"
            s1 = signal(accounts=["111"], ttl=30)
            s2 = signal(accounts=["222"], ttl=30)
            await eng.request("publish", "signals:alpha", s1)
            await eng.request("publish", "signals:alpha", s2)
            got_a = await a.until(lambda m: m["type"] == "message")
            got_b = await b.until(lambda m: m["type"] == "message")
            assert got_a["payload"]["id"] == s1["id"]
            assert got_b["payload"]["id"] == s2["id"]
            with pytest.raises(TimeoutError):
                await a.until(lambda m: m["type"] == "message", timeout=0.5)
            for c in (eng, a, b):
                await c.close()
            await h.wait_clean()


class TestBadInput:
    async def test_malformed_json_and_msgpack_get_structured_errors(self, tmp_path: Path) -> None:
        async with running_hub(tmp_path) as h:
            c = await h.connect(h.token("admin", "ops"))
            for raw in [
                "not json",
                "[1,2]",
                '{"type": 5}',
                '{"type":"heartbeat","extra":1}',
                '{"type":"x","requestId":7}',
            ]:
                await c.ws.send(raw)
                err = await c.recv()
                assert err["type"] == "error"
                assert set(err["payload"]) >= {"code", "message", "retryable"}
            await c.ws.send(b"\x81\x00")  # binary on a JSON connection
            assert (await c.recv())["payload"]["code"] == "bad_request"
            m = await connect(h.url, subprotocols=["mtbridge.v1.msgpack"], ping_interval=None)
            await m.recv()
            await m.send(b"\xc1\xc1garbage")
            err = msgpack.unpackb(await m.recv())
            assert err["payload"]["code"] == "invalid_msgpack"
            await m.send(msgpack.packb({"type": "auth", "requestId": "9", "payload": {"token": b"bytes"}}))
            err = msgpack.unpackb(await m.recv())
            assert err["payload"]["code"] == "bad_request" and err["requestId"] == "9"
            await m.close()
            # Others are unaffected.
            assert (await c.request("heartbeat"))["type"] == "heartbeat"
            await c.close()
            await h.wait_clean()

    async def test_oversized_frame_closes_1009(self, tmp_path: Path) -> None:
        async with running_hub(tmp_path) as h:
            other = await h.connect(h.token("admin", "ops"))
            c = await h.connect(h.token("admin", "ops2"))
            await c.ws.send("x" * 70_000)
            assert (await c.closed())[0] == 1009
            assert (await other.request("heartbeat"))["type"] == "heartbeat"
            await other.close()
            await h.wait_clean()

    async def test_invalid_utf8_closes_1007(self, tmp_path: Path) -> None:
        async with running_hub(tmp_path) as h:
            c = await h.connect(h.token("admin", "ops"))
            # Send a text frame with invalid UTF-8 by hand (the library would refuse to encode it).
            from websockets.frames import Frame, Opcode

            c.ws.protocol.send_frame(Frame(Opcode.TEXT, b'{"type":"\xff\xfe"}'))
            c.ws.send_data()
            assert (await c.closed())[0] == 1007
            await h.wait_clean()

    async def test_too_many_bad_messages_close_4504(self, tmp_path: Path) -> None:
        async with running_hub(tmp_path) as h:
            c = await h.connect(h.token("admin", "ops"))
            for _ in range(25):
                try:
                    await c.ws.send("garbage")
                except websockets.ConnectionClosed:
                    break
            assert (await c.closed())[0] == 4504
            await h.wait_clean()


class TestOrigin:
    async def test_foreign_origin_is_refused_and_listed_one_passes(self, tmp_path: Path) -> None:
        async with running_hub(tmp_path, allowed_origins=["https://ops.example"]) as h:
            with pytest.raises(websockets.InvalidStatus) as info:
                await connect(h.url, origin="https://evil.example")
            assert info.value.response.status_code == 403
            ok = await connect(h.url, origin="https://ops.example", ping_interval=None)
            assert json.loads(await ok.recv())["type"] == "welcome"
            await ok.close()
            no_origin = await connect(h.url, ping_interval=None)
            await no_origin.recv()
            await no_origin.close()
            await h.wait_clean()


class TestLimits:
    async def test_flood_gets_rate_limited_then_closed(self, tmp_path: Path) -> None:
        async with running_hub(tmp_path, rate_per_second=5.0, rate_burst=5.0) as h:
            bystander = await h.connect(h.token("admin", "b"))
            c = await h.connect(h.token("admin", "flooder"))
            for _ in range(10):
                await c.send({"type": "heartbeat"})
            err = await c.until(lambda m: m["type"] == "error")
            assert err["payload"]["code"] == "rate_limited" and err["payload"]["retryable"] is True
            assert err["payload"]["retryAfterMs"] > 0
            with contextlib.suppress(websockets.ConnectionClosed):
                for _ in range(400):
                    await c.send({"type": "heartbeat"})
            assert (await c.closed())[0] == 4003
            # The flooder is gone from the hub's registries; the bystander, with a bucket of its own,
            # is served as before.
            await until(lambda: "flooder" not in h.hub.by_subject, "the flooder to leave", timeout=WAIT)
            assert (await bystander.request("heartbeat"))["type"] == "heartbeat"
            await bystander.close()
            await h.wait_clean()

    async def test_subscription_and_per_subject_limits(self, tmp_path: Path) -> None:
        async with running_hub(tmp_path, max_subscriptions=2, max_connections_per_subject=1) as h:
            tok = h.token("admin", "ops")
            c = await h.connect(tok)
            assert (await c.request("subscribe", "instrument:A"))["type"] == "result"
            assert (await c.request("subscribe", "instrument:B"))["type"] == "result"
            assert (await c.request("subscribe", "instrument:C"))["payload"][
                "code"
            ] == "too_many_subscriptions"
            second = await Client.open(h.url)
            res = await second.request("auth", payload={"token": tok})
            assert res["type"] == "error"
            assert (await second.closed())[0] == 4007
            await c.close()
            await h.wait_clean()

    async def test_per_ip_limit_refuses_handshake(self, tmp_path: Path) -> None:
        async with running_hub(tmp_path, max_connections_per_ip=2) as h:
            a = await connect(h.url, ping_interval=None)
            b = await connect(h.url, ping_interval=None)
            with pytest.raises(websockets.InvalidStatus) as info:
                await connect(h.url)
            assert info.value.response.status_code == 429
            await a.close()
            await b.close()
            await h.wait_clean()

    async def test_auth_timeout_closes_4005(self, tmp_path: Path) -> None:
        async with running_hub(tmp_path, auth_timeout=0.5) as h:
            c = await Client.open(h.url)
            assert (await c.closed())[0] == 4005
            await h.wait_clean()

    async def test_silent_peer_is_closed_on_heartbeat_timeout(self, tmp_path: Path) -> None:
        async with running_hub(tmp_path, ping_interval=0.5, pong_timeout=0.5) as h:
            # A raw client that completes the handshake and then never answers pings.
            reader, writer = await asyncio.open_connection("127.0.0.1", h.settings.port)
            writer.write(
                b"GET /ws?token=" + h.token("admin", "silent").encode() + b" HTTP/1.1\r\nHost: x\r\n"
                b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                b"Sec-WebSocket-Version: 13\r\n\r\n"
            )
            await writer.drain()
            data = b""
            while True:
                chunk = await asyncio.wait_for(reader.read(65536), 10)
                if not chunk:
                    break
                data += chunk
            # The last frame is a close frame carrying 4002.
            idx = data.rfind(b"\x88")
            assert idx >= 0 and int.from_bytes(data[idx + 2 : idx + 4], "big") == 4002
            writer.close()
            await h.wait_clean()
