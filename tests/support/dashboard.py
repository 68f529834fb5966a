"""What the dashboard tests share beyond their fixtures (tests/dashboard/conftest.py): the hub they
drive (:class:`DashboardHub`, the one ``mtbridge serve`` launcher with tokens minted as an operator
mints them and a synchronous REST call), the page helpers (log in, wait for the live feed), the
signals they publish and where screenshots go."""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Any

import httpx
from websockets.typing import Subprotocol

from tests.support.browser import WAIT_MS
from tests.support.factories import signal
from tests.support.hub import ROOT, HubProcess
from tests.support.ports import free_port

__all__ = ["ARTIFACTS", "BIN", "SUBPROTOCOLS", "DashboardHub", "login", "make_signal", "wait_live"]

ARTIFACTS = ROOT / "test-artifacts" / "dashboard"
SUBPROTOCOLS = [Subprotocol("mtbridge.v1.json")]
#: The installed console script, as an operator runs it.
BIN = str(Path(sys.executable).parent / "mtbridge")

#: The dashboard tests publish plain market buys (no stops): ``make_signal(strategy, accounts, **fields)``.
make_signal = functools.partial(signal, stops=False)


class DashboardHub(HubProcess):
    """``mtbridge serve --log-level warning`` on a free port with its own data dir; restartable on
    the same port. Tokens come from ``mtbridge token`` (the dashboard's login takes what an operator
    pastes)."""

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        super().__init__(data_dir, port or free_port(), "--log-level", "warning")

    def token(self, role: str, sub: str, *extra: str) -> str:  # type: ignore[override]
        return self.cli_token("--role", role, "--sub", sub, *extra)

    def rest(self, method: str, path: str, token: str, body: Any = None) -> httpx.Response:
        return httpx.request(
            method, f"{self.http}{path}", headers={"Authorization": f"Bearer {token}"}, json=body, timeout=30
        )


def login(page: Any, hub: HubProcess, token: str) -> None:
    page.goto(hub.http + "/")
    page.fill("#token-input", token)
    page.click("#login-submit")
    wait_live(page)


def wait_live(page: Any) -> None:
    page.wait_for_function("window.mtbDashboard && window.mtbDashboard.state === 'open'", timeout=WAIT_MS)
