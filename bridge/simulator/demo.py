"""``mtbridge demo``: a hub, a demo engine and three simulated EAs in one command.

The hub runs as a child process (``mtbridge serve``, embedded defaults) in a temporary or given data
directory; the engine publishes a short scripted cycle of signals; each EA executes them and reports
trade events; the engine prints the delivery status the hub pushes back. Everything it starts is
stopped on every exit path.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import signal as signals
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from bridge.client import Client, connect
from bridge.simulator.account import RiskGuards
from bridge.simulator.ea import SimulatedEA

__all__ = ["DEMO_ACCOUNTS", "DemoOptions", "demo_script", "format_line", "run_demo"]

DEMO_ACCOUNTS = ("50123", "50124", "50125")
HUB_START_TIMEOUT = 30.0
HUB_STOP_TIMEOUT = 10.0


class DemoOptions:
    def __init__(
        self,
        *,
        data_dir: Path | None = None,
        port: int | None = None,
        duration: float | None = None,
        interval: float = 1.0,
        accounts: tuple[str, ...] = DEMO_ACCOUNTS,
        out: TextIO | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.port = port
        self.duration = duration
        self.interval = interval
        self.accounts = accounts
        self.out = out or sys.stdout


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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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


def run_demo(options: DemoOptions) -> int:
    """Start the hub, issue the tokens, run the flow; stops everything it started on every exit path."""
    with contextlib.ExitStack() as stack:
        if options.data_dir is None:
            data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mtbridge-demo-")))
        else:
            data_dir = options.data_dir
            data_dir.mkdir(parents=True, exist_ok=True)
        port = options.port or _free_port()
        print(
            f"mtbridge demo: hub on ws://127.0.0.1:{port}/ws, data in {data_dir} (log: hub.log)",
            file=options.out,
            flush=True,
        )
        log = stack.enter_context(open(data_dir / "hub.log", "ab"))
        proc = subprocess.Popen(
            [sys.executable, "-m", "bridge.cli", "serve", "--data-dir", str(data_dir), "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        stack.callback(_stop_hub, proc)
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
        return asyncio.run(_flow(options, f"ws://127.0.0.1:{port}/ws", data_dir, engine_token, ea_tokens))


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
