"""The two terminals of the protocol-sync test (tests/mql5/test_protocol_sync.py), behind one
interface, and the hub they talk to.

- :class:`MQL5Terminal`: the shipped ``MTBridgeEA.mq5`` compiled by the harness (tests/mql5/harness),
  trading on the runtime's simulated trade server, configured with the simulator's market;
- :class:`PythonTerminal`: :class:`bridge.simulator.SimulatedEA` in this process.

Both report the order in which they produced their trade events (the EA's ``outbox.jnl``, the
simulator's outbox) and whether their outbox is drained, and let the test move a symbol's price so
that pending orders trigger (the EA's ``MQL_TRADE_CONFIG`` file, which the runtime re-reads when it
changes; :meth:`SimulatedEA.set_price` for the simulator).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Protocol

import httpx

from bridge.simulator import RiskGuards, SimAccount, SimulatedEA
from bridge.simulator.account import VOLUME_MAX, VOLUME_MIN, VOLUME_STEP, contract_of, digits_of
from bridge.simulator.risk import LOT_MODES, parse_trading_hours
from tests.support.mql5 import harness_env
from tests.support.rest import Rest
from tests.support.waits import until

__all__ = [
    "ACCOUNT",
    "INPUTS",
    "MAGIC",
    "SERVER_UTC_OFFSET",
    "SERVER_UTC_OFFSET_S",
    "SYMBOLS",
    "HubRest",
    "MQL5Terminal",
    "PythonTerminal",
    "Terminal",
    "guards_from_inputs",
]

REPO = Path(__file__).resolve().parents[2]
HARNESS = REPO / "tests" / "mql5" / "harness"
ACCOUNT = "50123"
MAGIC = 770001
#: Symbols the broker (both terminals) knows; the EA's AllowedSymbols is a subset of them.
SYMBOLS = ("EURUSD", "GBPUSD", "USDJPY")
WAIT = 90.0
SERVER_UTC_OFFSET = "SERVER_UTC_OFFSET"
SERVER_UTC_OFFSET_S = 7200
#: The EA's inputs both terminals start with (the MQL5 names; the simulator maps them to RiskGuards).
INPUTS: dict[str, str] = {
    "Strategies": "alpha",
    "MaxLot": "1.0",
    "MaxSignalAgeSec": "30",
    "MaxSlippagePoints": "20",
    "SnapshotIntervalSec": "0",
    "TimerMs": "20",
    "Magic": str(MAGIC),
    "LotMode": "0",
    "LotMultiplier": "1.0",
    "FixedLot": "0.01",
    "RiskPercent": "1.0",
    "MaxOpenPositions": "0",
    "MaxDailyLossPct": "0",
    "TradingHours": "",
    # not an EA input: the broker's server clock minus UTC, in seconds (the harness's
    # MQL_SERVER_UTC_OFFSET, the simulator's server_utc_offset_s): a UTC+2 broker, as most are;
    # one day more jumps to the next broker day
    SERVER_UTC_OFFSET: str(SERVER_UTC_OFFSET_S),
}


def guards_from_inputs(inputs: dict[str, str]) -> RiskGuards:
    """The simulator's equivalent of the EA's inputs (docs/simulator.md lists the mapping)."""
    return RiskGuards(
        max_lot=float(inputs["MaxLot"]),
        allowed_symbols=frozenset(s for s in inputs.get("AllowedSymbols", "").split(",") if s),
        max_signal_age_s=int(inputs["MaxSignalAgeSec"]),
        max_slippage_points=int(inputs["MaxSlippagePoints"]),
        magic=int(inputs["Magic"]),
        lot_mode=LOT_MODES[int(inputs["LotMode"])],
        lot_multiplier=float(inputs["LotMultiplier"]),
        fixed_lot=float(inputs["FixedLot"]),
        risk_percent=float(inputs["RiskPercent"]),
        max_open_positions=int(inputs["MaxOpenPositions"]),
        max_daily_loss_pct=float(inputs["MaxDailyLossPct"]),
        trading_hours=parse_trading_hours(inputs["TradingHours"]),
        server_utc_offset_s=int(inputs[SERVER_UTC_OFFSET]),
    )


class HubRest:
    """The hub's REST side: publish signals, pause/resume, read stored events and delivery status."""

    def __init__(self, http_url: str, engine: str, admin: str) -> None:
        self.http = httpx.AsyncClient(base_url=http_url, timeout=10)
        self.engine = {"Authorization": f"Bearer {engine}"}
        self.admin = {"Authorization": f"Bearer {admin}"}
        self.admin_rest = Rest(http_url, admin)

    async def close(self) -> None:
        await self.http.aclose()
        await self.admin_rest.client.aclose()

    async def publish(self, signal: dict[str, Any]) -> None:
        r = await self.http.post("/api/v1/signals", json=signal, headers=self.engine)
        assert r.status_code == 201, r.text

    async def control(self, command: str) -> None:
        body = {"scope": "account", "command": command, "account": ACCOUNT}
        r = await self.http.post("/api/v1/control", json=body, headers=self.admin)
        assert r.status_code == 200, r.text

    async def events(self) -> list[dict[str, Any]]:
        """Every stored event of the account (any order: the caller orders them)."""
        return await self.admin_rest.all_pages("/api/v1/events", limit=500, account=ACCOUNT)

    async def status(self, signal_id: str) -> str | None:
        r = await self.http.get(f"/api/v1/signals/{signal_id}", headers=self.admin)
        if r.status_code != 200:
            return None
        for d in r.json().get("deliveries", []):
            if d["account"] == ACCOUNT:
                return str(d["status"])
        return None


