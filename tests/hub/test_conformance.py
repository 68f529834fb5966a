"""RFC 6455 conformance of the hub's connection and write path (Autobahn TestSuite via kosoku),
and the documented flow driven by a third-party client (`websocket-client`)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import websocket  # the third-party `websocket-client` package

from tests.support import factories
from tests.support.hub import HubProcess


@pytest.mark.slow
def test_autobahn_server_cases_pass_through_the_echo_route(tmp_path: Path) -> None:
    """Every non-compression case. The hub offers no permessage-deflate (see docs/protocol.md),
    so the 12.* and 13.* compression cases do not apply."""
    kosoku = shutil.which("kosoku") or str(Path(sys.executable).parent / "kosoku")
    hub = HubProcess(tmp_path / "data", None, "--test-mode").start()
    try:
        out = tmp_path / "reports"
        proc = subprocess.run(
            [
                kosoku,
                "-m",
                "fuzzingclient",
                f"ws://127.0.0.1:{hub.port}/echo",
                "-x",
                "12.*",
                "-x",
                "13.*",
                "-o",
                str(out),
            ],
            capture_output=True,
            text=True,
            timeout=900,
            cwd=tmp_path,
        )
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
        assert "cases passed" in proc.stdout
        results = list(out.glob("*.json"))
        assert len(results) >= 300
    finally:
        hub.stop()


def test_echo_route_exists_only_in_test_mode(tmp_path: Path) -> None:
    hub = HubProcess(tmp_path / "data").start()
    try:
        with pytest.raises(websocket.WebSocketBadStatusException) as info:
            websocket.create_connection(f"ws://127.0.0.1:{hub.port}/echo", timeout=10)
        assert info.value.status_code == 404
    finally:
        hub.stop()


def test_documented_flow_with_websocket_client(tmp_path: Path) -> None:
    hub = HubProcess(tmp_path / "data").start()
    try:
        ea_token = hub.token("ea", "ea-50123", accounts=["50123"], subscribe=["signals:*"])
        eng_token = hub.token("engine", "eng", publish=["signals:*"])
        ea = websocket.create_connection(hub.url, timeout=10, subprotocols=["mtbridge.v1.json"])
        assert json.loads(ea.recv())["type"] == "welcome"
        ea.send(json.dumps({"type": "auth", "requestId": "1", "payload": {"token": ea_token}}))
        assert json.loads(ea.recv())["requestId"] == "1"
        ea.send('{"type":"subscribe","requestId":"2","channel":"signals:alpha","payload":{"since":0}}')
        sub = json.loads(ea.recv())
        assert sub["type"] == "result" and sub["payload"]["recovered"] is True

        eng = websocket.create_connection(f"{hub.url}?token={eng_token}", timeout=10)
        assert json.loads(eng.recv())["payload"]["authenticated"] is True
        sid = str(uuid.uuid4())
        signal = factories.signal(sid=sid, ttl=30)
        eng.send(
            json.dumps({"type": "publish", "requestId": "p", "channel": "signals:alpha", "payload": signal})
        )
        while True:
            res = json.loads(eng.recv())
            if res.get("requestId") == "p":
                break
        assert res["type"] == "result" and res["payload"]["offset"] == 1

        msg = json.loads(ea.recv())
        assert msg == {"type": "message", "channel": "signals:alpha", "offset": 1, "payload": msg["payload"]}
        assert msg["payload"]["id"] == sid
        ea.send(
            json.dumps(
                {"type": "signal.ack", "requestId": "3", "payload": {"signalId": sid, "account": "50123"}}
            )
        )
        assert json.loads(ea.recv())["payload"]["status"] == "acked"
        event = factories.deal("50123", sid, ts=1700000000000)
        ea.send(json.dumps({"type": "trade.event", "requestId": "4", "payload": event}))
        assert json.loads(ea.recv())["payload"] == {"id": event["id"], "duplicate": False}
        ea.send('{"type":"heartbeat","requestId":"5"}')
        assert json.loads(ea.recv())["type"] == "heartbeat"
        ea.close()
        eng.close()
    finally:
        hub.stop()
