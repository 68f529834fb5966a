"""Position sizing and account limits (bridge/simulator/risk.py): the rules the EA's Risk.mqh applies too.

The same scenarios run on the MQL5 EA and the simulator in tests/mql5/test_protocol_sync.py; here the
pure rules are checked alone, with hypothesis for the rounding and clamping.
"""

from __future__ import annotations

import math
import uuid
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.protocol.codes import REJECT_REASONS
from bridge.protocol.events import parse_event
from bridge.simulator import RiskGuards, SimAccount, event_uuid
from bridge.simulator.risk import (
    DailyLoss,
    TradingWindow,
    in_trading_hours,
    parse_trading_hours,
    size_volume,
)

NOW = 1_700_006_400_000  # 2023-11-15 00:00:00 UTC: a broker day starts (server time = UTC)
DAY = NOW // 1000 // 86_400
EURUSD = {"tick_size": 0.00001, "tick_value": 1.0, "vol_min": 0.01, "vol_max": 100.0, "vol_step": 0.01}


def size(mode: Any = "multiplier", **over: Any) -> tuple[float, str]:
    args: dict[str, Any] = {
        "signal_volume": 0.1,
        "multiplier": 1.0,
        "fixed_lot": 0.01,
        "risk_percent": 1.0,
        "equity": 10_000.0,
        "entry": 1.085,
        "sl": 1.08,
        "max_lot": 1.0,
        **EURUSD,
    }
    args.update(over)
    return size_volume(mode, **args)


def test_each_mode_by_example() -> None:
    assert size(signal_volume=0.13, multiplier=2.5) == (0.32, "")  # 0.325 rounds down
    assert size(signal_volume=0.4, multiplier=2.5, max_lot=0.5) == (0.5, "")  # clamped to MaxLot
    assert size(signal_volume=0.003, multiplier=2.5) == (0.0, "volume_below_min")  # 0.0075: never up
    assert size(signal_volume=0.0) == (0.0, "invalid_volume")
    assert size("fixed", fixed_lot=0.07, signal_volume=9.0) == (0.07, "")
    # 1 % of 10,000 = 100 at a 50-pip (500-tick) SL of 1.0 per tick and lot: 100 / 500 = 0.2 lot
    assert size("risk") == (0.2, "")
    assert size("risk", sl=1.09) == (0.2, "")  # a sell's SL above the entry: the same distance
    assert size("risk", sl=0.0) == (0.0, "no_stop_loss")
    assert size("risk", sl=1.085) == (0.0, "no_stop_loss")
    assert size("risk", risk_percent=0.01) == (0.0, "volume_below_min")  # 1 / 500 = 0.002 lot
    assert size("risk", sl=1.0849, max_lot=100.0) == (10.0, "")  # 100 / 10 = 10 lots
    assert size("risk", tick_value=0.0) == (0.0, "volume_below_min")


volumes = st.floats(min_value=0.0001, max_value=1000.0, allow_nan=False)
steps = st.sampled_from([0.01, 0.1, 1.0, 0.001])


@given(
    mode=st.sampled_from(["multiplier", "fixed", "risk"]),
    signal_volume=volumes,
    multiplier=st.floats(min_value=0.01, max_value=100.0),
    fixed_lot=volumes,
    risk_percent=st.floats(min_value=0.01, max_value=100.0),
    equity=st.floats(min_value=1.0, max_value=1e9),
    distance=st.floats(min_value=0.00001, max_value=1.0),
    step=steps,
    vol_min_steps=st.integers(min_value=1, max_value=100),
    vol_max=st.floats(min_value=0.01, max_value=1000.0),
    max_lot=st.floats(min_value=0.001, max_value=1000.0),
)
def test_sizing_rounds_down_to_the_step_and_stays_within_every_limit(
    mode: Any,
    signal_volume: float,
    multiplier: float,
    fixed_lot: float,
    risk_percent: float,
    equity: float,
    distance: float,
    step: float,
    vol_min_steps: int,
    vol_max: float,
    max_lot: float,
) -> None:
    vol_min = vol_min_steps * step
    volume, reason = size_volume(
        mode,
        signal_volume=signal_volume,
        multiplier=multiplier,
        fixed_lot=fixed_lot,
        risk_percent=risk_percent,
        equity=equity,
        entry=1.5,
        sl=1.5 - distance,
        tick_size=0.00001,
        tick_value=1.0,
        vol_min=vol_min,
        vol_max=vol_max,
        vol_step=step,
        max_lot=max_lot,
    )
    if mode == "multiplier":
        wanted = signal_volume * multiplier
    elif mode == "fixed":
        wanted = fixed_lot
    else:
        wanted = equity * risk_percent / 100.0 / (abs(1.5 - (1.5 - distance)) / 0.00001 * 1.0)
    limit = min(vol_max, max_lot, wanted)
    if reason:
        assert (volume, reason) == (0.0, "volume_below_min")
        # refused only when even the floor of the allowed volume is below the minimum
        assert math.floor(limit / step + 1e-6) * step < vol_min + 1e-9
        return
    assert volume >= vol_min - 1e-9  # never below the minimum (never rounded up to it either)
    assert volume <= limit * (1 + 1e-9) + step * 1e-6  # never more than asked, MaxLot or the max
    assert abs(volume / step - round(volume / step)) < 1e-6  # a whole number of steps
    assert limit - volume < step * (1 + 1e-9)  # the largest such volume: less than a step lost
    assert volume == round(volume, 8)


