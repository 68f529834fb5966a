"""examples/react-dashboard built with Vite, served by `vite preview` and driven in Chromium against
a live `mtbridge serve`, with the EA simulator (`mtbridge simulate-ea`) executing the signals.

Needs node >= 20.19 and `npm ci` in examples/react-dashboard (scripts/test.sh does it), and
Debian's /usr/bin/chromium. Without them the tests skip with the reason, unless
BRIDGE_REQUIRE_SERVICES is set, where they fail instead.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import factories
from tests.support.browser import CHROMIUM, WAIT_MS, WAIT_S, chromium
from tests.support.hub import ROOT, HubProcess
from tests.support.ports import free_port
from tests.support.waits import FACTOR, wait_until

pytestmark = pytest.mark.browser

EXAMPLE = ROOT / "examples" / "react-dashboard"
VITE = EXAMPLE / "node_modules" / "vite" / "bin" / "vite.js"
ARTIFACTS = ROOT / "test-artifacts" / "react-dashboard"
BACKOFF_CAP_MS = 30_000  # the client's longest reconnect delay
BIN = str(Path(sys.executable).parent / "mtbridge")
ACCOUNT = "50123"
STRATEGY = "alpha"


def _missing() -> str | None:
    node = shutil.which("node")
    if node is None:
        return "node is not installed"
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True).stdout
    major, minor = (int(p) for p in version.strip().lstrip("v").split(".")[:2])
    if (major, minor) < (20, 19):
        return f"Vite 8 needs node >= 20.19, found {version.strip()}"
    if not VITE.is_file():
        return "run `npm ci` in examples/react-dashboard (scripts/test.sh does)"
    if not CHROMIUM.exists():
        return "Debian's chromium is not installed (apt-get install -y chromium)"
    return None


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`vite build` of the example into a temporary directory (about 1 s of the build itself)."""
    reason = _missing()
    if reason is not None:
        if os.environ.get("BRIDGE_REQUIRE_SERVICES"):
            pytest.fail(reason)
        pytest.skip(reason)
    out = tmp_path_factory.mktemp("react-dist")
    proc = subprocess.run(
        ["node", str(VITE), "build", "--outDir", str(out), "--emptyOutDir", "--logLevel", "warn"],
        cwd=EXAMPLE,
        capture_output=True,
        text=True,
        timeout=300 * FACTOR,
        check=False,
    )
    assert proc.returncode == 0, f"vite build failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    assert (out / "index.html").is_file()
    return out


class Site:
    """The example behind Vite, which proxies /api and /ws to the hub: `vite preview` serving the
    built files (``out``), or the development server (``out`` None: React's development build,
    StrictMode mounting every component twice)."""

    def __init__(self, hub: HubProcess, port: int, out: Path | None, log: Path) -> None:
        self.hub = hub
        self.port = port
        self.url = f"http://127.0.0.1:{port}/"
        env = {**os.environ, "MTBRIDGE_HUB": hub.http}
        serve = ["preview", "--outDir", str(out)] if out is not None else ["--clearScreen", "false"]
        with log.open("ab") as logf:
            self.proc = subprocess.Popen(
                ["node", str(VITE), *serve, "--host", "127.0.0.1", "--port", str(port), "--strictPort"],
                cwd=EXAMPLE,
                env=env,
                stdout=logf,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

        def up() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"vite preview exited:\n{log.read_text()[-4000:]}")
            try:
                return httpx.get(self.url, timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(up, "vite preview")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10 * FACTOR)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


@contextlib.contextmanager
def serving(out: Path | None, tmp_path: Path) -> Iterator[Site]:
    port = free_port()
    # The page's WebSocket goes through the proxy with the page's Origin, which the hub checks.
    hub = HubProcess(tmp_path / "hub-data", None, "--allowed-origin", f"http://127.0.0.1:{port}")
    hub.start()
    s = None
    try:
        s = Site(hub, port, out, tmp_path / "vite.log")
        yield s
    finally:
        if s is not None:
            s.stop()
        hub.stop()


