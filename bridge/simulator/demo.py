"""``mtbridge demo``: a hub, a demo engine and three simulated EAs in one command.

The hub runs as a child process (``mtbridge serve``, embedded defaults) in a temporary or given data
directory; the engine publishes a short scripted cycle of signals; each EA executes them and reports
trade events; the engine prints the delivery status the hub pushes back. Before the flow starts the
demo prints the dashboard's address, a ready admin token and the data directory, and with ``open_browser``
starts the system browser on the dashboard. Everything it starts is stopped on every exit path.

A port that is already taken is refused before anything is started or connected (exit status 2): an
engine connecting to whatever else holds the port would fail later, and far less clearly.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import itertools
import signal as signals
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
import webbrowser
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

from bridge.client import Client, connect
from bridge.simulator.account import RiskGuards
from bridge.simulator.ea import SimulatedEA

__all__ = [
    "DEMO_ACCOUNTS",
    "EXIT_PORT_BUSY",
    "DemoOptions",
    "PortBusy",
    "check_port_free",
    "demo_script",
    "format_line",
    "open_dashboard",
    "run_demo",
]

DEMO_ACCOUNTS = ("50123", "50124", "50125")
HOST = "127.0.0.1"
HUB_START_TIMEOUT = 30.0
HUB_STOP_TIMEOUT = 10.0
#: The admin token printed for the dashboard lasts a working day: long enough for a demo session,
#: short enough that a token copied out of a terminal does not stay useful for long.
ADMIN_TOKEN_TTL = 12 * 3600
#: Exit status for a port that is already taken (a usage problem, as argparse's own 2).
EXIT_PORT_BUSY = 2


class DemoOptions:
    def __init__(
        self,
        *,
        data_dir: Path | None = None,
        port: int | None = None,
        duration: float | None = None,
        interval: float = 1.0,
        accounts: tuple[str, ...] = DEMO_ACCOUNTS,
        open_browser: bool = False,
        out: TextIO | None = None,
        err: TextIO | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.port = port
        self.duration = duration
        self.interval = interval
        self.accounts = accounts
        self.open_browser = open_browser
        self.out = out or sys.stdout
        self.err = err or sys.stderr


def demo_script(accounts: tuple[str, ...]) -> Iterator[dict[str, Any]]:
    """An endless cycle of signals that exercises open, modify, close, a guard rejection and close_all."""
    everyone = list(accounts)
    some = everyone[:2]
    cycle: list[dict[str, Any]] = [
        {
            "accounts": everyone,
            "symbol": "EURUSD",
            "action": "open",
            "side": "buy",
            "orderType": "market",
            "volume": 0.10,
            "sl": 1.07,
            "tp": 1.10,
        },
        {
            "accounts": some,
            "symbol": "GBPUSD",
            "action": "open",
            "side": "sell",
            "orderType": "market",
            "volume": 0.05,
        },
        {
            "accounts": everyone,
            "symbol": "EURUSD",
            "action": "modify",
            "side": "buy",
            "sl": 1.075,
            "tp": 1.095,
        },
        {
            "accounts": everyone,
            "symbol": "XAUUSD",
            "action": "open",
            "side": "buy",
            "orderType": "market",
            "volume": 1.5,
        },  # above the EAs' max lot: clamped to 1.0 lot (MaxLot)
        {"accounts": everyone, "symbol": "EURUSD", "action": "close", "side": "buy"},
        {"accounts": everyone, "action": "close_all"},
    ]
    for body in itertools.cycle(cycle):
        yield {"id": str(uuid.uuid4()), "strategy": "alpha", "ttl": 30, **body}


def format_line(kind: str, data: dict[str, Any]) -> str:
    """One human line per thing that happened."""
    who = f"EA {data.get('account', '?')}"
    if kind == "publish":
        what = " ".join(
            str(data[k]) for k in ("action", "side", "volume", "symbol") if data.get(k) is not None
        )
        return f"engine  -> signal {data['id'][:8]} {what} (offset {data['offset']})"
    if kind == "status":
        sid = str(data.get("signalId"))[:8]
        return f"hub     <- signal {sid} account {data.get('account')}: {data.get('status')}"
    if kind == "signal":
        extra = f" ({data['message']})" if data.get("message") else ""
        return f"{who}  signal {data['id'][:8]} {data['outcome']}{extra}"
    if kind == "event":
        state = data.get("state") or data.get("entry") or ""
        if data.get("kind") == "account":
            return (
                f"{who}  snapshot balance {data['balance']} equity {data['equity']} margin {data['margin']}"
            )
        return f"{who}  event {data['kind']} {state} {data.get('symbol', '')} stored".rstrip()
    if kind == "control":
        return f"{who}  {data['command']} {data['scope']}"
    if kind == "gap":
        return f"{who}  GAP on {data['channel']}: {data['reason']}"
    return f"{who}  {kind} {data}"


class PortBusy(Exception):
    """The demo's port is held by another process."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def check_port_free(port: int, host: str = HOST) -> None:
    """Raise :class:`PortBusy` if ``host:port`` cannot be bound the way the hub binds it.

    ``SO_REUSEADDR`` as uvicorn sets it, so a port whose last connections sit in TIME_WAIT counts as
    free (the hub could bind it), while a listening socket counts as busy."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise PortBusy(f"port {port} on {host} is in use") from exc
            if exc.errno == errno.EACCES:
                raise PortBusy(f"port {port} on {host} needs privileges this user lacks") from exc
            raise


def open_dashboard(url: str, say: Callable[[str], None]) -> bool:
    """Start the system browser on ``url`` if Python's ``webbrowser`` finds one; say so if not.

    The browser is started from a daemon thread: ``webbrowser`` waits for the browsers it runs as
    plain commands (``$BROWSER``, console browsers), and the demo must not wait with it."""
    try:
        browser = webbrowser.get()
    except webbrowser.Error:
        say(f"no web browser found on this system: open {url} yourself")
        return False
    threading.Thread(target=browser.open, args=(url,), name="mtbridge-demo-browser", daemon=True).start()
    say(f"opening {url} in {getattr(browser, 'name', 'the web browser')}")
    return True


def _token(data_dir: Path, *args: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "bridge.cli", "token", "--data-dir", str(data_dir), *args],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return out.stdout.decode().strip()


def _stop_hub(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signals.SIGTERM)
        try:
            proc.wait(timeout=HUB_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_ready(proc: subprocess.Popen[bytes], port: int, log_path: Path) -> None:
    """Wait until the hub *we started* answers ``/readyz``; raise if it exits first.

    Checking that our child is still alive on every poll is what tells our hub from another process
    that took the port in the moment between :func:`check_port_free` and the hub's bind."""
    deadline = time.monotonic() + HUB_START_TIMEOUT
    url = f"http://{HOST}:{port}/readyz"
    while True:
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace")[-2000:]
            if "address already in use" in tail.lower():
                raise PortBusy(f"port {port} on {HOST} is in use")
            raise RuntimeError(f"the hub exited with status {proc.returncode} (see {log_path})")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"the hub was not ready within {HUB_START_TIMEOUT:g} s (see {log_path})")
        time.sleep(0.1)  # a readiness poll, bounded by the deadline above


