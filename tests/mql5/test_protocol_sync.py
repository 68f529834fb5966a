"""Protocol sync: the MQL5 EA and the Python simulator give the same trade events for one scenario.

The scenario (a fixed list of signals and operator commands, :data:`SCENARIO`) runs twice against a
fresh ``mtbridge serve``: once with ``MTBridgeEA.mq5`` compiled by the harness, once with
``bridge.simulator.SimulatedEA``. Both start from the same account (balance 10,000, tickets from 1,
the same quotes). Per step the test waits for the hub to hold the step's events, then reads them back
from the hub's database over REST. The two runs must agree on every step: the events in the order the
terminal produced them (ids, kinds, signal ids, every payload field except the wall-clock ``ts``) and
the delivery status the hub derived for the signal. docs/simulator.md ("Protocol sync") says exactly
what is compared.
"""

from __future__ import annotations

import signal as signals
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support.hub import HubProcess
from tests.support.terminals import (
    ACCOUNT,
    HARNESS,
    REPO,
    SERVER_UTC_OFFSET,
    SERVER_UTC_OFFSET_S,
    WAIT,
    HubRest,
    MQL5Terminal,
    PythonTerminal,
    Terminal,
    python_path_for_harness,
)
from tests.support.waits import until

pytestmark = [pytest.mark.mql5, pytest.mark.slow]

ALLOWED = ["EURUSD", "GBPUSD"]
#: Fields that differ by nature between two runs: the wall clock.
NORMALISED = ("ts",)


@dataclass(frozen=True)
class Step:
    """One scripted step: publish a signal (``signal``) or send an operator command (``control``);
    ``events`` is how many trade events the step causes, ``status`` the signal's final delivery status."""

    name: str
    signal: dict[str, Any] = field(default_factory=dict)
    control: str = ""
    price: tuple[str, float, float] | None = None
    events: int = 0
    status: str = ""
    #: whose delivery status to record (default: this step's own signal)
    status_of: str = ""
    #: EA inputs to change (the terminal restarts with them, as when a user edits them)
    inputs: dict[str, str] = field(default_factory=dict)

    @property
    def signal_id(self) -> str:
        return signal_id(self.status_of or self.name)


def signal_id(name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"mtbridge-sync/{name}"))


def open_(
    name: str, symbol: str, side: str, volume: float, events: int = 3, status: str = "executed", **extra: Any
) -> Step:
    body = {
        "symbol": symbol,
        "action": "open",
        "side": side,
        "orderType": "market",
        "volume": volume,
        **extra,
    }
    return Step(name, signal=body, events=events, status=status)


def open_body(symbol: str, side: str, volume: float, **extra: Any) -> dict[str, Any]:
    return {
        "symbol": symbol,
        "action": "open",
        "side": side,
        "orderType": "market",
        "volume": volume,
        **extra,
    }


def rejected(name: str, body: dict[str, Any]) -> Step:
    return Step(name, signal=body, events=1, status="rejected")