@pytest.fixture
def site(built: Path, tmp_path: Path) -> Iterator[Site]:
    with serving(built, tmp_path) as s:
        yield s


@pytest.fixture
def dev_site(built: Path, tmp_path: Path) -> Iterator[Site]:
    with serving(None, tmp_path) as s:
        yield s


class EA:
    """`mtbridge simulate-ea` for one account, following the strategy from offset 0."""

    def __init__(self, hub: HubProcess, state_dir: Path) -> None:
        token = hub.token("ea", f"ea-{ACCOUNT}", accounts=[ACCOUNT], subscribe=["signals:*"])
        self.log = state_dir / "ea.log"
        state_dir.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as logf:
            self.proc = subprocess.Popen(
                [
                    BIN,
                    "simulate-ea",
                    "--hub",
                    hub.url,
                    "--account",
                    ACCOUNT,
                    "--strategy",
                    STRATEGY,
                    "--state-dir",
                    str(state_dir),
                    "--from-start",
                    "--snapshot-interval",
                    "0",
                ],
                env={**os.environ, "MTBRIDGE_TOKEN": token},
                stdout=logf,
                stderr=subprocess.STDOUT,
            )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20 * FACTOR)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def ea_factory(tmp_path: Path) -> Iterator[Callable[[HubProcess], EA]]:
    made: list[EA] = []

    def make(hub: HubProcess) -> EA:
        ea = EA(hub, tmp_path / f"ea-{len(made)}")
        made.append(ea)
        return ea

    yield make
    for ea in made:
        ea.stop()


@pytest.fixture(scope="module")
def browser(built: Path) -> Iterator[Any]:
    with chromium() as b:
        yield b


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield pg
    finally:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(Exception):
            pg.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
        context.close()
    assert not errors, f"uncaught errors in the page: {errors}"


# -- helpers ----------------------------------------------------------------------------------------


def dashboard_token(hub: HubProcess, ttl: float = 3600) -> str:
    return hub.token("dashboard", "react-wall", ttl=ttl, accounts=["*"])


def log_in(page: Any, site: Site, token: str, encoding: str = "json") -> None:
    page.goto(site.url)
    page.fill("input[name=token]", token)
    page.fill("input[name=strategy]", STRATEGY)
    page.fill("input[name=account]", ACCOUNT)
    page.select_option("select[name=encoding]", encoding)
    page.click("button[type=submit]")
    wait_open(page)
    # The hub's welcome names the encoding it negotiated.
    assert page.text_content("[data-testid=encoding]") == encoding


def wait_open(page: Any, connects: int = 1, timeout_ms: int = WAIT_MS) -> None:
    page.wait_for_selector(
        f'[data-testid=conn][data-state=open][data-connects="{connects}"]', timeout=timeout_ms
    )


def publish(hub: HubProcess, engine: str, **extra: Any) -> dict[str, Any]:
    sig = factories.signal(STRATEGY, [ACCOUNT], stops=False, **extra)
    r = httpx.post(
        f"{hub.http}/api/v1/signals", json=sig, headers={"Authorization": f"Bearer {engine}"}, timeout=30
    )
    assert r.status_code == 201, r.text
    return sig


def chip(signal_id: str, status: str) -> str:
    row = f'[data-testid=signals] tr[data-signal-id="{signal_id}"]'
    return f'{row} .chip[data-account="{ACCOUNT}"][data-status="{status}"]'


def row_ids(page: Any, table: str, attr: str) -> list[str]:
    return page.eval_on_selector_all(  # type: ignore[no-any-return]
        f"[data-testid={table}] tbody tr", f"rows => rows.map(r => r.dataset.{attr})"
    )


def engine_token(hub: HubProcess) -> str:
    return hub.token("engine", "engine-1", publish=["signals:*"])


# -- tests ------------------------------------------------------------------------------------------


