"""Fixtures for the dashboard tests: a live hub subprocess, tokens, a simulated EA and Chromium."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Subprotocol

from tests.support.browser import chromium, require_chromium, wait_until

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "dashboard"
FACTOR = float(os.environ.get("MTBRIDGE_TESTS_TIMEOUT_FACTOR", "1"))
WAIT_S = 30.0 * FACTOR
WAIT_MS = int(WAIT_S * 1000)
SUBPROTOCOLS = [Subprotocol("mtbridge.v1.json")]
BIN = str(Path(sys.executable).parent / "mtbridge")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class HubProcess:
    """``mtbridge serve`` on a free port with its own data dir; restartable on the same port."""

    def __init__(self, data_dir: Path, port: int) -> None:
        self.data_dir = data_dir
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir / "hub.log"

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def start(self) -> None:
        log = self.log_path.open("ab")
        try:
            self.proc = subprocess.Popen(
                [
                    BIN,
                    "serve",
                    "--data-dir",
                    str(self.data_dir),
                    "--port",
                    str(self.port),
                    "--log-level",
                    "warning",
                ],
                stdout=log,
                stderr=log,
            )
        finally:
            log.close()
        proc = self.proc

        def ready() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"hub exited early:\n{self.log_path.read_text()[-4000:]}")
            try:
                return httpx.get(f"{self.base}/readyz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(ready, "hub /readyz")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=20 * FACTOR)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def token(self, role: str, sub: str, *extra: str) -> str:
        out = subprocess.run(
            [BIN, "token", "--data-dir", str(self.data_dir), "--role", role, "--sub", sub, *extra],
            check=True,
            capture_output=True,
            text=True,
        )
        return out.stdout.strip()

    def rest(self, method: str, path: str, token: str, body: Any = None) -> httpx.Response:
        return httpx.request(
            method, f"{self.base}{path}", headers={"Authorization": f"Bearer {token}"}, json=body, timeout=30
        )


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[HubProcess]:
    h = HubProcess(tmp_path / "hub", free_port())
    h.data_dir.mkdir()
    h.start()
    try:
        yield h
    finally:
        h.stop()


def make_signal(strategy: str, accounts: list[str], **extra: Any) -> dict[str, Any]:
    sig: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "strategy": strategy,
        "accounts": accounts,
        "symbol": "EURUSD",
        "action": "open",
        "side": "buy",
        "orderType": "market",
        "volume": 0.1,
        "ttl": 600,
    }
    sig.update(extra)
    return sig


class SimulatedEA:
    """An EA speaking protocol v1 over a real socket: subscribe, ack, report trade events."""

    def __init__(self, hub: HubProcess, token: str) -> None:
        self._stack = contextlib.ExitStack()
        self.ws: ClientConnection = self._stack.enter_context(
            connect(hub.ws_url, subprotocols=SUBPROTOCOLS, open_timeout=WAIT_S)
        )
        self.next_id = 0
        self.inbox: list[dict[str, Any]] = []
        self.closed_code: int | None = None
        self.request("auth", payload={"token": token})

    def _recv(self, timeout: float) -> dict[str, Any]:
        return json.loads(self.ws.recv(timeout=timeout))  # type: ignore[no-any-return]

    def request(self, mtype: str, **fields: Any) -> dict[str, Any]:
        self.next_id += 1
        rid = str(self.next_id)
        self.ws.send(json.dumps({"type": mtype, "requestId": rid, **fields}))
        deadline = time.monotonic() + WAIT_S
        while True:
            msg = self._recv(max(0.1, deadline - time.monotonic()))
            if msg.get("requestId") == rid:
                if msg["type"] == "error":
                    raise AssertionError(f"{mtype} refused: {msg['payload']}")
                return msg.get("payload", {})  # type: ignore[no-any-return]
            self.inbox.append(msg)

    def next_message(self, channel: str) -> dict[str, Any]:
        for i, msg in enumerate(self.inbox):
            if msg.get("type") == "message" and msg.get("channel") == channel:
                return self.inbox.pop(i)
        deadline = time.monotonic() + WAIT_S
        while True:
            msg = self._recv(max(0.1, deadline - time.monotonic()))
            if msg.get("type") == "message" and msg.get("channel") == channel:
                return msg
            self.inbox.append(msg)

    def trade_event(self, kind: str, account: str, **fields: Any) -> dict[str, Any]:
        event = {
            "id": str(uuid.uuid4()),
            "kind": kind,
            "account": account,
            "ts": int(time.time() * 1000),
            **fields,
        }
        self.request("trade.event", payload=event)
        return event

    def close(self) -> None:
        self._stack.close()


@pytest.fixture
def ea_factory() -> Iterator[Callable[[HubProcess, str], SimulatedEA]]:
    made: list[SimulatedEA] = []

    def make(hub: HubProcess, token: str) -> SimulatedEA:
        ea = SimulatedEA(hub, token)
        made.append(ea)
        return ea

    yield make
    for ea in made:
        ea.close()


# -- the browser ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    require_chromium()
    with chromium() as b:
        yield b


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1440, "height": 1000}, color_scheme="dark")
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.errors = errors
    try:
        yield pg
    finally:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        try:
            pg.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
        finally:
            context.close()
    assert not errors, f"uncaught errors in the page: {errors}"


def login(page: Any, hub: HubProcess, token: str) -> None:
    page.goto(hub.base + "/")
    page.fill("#token-input", token)
    page.click("#login-submit")
    wait_live(page)


def wait_live(page: Any) -> None:
    page.wait_for_function("window.mtbDashboard && window.mtbDashboard.state === 'open'", timeout=WAIT_MS)
