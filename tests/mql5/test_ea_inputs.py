"""The EA refuses to start (OnInit: INIT_PARAMETERS_INCORRECT, exit status 3 in the harness) on sizing and
limit inputs it cannot honour, and says why in the Experts log; valid ones start."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.mql5 import EXPERTS
from tests.support.ports import free_port

pytestmark = pytest.mark.mql5


@pytest.fixture(scope="module")
def ea(mql5_build: Callable[..., Path]) -> Path:
    return mql5_build(EXPERTS / "MTBridgeEA.mq5")


def run(binary: Path, tmp: Path, **inputs: str) -> tuple[int, str]:
    (tmp / "common").mkdir(exist_ok=True)
    (tmp / "trade.cfg").write_text(
        "account login=50123 balance=10000 currency=USD leverage=100\n"
        "symbol EURUSD bid=1.10000 ask=1.10020 digits=5 vol_min=0.01 vol_max=100 vol_step=0.01 "
        "contract=100000\n"
    )
    env = dict(
        os.environ,
        MQL_COMMON_DIR=str(tmp / "common"),
        MQL_FILES_DIR=str(tmp),
        MQL_TRADE_CONFIG=str(tmp / "trade.cfg"),
        MQL_TRADE_STATE=str(tmp / "trade.state"),
        MQL_RUN_SECONDS="1",
        MQL_INPUT_HubUrl=f"ws://127.0.0.1:{free_port()}/ws",
        MQL_INPUT_Token="x.y.z",
    )
    env.update({f"MQL_INPUT_{k}": v for k, v in inputs.items()})
    done = subprocess.run([str(binary)], env=env, capture_output=True, timeout=120)
    return done.returncode, (done.stdout + done.stderr).decode()


@pytest.mark.parametrize(
    ("inputs", "says"),
    [
        ({"TradingHours": "8:00-12:00"}, "TradingHours must be HH:MM-HH:MM"),
        ({"TradingHours": "08:00-08:00"}, "TradingHours must be HH:MM-HH:MM"),
        ({"TradingHours": "08:00-12:00,"}, "TradingHours must be HH:MM-HH:MM"),
        ({"TradingHours": "24:00-02:00"}, "TradingHours must be HH:MM-HH:MM"),
        ({"LotMode": "3"}, "LotMultiplier, FixedLot and RiskPercent"),
        ({"LotMultiplier": "0"}, "LotMultiplier, FixedLot and RiskPercent"),
        ({"FixedLot": "-0.01"}, "LotMultiplier, FixedLot and RiskPercent"),
        ({"RiskPercent": "150"}, "LotMultiplier, FixedLot and RiskPercent"),
        ({"MaxOpenPositions": "-1"}, "LotMultiplier, FixedLot and RiskPercent"),
        ({"MaxDailyLossPct": "100"}, "LotMultiplier, FixedLot and RiskPercent"),
    ],
)
def test_bad_sizing_and_limit_inputs_stop_the_ea(
    ea: Path, tmp_path: Path, inputs: dict[str, str], says: str
) -> None:
    rc, log = run(ea, tmp_path, **inputs)
    assert rc == 3, log[-2000:]
    assert says in log


def test_valid_limits_start(ea: Path, tmp_path: Path) -> None:
    rc, log = run(
        ea,
        tmp_path,
        LotMode="2",
        RiskPercent="0.5",
        MaxOpenPositions="5",
        MaxDailyLossPct="3",
        TradingHours=" 08:00-12:00 , 22:00-02:00,18:00-24:00",
    )
    assert rc == 0, log[-2000:]
    assert "EA started for account 50123" in log
    # the daily loss limit's state: today's broker day, measured from the equity at start
    state = (tmp_path / "common" / "MTBridge" / "50123-770001" / "risk.txt").read_text().split()
    assert state[0] == "daily" and state[2:] == ["10000.00", "0", "0"]