def run_demo(options: DemoOptions) -> int:
    """Start the hub, issue the tokens, run the flow; stops everything it started on every exit path."""
    port = options.port or _free_port()
    try:
        check_port_free(port)
    except PortBusy as exc:
        print(f"mtbridge demo: {exc}; choose another with --port, or leave --port out for a free one",
              file=options.err, flush=True)  # fmt: skip
        return EXIT_PORT_BUSY
    with contextlib.ExitStack() as stack:
        if options.data_dir is None:
            data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mtbridge-demo-")))
        else:
            data_dir = options.data_dir
            data_dir.mkdir(parents=True, exist_ok=True)
        data_dir = data_dir.resolve()
        # Tokens first: the first one creates the signing secret, before the hub reads it.
        admin_token = _token(
            data_dir, "--role", "admin", "--sub", "demo-admin", "--account", "*",
            "--ttl", str(ADMIN_TOKEN_TTL),
        )  # fmt: skip
        engine_token = _token(
            data_dir,
            "--role",
            "engine",
            "--sub",
            "demo-engine",
            "--publish",
            "signals:*",
            "--subscribe",
            "signals:*",
        )
        ea_tokens = {
            login: _token(
                data_dir,
                "--role",
                "ea",
                "--sub",
                f"ea-{login}",
                "--account",
                login,
                "--subscribe",
                "signals:*",
            )
            for login in options.accounts
        }
        log_path = data_dir / "hub.log"
        log = stack.enter_context(open(log_path, "ab"))
        proc = subprocess.Popen(
            [sys.executable, "-m", "bridge.cli", "serve", "--data-dir", str(data_dir), "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        stack.callback(_stop_hub, proc)
        try:
            _wait_ready(proc, port, log_path)
        except PortBusy as exc:
            print(f"mtbridge demo: {exc}; choose another with --port", file=options.err, flush=True)
            return EXIT_PORT_BUSY
        except RuntimeError as exc:
            print(f"mtbridge demo: {exc}", file=options.err, flush=True)
            return 1
        dashboard = f"http://{HOST}:{port}/"

        def say(line: str) -> None:
            print(line, file=options.out, flush=True)

        say(f"mtbridge demo: hub on ws://{HOST}:{port}/ws")
        say(f"  dashboard:   {dashboard}")
        say(f"  admin token: {admin_token}")
        say(f"  data:        {data_dir}{'' if options.data_dir else ' (temporary: removed at exit)'}"
            f" (hub log: {log_path.name})")  # fmt: skip
        say("  paste the token into the dashboard's login form; `mtbridge token --data-dir DIR` makes more")
        if options.open_browser:
            open_dashboard(dashboard, say)
        return asyncio.run(_flow(options, f"ws://{HOST}:{port}/ws", data_dir, engine_token, ea_tokens))


async def _flow(
    options: DemoOptions, url: str, data_dir: Path, engine_token: str, ea_tokens: dict[str, str]
) -> int:
    out = options.out

    def say(line: str) -> None:
        print(line, file=out, flush=True)

    def sink(kind: str, data: dict[str, Any]) -> None:
        say(format_line(kind, data))

    eas: list[SimulatedEA] = []
    engine: Client | None = None
    try:
        engine = await asyncio.wait_for(
            connect(url, engine_token, retry=True, on_signal_status=lambda p: sink("status", p)),
            HUB_START_TIMEOUT,
        )
        for login, token in ea_tokens.items():
            ea = SimulatedEA(
                url,
                token,
                login,
                ["alpha"],
                data_dir / "ea-state",
                guards=RiskGuards(max_lot=1.0),
                snapshot_interval=10.0,
                sink=sink,
            )
            await ea.start()
            eas.append(ea)
        say(f"{len(eas)} simulated EAs connected; a signal every {options.interval:g} s (Ctrl-C stops)")
        deadline = None if options.duration is None else time.monotonic() + options.duration
        for body in demo_script(options.accounts):
            if deadline is not None and time.monotonic() >= deadline:
                break
            result = await engine.publish("signals:alpha", body)
            sink("publish", {**body, "offset": result.offset})
            await asyncio.sleep(options.interval)
        for ea in eas:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ea.drain(), 5.0)
        for ea in eas:
            say(
                f"summary: EA {ea.login}: {len(ea.state.signals)} signals handled, "
                f"{ea.confirmed} events stored, "
                f"balance {ea.state.account.balance}"
            )
        return 0
    finally:
        for ea in eas:
            await ea.stop()
        if engine is not None:
            await engine.close()