def test_trading_hours_syntax() -> None:
    assert parse_trading_hours("") == ()
    assert parse_trading_hours(" 08:00-12:00 , 13:30-17:00") == (
        TradingWindow(480, 720),
        TradingWindow(810, 1020),
    )
    assert parse_trading_hours("22:00-02:00") == (TradingWindow(1320, 120),)
    assert parse_trading_hours("00:00-24:00") == (TradingWindow(0, 1440),)
    for bad in (
        "8:00-12:00",
        "08:00-12:00,",
        "08:00-08:00",
        "24:00-02:00",
        "08:60-09:00",
        "08:00-24:01",
        "08:00 12:00",
        "٠٨:00-12:00",
        "08:00-12:00;13:00-14:00",
    ):
        with pytest.raises(ValueError):
            parse_trading_hours(bad)


def test_trading_hours_windows_include_the_start_exclude_the_end_and_cross_midnight() -> None:
    day = 19_000 * 86_400

    def at(hh: int, mm: int, ss: int = 0) -> int:
        return day + hh * 3600 + mm * 60 + ss

    hours = parse_trading_hours("08:00-12:00,13:30-17:00")
    assert [
        in_trading_hours(hours, at(*t))
        for t in [(7, 59, 59), (8, 0), (11, 59, 59), (12, 0), (13, 30), (16, 59), (17, 0)]
    ] == [False, True, True, False, True, True, False]
    night = parse_trading_hours("22:00-02:00")
    assert [
        in_trading_hours(night, at(*t)) for t in [(21, 59), (22, 0), (23, 59), (0, 0), (1, 59), (2, 0)]
    ] == [False, True, True, True, True, False]
    assert in_trading_hours((), at(3, 0))
    assert in_trading_hours(parse_trading_hours("00:00-24:00"), at(23, 59, 59))


