"""Position sizing and account risk limits: the rules of ``mql5/Include/MTBridge/Risk.mqh``, in Python.

Pure and I/O-free; the simulator (:mod:`bridge.simulator.account`) applies them exactly where the EA
does, with the same floating-point operations in the same order, so both size a signal to the same
volume and refuse it with the same reason (the codes of :data:`bridge.protocol.codes.REJECT_REASONS`).
docs/mql5.md ("Position sizing and risk limits") is the user's description of these rules.

Times are the broker's server time in seconds (MetaTrader's ``TimeCurrent()``): a broker day is
``server_s // 86400`` and a trading-hours window is minutes of that day.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Final, Literal

__all__ = [
    "DEFAULT_MAGIC",
    "DEFAULT_MAX_SLIPPAGE_POINTS",
    "LOT_MODES",
    "STEP_EPSILON",
    "DailyLoss",
    "LotMode",
    "RiskGuards",
    "TradingWindow",
    "broker_day",
    "daily_loss_breached",
    "in_trading_hours",
    "parse_trading_hours",
    "size_volume",
]

LotMode = Literal["multiplier", "fixed", "risk"]
#: The EA's ``LotMode`` input values, in the order of its enum (0, 1, 2).
LOT_MODES: Final[tuple[LotMode, ...]] = ("multiplier", "fixed", "risk")
#: Added before flooring to the volume step, so that 0.3 / 0.01 = 29.999999999999996 counts as 30
#: steps. A millionth of a step: at most 1e-8 lot above the exact risk for a 0.01 step.
STEP_EPSILON: Final = 1e-6
#: Tolerance when comparing volumes (lots), as the EA's other volume checks.
VOLUME_EPSILON: Final = 1e-9
SECONDS_PER_DAY: Final = 86_400
DEFAULT_MAX_SLIPPAGE_POINTS: Final = 20
DEFAULT_MAGIC: Final = 770001
_WINDOW_RE: Final = re.compile(r"([0-9]{2}):([0-9]{2})-([0-9]{2}):([0-9]{2})")


def size_volume(
    mode: LotMode,
    *,
    signal_volume: float,
    multiplier: float,
    fixed_lot: float,
    risk_percent: float,
    equity: float,
    entry: float,
    sl: float,
    tick_size: float,
    tick_value: float,
    vol_min: float,
    vol_max: float,
    vol_step: float,
    max_lot: float,
) -> tuple[float, str]:
    """The volume to trade and ``""``, or ``0.0`` and the rejection reason.

    - ``multiplier``: the signal's volume * ``multiplier`` (a signal volume ≤ 0: ``invalid_volume``);
    - ``fixed``: ``fixed_lot`` whatever the signal says;
    - ``risk``: the volume whose loss at the SL is ``risk_percent`` of ``equity``:
      ``equity * risk% / 100 / (|entry - sl| / tick_size * tick_value)``; without an SL (or an SL at
      the entry price) there is no distance to size from: ``no_stop_loss``.

    Then clamped to ``min(vol_max, max_lot)``, rounded *down* to ``vol_step`` (never more than the
    risk asked for), and refused as ``volume_below_min`` when that is below ``vol_min``: the EA never
    rounds a volume up to the minimum, which would risk more than asked.
    """
    if mode == "multiplier":
        if not signal_volume > 0:
            return 0.0, "invalid_volume"
        raw = signal_volume * multiplier
    elif mode == "fixed":
        raw = fixed_lot
    else:
        distance = abs(entry - sl)
        if sl <= 0 or distance <= 0:
            return 0.0, "no_stop_loss"
        if tick_size <= 0 or tick_value <= 0:
            return 0.0, "volume_below_min"  # the broker gave no tick value: nothing can be sized
        loss_per_lot = distance / tick_size * tick_value
        raw = equity * risk_percent / 100.0 / loss_per_lot
    limit = min(vol_max, max_lot)
    if raw > limit:
        raw = limit
    if vol_step <= 0 or not math.isfinite(raw):
        return 0.0, "volume_below_min"
    steps = math.floor(raw / vol_step + STEP_EPSILON)
    volume = round(steps * vol_step, 8)
    if volume < vol_min - VOLUME_EPSILON or volume <= 0:
        return 0.0, "volume_below_min"
    return volume, ""


@dataclass(frozen=True, slots=True)
class TradingWindow:
    """Minutes of the broker day ``[start, end)``; ``end < start`` crosses midnight."""

    start: int
    end: int

    def contains(self, minute: int) -> bool:
        if self.start < self.end:
            return self.start <= minute < self.end
        return minute >= self.start or minute < self.end


def parse_trading_hours(text: str) -> tuple[TradingWindow, ...]:
    """``"08:00-12:00,13:30-17:00"`` → windows; ``""`` → none (trading at any time).

    Each window is ``HH:MM-HH:MM`` in server time, start included, end excluded; ``24:00`` is allowed
    as an end only, and an end before the start crosses midnight (``22:00-02:00``). Spaces around a
    window are ignored. Anything else (including a window of zero length) raises ``ValueError``: the
    EA refuses to start (``INIT_PARAMETERS_INCORRECT``) rather than guess.
    """
    windows: list[TradingWindow] = []
    for part in text.split(","):
        part = part.strip()
        if not part and not text.strip():
            continue
        m = _WINDOW_RE.fullmatch(part)
        if m is None:
            raise ValueError(f"trading hours window {part!r} is not HH:MM-HH:MM")
        sh, sm, eh, em = (int(g) for g in m.groups())
        start, end = sh * 60 + sm, eh * 60 + em
        if sh > 23 or sm > 59 or eh > 24 or em > 59 or end > 1440 or start == end:
            raise ValueError(f"trading hours window {part!r} is out of range or empty")
        windows.append(TradingWindow(start, end))
    return tuple(windows)


def in_trading_hours(windows: tuple[TradingWindow, ...], server_s: int) -> bool:
    """Whether the server time falls in one of the windows (no windows: always)."""
    if not windows:
        return True
    minute = (server_s % SECONDS_PER_DAY) // 60
    return any(w.contains(minute) for w in windows)


def broker_day(server_s: int) -> int:
    """The broker's day number: days since 1970-01-01 in server time."""
    return server_s // SECONDS_PER_DAY