SCENARIO: list[Step] = [
    open_("open-buy-eurusd", "EURUSD", "buy", 0.1, sl=1.07, tp=1.1),
    open_("open-sell-gbpusd", "GBPUSD", "sell", 0.2),
    open_("open-buy-eurusd-2", "EURUSD", "buy", 0.3),
    Step(
        "modify-eurusd",
        signal={"symbol": "EURUSD", "action": "modify", "sl": 1.06, "tp": 1.12},
        events=2,
        status="executed",
    ),
    Step("close-gbpusd", signal={"symbol": "GBPUSD", "action": "close"}, events=3, status="executed"),
    # 0.004 lot is below one 0.01 step: never rounded up to the minimum
    rejected(
        "below-min-lot",
        {"symbol": "EURUSD", "action": "open", "side": "buy", "orderType": "market", "volume": 0.004},
    ),
    rejected(
        "disallowed-symbol",
        {"symbol": "USDJPY", "action": "open", "side": "sell", "orderType": "market", "volume": 0.1},
    ),
    rejected(
        "stale-signal",
        {
            "symbol": "EURUSD",
            "action": "open",
            "side": "buy",
            "orderType": "market",
            "volume": 0.1,
            "createdAt": "stale",
        },
    ),
    Step("pause", control="pause"),
    rejected(
        "while-paused",
        {"symbol": "EURUSD", "action": "open", "side": "sell", "orderType": "market", "volume": 0.2},
    ),
    Step("resume", control="resume"),
    open_("open-sell-gbpusd-after-resume", "GBPUSD", "sell", 0.1),
    # pending orders: placed (the hub keeps the signal acked until a fill), triggered by a price move,
    # cancelled by a cancel signal, expired with their signal, refused on the wrong side of the market
    open_(
        "buy-limit-eurusd",
        "EURUSD",
        "buy",
        0.2,
        events=1,
        status="acked",
        orderType="limit",
        price=1.08,
        sl=1.07,
        tp=1.1,
    ),
    open_("sell-stop-gbpusd", "GBPUSD", "sell", 0.1, events=1, status="acked", orderType="stop", price=1.26),
    open_(
        "buy-limit-above-market",
        "EURUSD",
        "buy",
        0.1,
        events=1,
        status="rejected",
        orderType="limit",
        price=1.09,
    ),
    Step(
        "eurusd-falls-to-the-limit",
        price=("EURUSD", 1.0799, 1.08),
        events=3,
        status="executed",
        status_of="buy-limit-eurusd",
    ),
    # a cancel's own events are `cancelled` orders carrying its signalId: the cancel was carried out
    Step("cancel-gbpusd", signal={"symbol": "GBPUSD", "action": "cancel"}, events=1, status="executed"),
    rejected("cancel-nothing-left", {"symbol": "GBPUSD", "action": "cancel"}),
    open_(
        "sell-limit-short-lived",
        "GBPUSD",
        "sell",
        0.1,
        events=1,
        status="acked",
        orderType="limit",
        price=1.3,
        ttl=5,
    ),
    Step("short-lived-limit-expires", events=1),
    Step("close-all", signal={"action": "close_all"}, events=12, status="executed"),
    rejected("close-all-nothing-left", {"action": "close_all"}),
    # position sizing: each LotMode, rounded down to the 0.01 step and clamped to MaxLot
    Step("inputs-multiplier-2.5-max-lot-0.5", inputs={"LotMultiplier": "2.5", "MaxLot": "0.5"}),
    open_("multiplied-rounds-down", "EURUSD", "buy", 0.13),  # 0.325 -> 0.32
    open_("multiplied-clamped-to-max-lot", "EURUSD", "buy", 0.4),  # 1.0 -> 0.5
    rejected("multiplied-below-min", open_body("EURUSD", "buy", 0.003)),  # 0.0075 -> volume_below_min
    Step("inputs-fixed-lot-0.07", inputs={"LotMode": "1", "FixedLot": "0.07"}),
    open_("fixed-lot", "GBPUSD", "sell", 0.9),  # 0.07 whatever the signal says
    Step("inputs-risk-0.5-percent", inputs={"LotMode": "2", "RiskPercent": "0.5"}),
    open_("risk-sized", "EURUSD", "buy", 0.1, sl=1.075),  # 0.5 % of equity at 500 ticks of 1.0 -> 0.09
    rejected("risk-without-sl", open_body("EURUSD", "buy", 0.1)),  # no_stop_loss
    # account limits
    Step("inputs-max-4-open-positions", inputs={"MaxOpenPositions": "4"}),
    rejected("over-max-open-positions", open_body("EURUSD", "buy", 0.1, sl=1.075)),
    Step("inputs-trading-hours-exclude-now", inputs={"MaxOpenPositions": "0", "TradingHours": "{outside}"}),
    rejected("outside-trading-hours", open_body("EURUSD", "buy", 0.1, sl=1.075)),
    Step("inputs-hours-around-now-daily-loss-5", inputs={"TradingHours": "{around}", "MaxDailyLossPct": "5"}),
    open_("inside-trading-hours", "EURUSD", "buy", 0.1, sl=1.075),
    # about -2,000 on about 1 lot long: the limit pauses the account and reports it (an account event)
    Step("eurusd-drops-past-the-daily-loss", price=("EURUSD", 1.0599, 1.06), events=1),
    rejected("open-while-daily-loss-paused", open_body("EURUSD", "buy", 0.1, sl=1.05)),
    Step("close-while-paused", signal={"symbol": "GBPUSD", "action": "close"}, events=3, status="executed"),
    Step("resume-ends-the-daily-loss-pause", control="resume", events=1),
    open_("open-after-resume", "EURUSD", "sell", 0.1, sl=1.065),
    # measured from the resume now: another 100 pips down trips it again (its second pause that day)
    Step("eurusd-drops-again", price=("EURUSD", 1.0499, 1.05), events=1),
    # the next broker day (the server clock one day ahead) ends the pause, from that day's equity
    Step("next-broker-day", inputs={SERVER_UTC_OFFSET: str(SERVER_UTC_OFFSET_S + 86_400)}, events=1),
    open_("open-on-the-next-day", "EURUSD", "buy", 0.1, sl=1.045),
    Step("close-all-again", signal={"action": "close_all"}, events=18, status="executed"),
]