@given(st.integers(0, 1439), st.integers(0, 1439), st.integers(0, 86_399))
def test_a_window_and_its_complement_split_the_day(start: int, end: int, second: int) -> None:
    if start == end:
        return
    w, rest = TradingWindow(start, end), TradingWindow(end, start)
    assert w.contains(second // 60) != rest.contains(second // 60)


def sig(n: int, **over: Any) -> dict[str, Any]:
    body = {
        "id": str(uuid.UUID(int=n, version=4)),
        "symbol": "EURUSD",
        "action": "open",
        "side": "buy",
        "orderType": "market",
        "volume": 1.0,
        "createdAt": NOW,
        "expiresAt": NOW + 60_000,
    }
    body.update(over)
    return body


def test_max_open_positions_counts_positions_and_pending_orders() -> None:
    acc = SimAccount("50123")
    guards = RiskGuards(max_open_positions=2)
    assert acc.execute(sig(1), NOW, guards)[0]["kind"] == "deal"
    placed = acc.execute(sig(2, orderType="limit", price=1.07), NOW, guards)
    assert placed[0]["state"] == "placed"
    refused = acc.execute(sig(3), NOW, guards)
    assert (refused[0]["state"], refused[0]["message"]) == ("rejected", "max_open_positions")
    assert acc.execute({"id": "c", "symbol": "EURUSD", "action": "close"}, NOW, guards)[0]["entry"] == "out"
    assert acc.execute(sig(4), NOW, guards)[0]["kind"] == "deal"  # room again


def test_daily_loss_pauses_until_the_next_broker_day_and_reports_it() -> None:
    acc = SimAccount("50123")
    guards = RiskGuards(max_daily_loss_pct=2.0)
    assert acc.check_daily_loss(NOW, guards) == []  # the day's starting equity: 10,000
    assert acc.daily.start_equity == 10_000.0
    acc.execute(sig(1), NOW, guards)  # 1 lot EURUSD long
    acc.set_quote("EURUSD", 1.0649, 1.0650)  # about -200: 2 % of 10,000
    [paused] = acc.check_daily_loss(NOW + 1000, guards)
    assert paused["riskState"] == "daily_loss" and paused["dayStartEquity"] == 10_000.0
    assert paused["resumeAt"] == (DAY + 1) * 86_400_000
    assert paused["id"] == event_uuid(f"50123|risk|{DAY}|1|daily_loss")
    assert paused["positions"] and paused["equity"] <= 9_800.0
    parse_event(paused, NOW / 1000)
    assert acc.check_daily_loss(NOW + 2000, guards) == []  # reported once
    refused = acc.execute(sig(2), NOW + 2000, guards)
    assert refused[0]["message"] == "daily_loss"
    # exits still run while paused
    closed = acc.execute({"id": "c", "symbol": "EURUSD", "action": "close"}, NOW + 2000, guards)
    assert closed[0]["entry"] == "out"
    # the next broker day ends the pause, from that day's equity
    tomorrow = NOW + 86_400_000
    [active] = acc.check_daily_loss(tomorrow, guards)
    assert active["riskState"] == "active" and "resumeAt" not in active
    assert active["id"] == event_uuid(f"50123|risk|{DAY}|1|active")
    assert active["dayStartEquity"] == acc.equity() == acc.balance
    assert (
        acc.execute(sig(3, createdAt=tomorrow, expiresAt=tomorrow + 1), tomorrow, guards)[0]["kind"] == "deal"
    )


def test_an_operator_resume_gives_a_fresh_allowance_and_the_limit_can_trip_again() -> None:
    acc = SimAccount("50123")
    guards = RiskGuards(max_daily_loss_pct=1.0)
    acc.check_daily_loss(NOW, guards)
    acc.execute(sig(1), NOW, guards)
    acc.set_quote("EURUSD", 1.0739, 1.0740)
    assert acc.check_daily_loss(NOW, guards)[0]["riskState"] == "daily_loss"
    [active] = acc.resume_daily_loss(NOW, guards)
    assert active["dayStartEquity"] == acc.equity() and not acc.daily.paused
    assert acc.resume_daily_loss(NOW, guards) == []  # nothing to resume
    assert acc.check_daily_loss(NOW, guards) == []  # measured from the resume now
    acc.set_quote("EURUSD", 1.0629, 1.0630)
    [again] = acc.check_daily_loss(NOW, guards)
    assert again["id"] == event_uuid(f"50123|risk|{DAY}|2|daily_loss")


def test_daily_loss_state_round_trips_with_the_account() -> None:
    acc = SimAccount("50123")
    acc.daily = DailyLoss(day=DAY, start_equity=9_876.5, paused=True, trips=2)
    assert SimAccount.from_dict(acc.to_dict()).daily == acc.daily


def test_limit_reasons_are_registered() -> None:
    for code in (
        "no_stop_loss",
        "volume_below_min",
        "max_open_positions",
        "outside_trading_hours",
        "daily_loss",
    ):
        assert REJECT_REASONS[code].limit


def test_simulate_ea_takes_the_limits_as_options_and_refuses_bad_ones(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import argparse

    from bridge.cli.client import _guards, cmd_simulate_ea, register

    parser = argparse.ArgumentParser(prog="mtbridge")
    register(parser.add_subparsers(dest="command"))
    base = ["simulate-ea", "--account", "1", "--state-dir", "d"]
    args = parser.parse_args(
        [
            *base,
            "--lot-mode",
            "risk",
            "--risk-percent",
            "0.5",
            "--max-open-positions",
            "3",
            "--max-daily-loss-pct",
            "4",
            "--trading-hours",
            "22:00-02:00",
            "--server-utc-offset",
            "7200",
        ]
    )
    guards = _guards(args)
    assert (guards.lot_mode, guards.risk_percent, guards.max_open_positions, guards.max_daily_loss_pct) == (
        "risk",
        0.5,
        3,
        4.0,
    )
    assert guards.trading_hours == (TradingWindow(1320, 120),)
    assert guards.server_s(0) == 7200
    for bad in (
        ["--trading-hours", "8-12"],
        ["--fixed-lot", "0"],
        ["--max-open-positions", "-1"],
        ["--lot-multiplier", "nan"],
        ["--lot-mode", "martingale"],
    ):
        with pytest.raises(SystemExit) as exit_info:
            parser.parse_args([*base, *bad])
        assert exit_info.value.code == 2
    assert cmd_simulate_ea(parser.parse_args([*base, "--risk-percent", "150"])) == 2
    assert "risk_percent" in capsys.readouterr().err


def test_turning_the_limit_off_ends_its_pause() -> None:
    acc = SimAccount("50123")
    acc.check_daily_loss(NOW, RiskGuards(max_daily_loss_pct=1.0))
    acc.execute(sig(1), NOW, RiskGuards())
    acc.set_quote("EURUSD", 1.0739, 1.0740)
    assert acc.check_daily_loss(NOW, RiskGuards(max_daily_loss_pct=1.0))[0]["riskState"] == "daily_loss"
    [active] = acc.check_daily_loss(NOW, RiskGuards())
    assert active["riskState"] == "active" and not acc.daily.paused
    assert active["id"] == event_uuid(f"50123|risk|{DAY}|1|active")