def daily_loss_breached(start_equity: float, equity: float, max_loss_pct: float) -> bool:
    """Whether the day's loss reached ``max_loss_pct`` of its starting equity (0: no limit)."""
    if max_loss_pct <= 0 or start_equity <= 0:
        return False
    return start_equity - equity >= start_equity * max_loss_pct / 100.0


@dataclass
class DailyLoss:
    """The daily loss limit's state, persisted by the EA (``risk.txt``) and the simulator (its state).

    ``day`` is the broker day ``start_equity`` belongs to (-1: none seen yet); ``trips`` counts the
    pauses of that day (an operator may resume and the limit trip again), and names the events.
    """

    day: int = -1
    start_equity: float = 0.0
    paused: bool = False
    trips: int = 0

    def roll(self, day: int, equity: float) -> bool:
        """A new broker day: its starting equity is ``equity``; returns True if this ended a pause."""
        if day == self.day:
            return False
        ended = self.paused
        self.day, self.start_equity, self.paused, self.trips = day, equity, False, 0
        return ended

    def trip(self, equity: float, max_loss_pct: float) -> bool:
        """Pause if the loss reached the limit; returns True when this check paused the account."""
        if self.paused or not daily_loss_breached(self.start_equity, equity, max_loss_pct):
            return False
        self.paused = True
        self.trips += 1
        return True

    def resume(self, equity: float) -> bool:
        """An operator's resume: trading again, with a fresh allowance measured from ``equity``."""
        if not self.paused:
            return False
        self.paused = False
        self.start_equity = equity
        return True


@dataclass(frozen=True, kw_only=True)
class RiskGuards:
    """The EA's inputs that refuse signals (``MaxLot``, ``AllowedSymbols``, ``MaxSignalAgeSec``, ...)."""

    max_lot: float = 1.0
    allowed_symbols: frozenset[str] = frozenset()  # empty: every symbol
    max_signal_age_s: int = 30
    max_slippage_points: int = DEFAULT_MAX_SLIPPAGE_POINTS
    trading_enabled: bool = True
    magic: int = DEFAULT_MAGIC
    #: Position sizing and account limits (docs/mql5.md, "Position sizing and risk limits").
    lot_mode: LotMode = "multiplier"
    lot_multiplier: float = 1.0
    fixed_lot: float = 0.01
    risk_percent: float = 1.0
    max_open_positions: int = 0  # 0: no limit
    max_daily_loss_pct: float = 0.0  # 0: no limit
    trading_hours: tuple[TradingWindow, ...] = ()  # empty: any time
    #: Broker server time minus UTC (the harness's server runs on UTC).
    server_utc_offset_s: int = 0

    def __post_init__(self) -> None:
        """The EA's OnInit checks: it does not start with these wrong (INIT_PARAMETERS_INCORRECT)."""
        if self.lot_mode not in LOT_MODES:
            raise ValueError(f"lot_mode must be one of {', '.join(LOT_MODES)}")
        if not (self.max_lot > 0 and self.lot_multiplier > 0 and self.fixed_lot > 0):
            raise ValueError("max_lot, lot_multiplier and fixed_lot must be > 0")
        if not (0 < self.risk_percent <= 100 and 0 <= self.max_daily_loss_pct < 100):
            raise ValueError("risk_percent must be in (0, 100], max_daily_loss_pct in [0, 100)")
        if self.max_open_positions < 0:
            raise ValueError("max_open_positions must be >= 0")

    def server_s(self, now_ms: int) -> int:
        """The broker's server time (MetaTrader's ``TimeCurrent()``) at ``now_ms``."""
        return now_ms // 1000 + self.server_utc_offset_s