def signal_body(step: Step) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": step.signal_id,
        "strategy": "alpha",
        "accounts": [ACCOUNT],
        "ttl": 600,
        **step.signal,
    }
    if body.get("createdAt") == "stale":
        body["createdAt"] = int(time.time() * 1000) - 120_000  # past MaxSignalAgeSec (30 s)
    if "ttl" in step.signal:
        body["ttl"] = step.signal["ttl"]
    return body


def hhmm(minute: int) -> str:
    minute %= 1440
    return f"{minute // 60:02d}:{minute % 60:02d}"


def resolve(inputs: dict[str, str]) -> dict[str, str]:
    """TradingHours relative to the broker's server time now (UTC+2 in both terminals): ``{outside}``
    is an hour two hours from now, ``{around}`` the two hours around now (crossing midnight if need be)."""
    now = (int(time.time()) + SERVER_UTC_OFFSET_S) % 86_400 // 60
    windows = {
        "{outside}": f"{hhmm(now + 120)}-{hhmm(now + 180)}",
        "{around}": f"{hhmm(now - 60)}-{hhmm(now + 60)}",
    }
    return {k: windows.get(v, v) for k, v in inputs.items()}


def normalise(event: dict[str, Any]) -> dict[str, Any]:
    """What is compared of one stored event: id, kind, signalId and the payload without ``ts``."""
    payload = {k: v for k, v in event["payload"].items() if k not in NORMALISED}
    return {"id": event["id"], "kind": event["kind"], "signalId": event["signalId"], "payload": payload}


async def run_scenario(terminal: Terminal, rest: HubRest) -> list[dict[str, Any]]:
    """Play :data:`SCENARIO`; per step, the new events (in the terminal's order) and the signal's status."""
    seen: set[str] = set()
    record: list[dict[str, Any]] = []
    await terminal.start()
    try:
        for step in SCENARIO:
            if step.inputs:
                await terminal.reconfigure(resolve(step.inputs))
            elif step.control:
                await rest.control(step.control)
            elif step.price is not None:
                terminal.set_price(*step.price)
            elif step.signal:
                await rest.publish(signal_body(step))

            async def arrived(step: Step = step) -> tuple[list[dict[str, Any]]] | None:
                new = [e for e in await rest.events() if e["id"] not in seen]
                return (new,) if len(new) >= step.events else None

            what = f"{terminal.name}: {step.events} events of step {step.name}"
            (new,) = await until(arrived, what, timeout=WAIT, interval=0.1)
            status = None
            if step.status:

                async def reached(step: Step = step) -> str | None:
                    s = await rest.status(step.signal_id)
                    return s if s == step.status else None

                try:
                    status = await until(
                        reached, f"{terminal.name}: status of {step.name}", timeout=30, interval=0.1
                    )
                except AssertionError:
                    status = await rest.status(step.signal_id)  # compared below, with the other run
            order = {eid: i for i, eid in enumerate(terminal.produced())}
            new.sort(key=lambda e: order.get(e["id"], len(order)))
            seen.update(e["id"] for e in new)
            record.append({"step": step.name, "status": status, "events": [normalise(e) for e in new]})

        async def drained() -> bool:
            return terminal.outbox_empty()

        await until(drained, f"{terminal.name}: outbox drained", timeout=WAIT, interval=0.1)
        extra = [normalise(e) for e in await rest.events() if e["id"] not in seen]
        record.append({"step": "after the scenario", "status": None, "events": extra})
    finally:
        await terminal.stop()
    return record