class Terminal(Protocol):
    """What the scenario needs from a terminal."""

    name: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def set_price(self, symbol: str, bid: float, ask: float) -> None: ...

    async def reconfigure(self, inputs: dict[str, str]) -> None:
        """Change inputs as a user does: stop the EA, change them, start it again (state kept)."""
        ...

    def produced(self) -> list[str]:
        """Ids of the trade events the terminal produced, in the order it produced them."""
        ...

    def outbox_empty(self) -> bool: ...


def market() -> dict[str, tuple[float, float]]:
    """The simulator's quotes: the EA's trade server is configured with exactly these."""
    account = SimAccount(ACCOUNT)
    return {s: account.quote(s) for s in SYMBOLS}


class MQL5Terminal:
    """The compiled EA as a terminal runs it; its files live under ``root``."""

    name = "mql5"

    def __init__(self, binary: Path, root: Path, hub_ws: str, token: str, allowed: list[str]) -> None:
        self.binary = binary
        self.root = root
        self.quotes = market()
        self.inputs = {**INPUTS, "HubUrl": hub_ws, "Token": token, "AllowedSymbols": ",".join(allowed)}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = root / "ea.log"
        self.state_dir = root / "common" / "MTBridge" / f"{ACCOUNT}-{MAGIC}"
        (root / "common").mkdir(parents=True, exist_ok=True)
        (root / "files").mkdir(exist_ok=True)
        self._write_config()
        # same start state as a fresh simulated account: balance 10,000 and tickets counted from 1
        (root / "trade.state").write_text("next 1\nbalance 10000\n")

    def _write_config(self) -> None:
        lines = ["account login=50123 balance=10000 currency=USD leverage=100"]
        for s, (bid, ask) in self.quotes.items():
            d = digits_of(s)
            lines.append(
                f"symbol {s} bid={bid:.{d}f} ask={ask:.{d}f} digits={d} vol_min={VOLUME_MIN} "
                f"vol_max={VOLUME_MAX} vol_step={VOLUME_STEP} contract={contract_of(s):g}"
            )
        tmp = self.root / "trade.cfg.tmp"
        tmp.write_text("\n".join(lines) + "\n")
        os.replace(tmp, self.root / "trade.cfg")

    def set_price(self, symbol: str, bid: float, ask: float) -> None:
        self.quotes[symbol] = (bid, ask)
        self._write_config()

    async def start(self) -> None:
        inputs = {k: v for k, v in self.inputs.items() if k != SERVER_UTC_OFFSET}
        env = harness_env(self.root, inputs, MQL_SERVER_UTC_OFFSET=self.inputs[SERVER_UTC_OFFSET])
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen([str(self.binary)], env=env, stdout=log, stderr=subprocess.STDOUT)
        state = self.state_dir / "state.txt"

        async def subscribed() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"the EA exited: {self.log.read_text()[-3000:]}")
            return state.exists() and "offset signals:alpha " in state.read_text()

        await until(subscribed, "the EA's first subscription", timeout=WAIT, interval=0.1)

    async def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            rc = await asyncio.to_thread(proc.wait, 30)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = await asyncio.to_thread(proc.wait)
        text = self.log.read_text()
        assert rc == 0, text[-5000:]
        assert "ERROR: AddressSanitizer" not in text and "runtime error" not in text, text[-5000:]

    async def reconfigure(self, inputs: dict[str, str]) -> None:
        await self.stop()
        self.inputs.update(inputs)
        await self.start()

    def _journal(self) -> list[str]:
        path = self.state_dir / "outbox.jnl"
        return path.read_text().splitlines() if path.exists() else []

    def produced(self) -> list[str]:
        ids = []
        for line in self._journal():
            if line.startswith("+"):
                try:
                    ids.append(str(json.loads(line[1:])["id"]))
                except (ValueError, KeyError):
                    continue
        return ids

    def outbox_empty(self) -> bool:
        added, acked = set(), set()
        for line in self._journal():
            if line.startswith("+"):
                try:
                    added.add(str(json.loads(line[1:])["id"]))
                except (ValueError, KeyError):
                    continue
            elif line.startswith("-"):
                acked.add(line[1:].strip())
        return added <= acked


class PythonTerminal:
    """``bridge.simulator.SimulatedEA`` with the same inputs as the EA."""

    name = "python"

    def __init__(self, root: Path, hub_ws: str, token: str, allowed: list[str]) -> None:
        self._produced: list[str] = []
        self.root, self.hub_ws, self.token = root, hub_ws, token
        self.inputs = {**INPUTS, "AllowedSymbols": ",".join(allowed)}
        self.ea = self._make()

    def _make(self) -> SimulatedEA:
        return SimulatedEA(
            self.hub_ws,
            self.token,
            ACCOUNT,
            ["alpha"],
            self.root,
            guards=guards_from_inputs(self.inputs),
            snapshot_interval=None,
            on_queued=self._on_queued,
        )

    async def reconfigure(self, inputs: dict[str, str]) -> None:
        await self.ea.stop()
        self.inputs.update(inputs)
        self.ea = self._make()
        await self.ea.start()

    def _on_queued(self, event: dict[str, Any]) -> None:
        self._produced.append(str(event["id"]))

    async def start(self) -> None:
        await self.ea.start()

    def set_price(self, symbol: str, bid: float, ask: float) -> None:
        self.ea.set_price(symbol, bid, ask)

    async def stop(self) -> None:
        await self.ea.stop()

    def produced(self) -> list[str]:
        return list(self._produced)

    def outbox_empty(self) -> bool:
        return not self.ea.state.outbox


def python_path_for_harness() -> None:
    if str(HARNESS) not in sys.path:
        sys.path.insert(0, str(HARNESS))