def test_delivery_statuses_merge_forward_only() -> None:
    """The page's pure status model (examples/react-dashboard/test/*.test.mjs, node --test)."""
    if shutil.which("node") is None:
        if os.environ.get("BRIDGE_REQUIRE_SERVICES"):
            pytest.fail("node is not installed")
        pytest.skip("node is not installed")
    proc = subprocess.run(
        ["node", "--test", "test/"],
        cwd=EXAMPLE,
        capture_output=True,
        text=True,
        timeout=120 * FACTOR,
        check=False,
    )
    assert proc.returncode == 0, f"node --test failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}"


def test_signal_status_goes_from_pending_to_executed_in_msgpack(
    site: Site, page: Any, ea_factory: Any
) -> None:
    """The page on `mtbridge.v1.msgpack` (the codec is a chunk of its own, loaded on connect);
    the restart test below sees the same in JSON."""
    hub = site.hub
    log_in(page, site, dashboard_token(hub), "msgpack")
    sig = publish(hub, engine_token(hub))
    page.wait_for_selector(chip(sig["id"], "pending"), timeout=WAIT_MS)

    ea_factory(hub)  # the simulated EA replays the channel, acks and executes the signal
    page.wait_for_selector(chip(sig["id"], "executed"), timeout=WAIT_MS)

    # The account's trade events for the fill: deal, position opened, order filled, once each.
    page.wait_for_function(
        "document.querySelectorAll('[data-testid=events] tbody tr').length === 3", timeout=WAIT_MS
    )
    kinds = sorted(row_ids(page, "events", "kind"))
    assert kinds == ["deal", "order", "position"]
    assert row_ids(page, "signals", "signalId") == [sig["id"]]


