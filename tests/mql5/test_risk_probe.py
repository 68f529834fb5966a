"""The EA's Risk.mqh and the simulator's risk.py give the same answers, case by case.

``RiskProbe.mq5`` runs the shipped Risk.mqh (through the harness) over generated cases: position
sizing in every ``LotMode`` (volume and rejection reason), ``TradingHours`` parsing and membership,
and the daily loss limit's trigger. Python's :mod:`bridge.simulator.risk` must agree on every one,
so the simulator sizes and refuses exactly as the EA does well beyond the protocol-sync scenario.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.simulator.risk import (
    LOT_MODES,
    daily_loss_breached,
    in_trading_hours,
    parse_trading_hours,
    size_volume,
)
from tests.support.mql5 import PROGRAMS

pytestmark = pytest.mark.mql5


@pytest.fixture(scope="module")
def probe(mql5_build: Callable[..., Path]) -> Path:
    return mql5_build(PROGRAMS / "RiskProbe.mq5")


def run_probe(binary: Path, tmp: Path, cases: list[str]) -> list[str]:
    common = tmp / "common"
    common.mkdir(exist_ok=True)
    (common / "risk_in.txt").write_text("".join(c + "\n" for c in cases))
    out = common / "risk_out.txt"
    out.unlink(missing_ok=True)
    env = dict(os.environ, MQL_COMMON_DIR=str(common), MQL_FILES_DIR=str(tmp))
    done = subprocess.run([str(binary)], env=env, capture_output=True, timeout=120)
    assert done.returncode == 0, done.stdout.decode()[-3000:]
    return out.read_text().splitlines()


def num(x: float) -> str:
    return repr(float(x))


Sizing = tuple[int, float, float, float, float, float, float, float, float, float, int, float, float, float]

positive = st.floats(min_value=1e-4, max_value=1e4, allow_nan=False)
steps = st.sampled_from([0.01, 0.1, 1.0, 0.001, 0.05])
sizing_cases = st.tuples(
    st.integers(0, 2),  # LotMode
    st.one_of(st.just(0.0), positive),  # signal volume (0: none)
    st.floats(min_value=0.01, max_value=100.0),  # multiplier
    positive,  # fixed lot
    st.floats(min_value=0.001, max_value=100.0),  # risk %
    st.floats(min_value=1.0, max_value=1e8),  # equity
    st.floats(min_value=0.5, max_value=2000.0),  # entry
    st.one_of(st.just(0.0), st.floats(min_value=0.0, max_value=0.2)),  # SL distance as a share of the entry
    st.sampled_from([0.00001, 0.001, 0.01, 0.25]),  # tick size
    st.one_of(st.just(0.0), st.floats(min_value=0.01, max_value=50.0)),  # tick value
    st.integers(1, 50),  # volume min in steps
    st.floats(min_value=0.01, max_value=1000.0),  # volume max
    steps,
    st.floats(min_value=0.001, max_value=1000.0),  # MaxLot
)


def sizing_line(c: Sizing) -> tuple[str, tuple[float, str]]:
    (
        mode,
        sv,
        mult,
        fixed,
        risk,
        equity,
        entry,
        share,
        tick_size,
        tick_value,
        min_steps,
        vmax,
        step,
        max_lot,
    ) = c
    sl = 0.0 if share == 0 else round(entry * (1 - share), 5)
    vmin = round(min_steps * step, 8)
    expected = size_volume(
        LOT_MODES[mode],
        signal_volume=sv,
        multiplier=mult,
        fixed_lot=fixed,
        risk_percent=risk,
        equity=equity,
        entry=entry,
        sl=sl,
        tick_size=tick_size,
        tick_value=tick_value,
        vol_min=vmin,
        vol_max=vmax,
        vol_step=step,
        max_lot=max_lot,
    )
    fields = [
        mode,
        sv,
        mult,
        fixed,
        risk,
        equity,
        entry,
        sl,
        tick_size,
        tick_value,
        vmin,
        vmax,
        step,
        max_lot,
    ]
    return "size " + " ".join(str(mode) if i == 0 else num(x) for i, x in enumerate(fields)), expected


window_text = st.one_of(
    st.builds(
        lambda a, b, c, d: f"{a:02d}:{b:02d}-{c:02d}:{d:02d}",
        st.integers(0, 25),
        st.sampled_from([0, 30, 59, 60]),
        st.integers(0, 25),
        st.sampled_from([0, 15, 59]),
    ),
    st.text(alphabet="0123456789:-, ", max_size=14),
)
hours_cases = st.tuples(st.lists(window_text, max_size=3).map(",".join), st.integers(0, 4_102_444_800))
loss_cases = st.tuples(
    st.floats(min_value=0.0, max_value=1e7),
    st.floats(min_value=-1e6, max_value=1e7),
    st.floats(min_value=0.0, max_value=99.0),
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(sizing_cases, min_size=1, max_size=60),
    st.lists(hours_cases, max_size=30),
    st.lists(loss_cases, max_size=20),
)
def test_mql5_and_python_agree_on_every_case(
    probe: Path,
    tmp_path: Path,
    sizing: list[Sizing],
    hours: list[tuple[str, int]],
    losses: list[tuple[float, float, float]],
) -> None:
    lines: list[str] = []
    expected: list[Any] = []
    for c in sizing:
        line, want = sizing_line(c)
        lines.append(line)
        expected.append(f"{want[0]:.8f} {want[1] or '-'}")
    for text, t in hours:
        lines.append(f"hours {t} {text}")
        try:
            windows = parse_trading_hours(text)
        except ValueError:
            expected.append("invalid")
            continue
        expected.append("1" if in_trading_hours(windows, t) else "0")
    for start, equity, pct in losses:
        lines.append(f"loss {num(start)} {num(equity)} {num(pct)}")
        expected.append("1" if daily_loss_breached(start, equity, pct) else "0")
    got = run_probe(probe, tmp_path, lines)
    mismatches = [
        (line, want, have) for line, want, have in zip(lines, expected, got, strict=True) if want != have
    ]
    assert not mismatches, mismatches[:5]


def test_examples_from_the_docs(probe: Path, tmp_path: Path) -> None:
    eurusd = "0.00001 1.0 0.01 100.0 0.01"
    cases = {
        f"size 0 0.13 2.5 0.01 1.0 10000.0 1.08 0.0 {eurusd} 1.0": "0.32000000 -",
        f"size 0 0.4 2.5 0.01 1.0 10000.0 1.08 0.0 {eurusd} 0.5": "0.50000000 -",
        f"size 0 0.003 2.5 0.01 1.0 10000.0 1.08 0.0 {eurusd} 1.0": "0.00000000 volume_below_min",
        f"size 1 0.9 1.0 0.07 1.0 10000.0 1.08 0.0 {eurusd} 1.0": "0.07000000 -",
        f"size 2 0.1 1.0 0.01 0.5 10000.0 1.08 1.075 {eurusd} 1.0": "0.10000000 -",
        f"size 2 0.1 1.0 0.01 0.5 10000.0 1.08 0.0 {eurusd} 1.0": "0.00000000 no_stop_loss",
        "hours 1700000000 08:00-12:00,13:30-17:00": "0",  # 22:13:20
        "hours 1700000000 22:00-02:00": "1",
        "hours 1700000000 8:00-12:00": "invalid",
        "hours 1700000000 ": "1",
        "loss 10000.0 9700.0 3.0": "1",
        "loss 10000.0 9700.01 3.0": "0",
    }
    assert dict(zip(cases, run_probe(probe, tmp_path, list(cases)), strict=True)) == cases
