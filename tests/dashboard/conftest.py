"""Fixtures for the dashboard tests: a live hub subprocess, a simulated EA and Chromium. What the
test modules import is in tests/support/dashboard.py."""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import ClientConnection, connect

from tests.support.browser import WAIT_S, chromium, require_chromium
from tests.support.dashboard import ARTIFACTS, SUBPROTOCOLS, DashboardHub


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[DashboardHub]:
    h = DashboardHub(tmp_path / "hub")
    h.start()
    try:
        yield h
    finally:
        h.stop()


class SimulatedEA:
    """An EA speaking protocol v1 over a real socket: subscribe, ack, report trade events."""

    def __init__(self, hub: DashboardHub, token: str) -> None:
        self._stack = contextlib.ExitStack()
        self.ws: ClientConnection = self._stack.enter_context(
            connect(hub.url, subprotocols=SUBPROTOCOLS, open_timeout=WAIT_S)
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
def ea_factory() -> Iterator[Callable[[DashboardHub, str], SimulatedEA]]:
    made: list[SimulatedEA] = []

    def make(hub: DashboardHub, token: str) -> SimulatedEA:
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