@pytest.fixture
def hub_factory(tmp_path: Path) -> Iterator[Any]:
    hubs: list[HubProcess] = []

    def make(name: str) -> tuple[HubProcess, HubRest, str]:
        hub = HubProcess(tmp_path / f"hub-{name}")
        hub.start()
        hubs.append(hub)
        engine = hub.cli_token("--role", "engine", "--sub", "engine-1", "--publish", "signals:*")
        admin = hub.cli_token("--role", "admin", "--sub", "ops")
        ea = hub.cli_token(
            "--role", "ea", "--sub", f"ea-{ACCOUNT}", "--account", ACCOUNT, "--subscribe", "signals:*"
        )
        return hub, HubRest(f"http://127.0.0.1:{hub.port}", engine, admin), ea

    yield make
    for hub in hubs:
        hub.stop(signals.SIGTERM)


@pytest.fixture(scope="module")
def ea_binary() -> Path:
    python_path_for_harness()
    from build import build  # type: ignore[import-not-found]  # tests/mql5/harness/build.py

    assert HARNESS.is_dir()
    return Path(build(REPO / "mql5" / "Experts" / "MTBridgeEA.mq5"))


def describe(record: list[dict[str, Any]]) -> str:
    lines = []
    for r in record:
        lines.append(f"{r['step']}: status={r['status']}")
        lines += [
            f"    {e['kind']} {e['payload'].get('state', e['payload'].get('entry', ''))} {e}"
            for e in r["events"]
        ]
    return "\n".join(lines)


async def test_mql5_ea_and_python_simulator_agree(hub_factory: Any, ea_binary: Path, tmp_path: Path) -> None:
    hub, rest, token = hub_factory("python")
    try:
        python = await run_scenario(PythonTerminal(tmp_path / "sim", hub.url, token, ALLOWED), rest)
    finally:
        await rest.close()
    hub, rest, token = hub_factory("mql5")
    try:
        terminal = MQL5Terminal(ea_binary, tmp_path / "terminal", hub.url, token, ALLOWED)
        mql5 = await run_scenario(terminal, rest)
    finally:
        await rest.close()

    # the reference run did what the scenario says, so the comparison below is not vacuous
    for step, r in zip(SCENARIO, python, strict=False):
        assert len(r["events"]) == step.events, (step.name, describe(python))
        assert r["status"] == (step.status or None), (step.name, describe(python))
    assert python[-1]["events"] == []
    by_step = {r["step"]: [e["payload"] for e in r["events"]] for r in python}

    def volume_of(step: str) -> float:
        return float(next(p["volume"] for p in by_step[step] if "entry" in p))

    assert [
        volume_of(s) for s in ("multiplied-rounds-down", "multiplied-clamped-to-max-lot", "fixed-lot")
    ] == [
        0.32,
        0.5,
        0.07,
    ]
    assert volume_of("risk-sized") == 0.09
    for step_name, reason in {
        "below-min-lot": "volume_below_min",
        "multiplied-below-min": "volume_below_min",
        "risk-without-sl": "no_stop_loss",
        "over-max-open-positions": "max_open_positions",
        "outside-trading-hours": "outside_trading_hours",
        "open-while-daily-loss-paused": "daily_loss",
    }.items():
        assert [p["message"] for p in by_step[step_name]] == [reason], step_name
    assert [p["riskState"] for p in by_step["eurusd-drops-past-the-daily-loss"]] == ["daily_loss"]
    assert [p["riskState"] for p in by_step["resume-ends-the-daily-loss-pause"]] == ["active"]
    assert [p["riskState"] for p in by_step["eurusd-drops-again"]] == ["daily_loss"]
    assert [p["riskState"] for p in by_step["next-broker-day"]] == ["active"]

    diffs = [
        f"step {a['step']} differs\n--- python\n{describe([a])}\n--- mql5\n{describe([b])}"
        for a, b in zip(python, mql5, strict=True)
        if a != b
    ]
    assert not diffs, "\n\n".join(diffs)