def hub_status(hub: HubProcess, token: str, signal_id: str) -> str:
    r = httpx.get(
        f"{hub.http}/api/v1/signals/{signal_id}", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    assert r.status_code == 200, r.text
    return str(r.json()["deliveries"][0]["status"])


def test_hub_restart_recovers_without_duplicate_rows(site: Site, page: Any, ea_factory: Any) -> None:
    hub = site.hub
    engine = engine_token(hub)
    # The page's WebSocket goes through Playwright, which can keep it away from the hub for a while.
    away = {"on": False}

    def route(ws: Any) -> None:
        if away["on"]:
            ws.close(code=1011, reason="kept away by the test")
        else:
            ws.connect_to_server()

    page.route_web_socket(re.compile(r"/ws$"), route)
    log_in(page, site, dashboard_token(hub))  # JSON
    before = [publish(hub, engine) for _ in range(5)]
    for sig in before:
        page.wait_for_selector(chip(sig["id"], "pending"), timeout=WAIT_MS)
    ea_factory(hub)
    for sig in before:
        page.wait_for_selector(chip(sig["id"], "executed"), timeout=WAIT_MS)
    page.wait_for_function(
        "document.querySelectorAll('[data-testid=events] tbody tr').length === 15", timeout=WAIT_MS
    )

    away["on"] = True
    hub.stop()
    page.wait_for_selector("[data-testid=conn]:not([data-state=open])", timeout=WAIT_MS)
    hub.start()
    # While the page is away, signals are published and executed (the EA reconnects by itself): the
    # page must replay them from the offsets it had seen, and learn their statuses, which were
    # pushed on system:signals while it was away, from REST.
    after = [publish(hub, engine) for _ in range(5)]
    for sig in after:  # the EA's reconnect backs off like the page's (same 30 s cap)
        wait_until(
            lambda sig=sig: hub_status(hub, engine, sig["id"]) == "executed",
            "execution",
            timeout=BACKOFF_CAP_MS / 1000 + WAIT_S,
        )
    assert page.get_attribute("[data-testid=conn]", "data-connects") == "1"
    away["on"] = False
    # Each refused attempt doubled the client's backoff, capped at 30 s (docs/protocol.md): the
    # next attempt may be that far away.
    wait_open(page, connects=2, timeout_ms=BACKOFF_CAP_MS + WAIT_MS)
    live = publish(hub, engine)  # and live after the restart
    signals = [*before, *after, live]
    for sig in signals:
        page.wait_for_selector(chip(sig["id"], "executed"), timeout=WAIT_MS)
    page.wait_for_function(
        f"document.querySelectorAll('[data-testid=events] tbody tr').length === {3 * len(signals)}",
        timeout=WAIT_MS,
    )

    ids = row_ids(page, "signals", "signalId")
    assert len(ids) == len(set(ids)) == len(signals)
    assert ids == [s["id"] for s in reversed(signals)]  # newest first, in offset order
    offsets = [int(o) for o in row_ids(page, "signals", "offset")]
    assert offsets == list(range(len(signals), 0, -1))
    events = row_ids(page, "events", "eventId")
    assert len(events) == len(set(events)) == 3 * len(signals)
    event_offsets = [int(o) for o in row_ids(page, "events", "offset")]
    assert event_offsets == list(range(3 * len(signals), 0, -1))


def test_refused_token_then_refresh_on_the_live_connection(site: Site, page: Any) -> None:
    hub = site.hub
    # A token the hub refuses (4500) stops the client: said on the page, not retried.
    page.goto(site.url)
    page.fill("input[name=token]", "not-a-token")
    page.click("button[type=submit]")
    page.wait_for_selector("[data-testid=conn][data-state=closed]", timeout=WAIT_MS)
    assert page.text_content("[data-testid=conn]") == "refused: token_invalid"
    page.click("text=log out")
    page.wait_for_selector("[data-testid=login]", timeout=WAIT_MS)

    # Expires in 65 s: the hub warns 60 s before, so about 5 s after the login.
    log_in(page, site, dashboard_token(hub, ttl=65))
    first = page.text_content("[data-testid=expires]")
    page.wait_for_selector("[data-testid=token-banner]", timeout=WAIT_MS)
    page.fill("input[name=fresh-token]", dashboard_token(hub))
    page.click("[data-testid=token-banner] button")
    page.wait_for_selector("[data-testid=token-banner]", state="detached", timeout=WAIT_MS)
    page.wait_for_function(
        f"document.querySelector('[data-testid=expires]').textContent !== {first!r}", timeout=WAIT_MS
    )
    # Same connection: refreshed with auth.refresh, not reconnected.
    wait_open(page, connects=1)
    sig = publish(hub, engine_token(hub))
    page.wait_for_selector(chip(sig["id"], "pending"), timeout=WAIT_MS)


def test_remounts_resubscribe_without_duplicates_in_strict_mode(
    dev_site: Site, page: Any, ea_factory: Any
) -> None:
    """The development server: StrictMode mounts, unmounts and mounts every component, so each
    useChannel subscribes, unsubscribes and subscribes again on the same connection."""
    hub = dev_site.hub
    engine = engine_token(hub)
    log_in(page, dev_site, dashboard_token(hub))
    ea_factory(hub)
    first = [publish(hub, engine) for _ in range(2)]
    for sig in first:
        page.wait_for_selector(chip(sig["id"], "executed"), timeout=WAIT_MS)
    rows = "document.querySelectorAll('[data-testid=events] tbody tr').length"
    page.wait_for_function(f"{rows} === 6", timeout=WAIT_MS)

    for _ in range(2):  # hide (unmount: unsubscribe), show (mount twice: subscribe from `since`)
        page.click("[data-testid=events-panel-toggle]")
        page.wait_for_selector("[data-testid=events]", state="detached", timeout=WAIT_MS)
        page.click("[data-testid=events-panel-toggle]")
        page.wait_for_function(f"{rows} === 6", timeout=WAIT_MS)
    # Still subscribed on the hub: new events arrive, once each.
    last = publish(hub, engine)
    page.wait_for_selector(chip(last["id"], "executed"), timeout=WAIT_MS)
    page.wait_for_function(f"{rows} === 9", timeout=WAIT_MS)
    events = row_ids(page, "events", "eventId")
    assert len(events) == len(set(events)) == 9
    assert [int(o) for o in row_ids(page, "events", "offset")] == list(range(9, 0, -1))
    assert page.get_attribute("[data-testid=events-panel] p.channel", "data-status") == "live"
    assert row_ids(page, "signals", "signalId") == [s["id"] for s in reversed([*first, last])]
