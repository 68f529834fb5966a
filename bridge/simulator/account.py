"""A simulated MT5 account and the EA's execution rules, pure and deterministic.

This mirrors ``mql5/Experts/MTBridgeEA.mq5``: the same guards in the same order, the same rejection
messages, the same trade events with ids derived the same way (a name-based UUID of
``"mtbridge-event:" + name``, SHA-1, version 5 bits, as ``MtbUuidFromName``). Given the same signals,
start state and clock, :meth:`SimAccount.execute` returns the same events byte for byte, so a scripted
scenario can be compared with the real EA. docs/simulator.md lists the sequence per action.

The position sizing and account limits are :mod:`bridge.simulator.risk`; the events' ids and fields
are :mod:`bridge.simulator.reports`. No clock is read here: callers pass ``now_ms``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from bridge.simulator.reports import (
    EventReports,
    PendingOrder,
    Position,
    _int,
    _num,
    event_uuid,
    signal_tag,
)
from bridge.simulator.risk import (
    DEFAULT_MAGIC,
    DailyLoss,
    RiskGuards,
    broker_day,
    in_trading_hours,
    size_volume,
)

__all__ = [
    "CONTRACT_SIZES",
    "DEFAULT_PRICES",
    "PendingOrder",
    "Position",
    "RiskGuards",
    "SimAccount",
    "event_uuid",
    "signal_tag",
]

#: Mid prices of the simulated market; symbols not listed trade at ``DEFAULT_MID``.
DEFAULT_PRICES: dict[str, float] = {
    "EURUSD": 1.08500,
    "GBPUSD": 1.27000,
    "USDJPY": 150.000,
    "XAUUSD": 2000.00,
    "BTCUSD": 60000.0,
}
DEFAULT_MID = 100.0
#: Units per lot, as a broker's contract specification.
CONTRACT_SIZES: dict[str, float] = {"XAUUSD": 100.0, "BTCUSD": 1.0}
FX_CONTRACT = 100_000.0
#: Spread in points and digits per symbol (5-digit FX, 3-digit JPY, 2-digit metals and others).
SPREAD_POINTS = 10
VOLUME_MIN = 0.01
VOLUME_MAX = 100.0
VOLUME_STEP = 0.01
#: MT5 ``TRADE_RETCODE_NO_MONEY``, ``_INVALID_PRICE``, ``_INVALID_EXPIRATION``.
RETCODE_NO_MONEY = 10019
RETCODE_INVALID_PRICE = 10015
RETCODE_INVALID_EXPIRATION = 10022


def digits_of(symbol: str) -> int:
    if symbol.endswith("JPY"):
        return 3
    if len(symbol) == 6 and symbol.isalpha() and not symbol.startswith("X"):
        return 5
    return 2


def contract_of(symbol: str) -> float:
    if symbol in CONTRACT_SIZES:
        return CONTRACT_SIZES[symbol]
    if len(symbol) == 6 and symbol.isalpha() and not symbol.startswith("X"):
        return FX_CONTRACT
    return 1.0


@dataclass
class SimAccount(EventReports):
    """Balance, positions and tickets of one simulated login; serialisable with :meth:`to_dict`."""

    login: str
    balance: float = 10_000.0
    currency: str = "USD"
    leverage: int = 100
    next_ticket: int = 1
    positions: list[Position] = field(default_factory=list)
    prices: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_PRICES))
    #: (bid, ask) set by :meth:`set_quote`, overriding the mid price and spread.
    quotes: dict[str, list[float]] = field(default_factory=dict)
    orders: list[PendingOrder] = field(default_factory=list)
    daily: DailyLoss = field(default_factory=DailyLoss)

    # -- market --------------------------------------------------------------------------------------

    def set_quote(self, symbol: str, bid: float, ask: float) -> None:
        """Move the market; :meth:`check_pending` then fills the orders it reached."""
        self.quotes[symbol] = [bid, ask]

    def quote(self, symbol: str) -> tuple[float, float]:
        """(bid, ask) of the simulated market."""
        if symbol in self.quotes:
            bid, ask = self.quotes[symbol]
            return bid, ask
        digits = digits_of(symbol)
        mid = self.prices.get(symbol, DEFAULT_MID)
        half = SPREAD_POINTS * 10.0**-digits / 2
        return round(mid - half, digits), round(mid + half, digits)

    def profit(self, p: Position) -> float:
        bid, ask = self.quote(p.symbol)
        close = bid if p.side == "buy" else ask
        sign = 1.0 if p.side == "buy" else -1.0
        return round(sign * (close - p.price_open) * p.volume * contract_of(p.symbol), 2)

    def margin(self) -> float:
        return round(
            sum(p.volume * contract_of(p.symbol) * p.price_open / self.leverage for p in self.positions), 2
        )

    def equity(self) -> float:
        return round(self.balance + sum(self.profit(p) for p in self.positions), 2)

    def _ticket(self) -> int:
        ticket = self.next_ticket
        self.next_ticket += 1
        return ticket

    # -- execution -----------------------------------------------------------------------------------

    def execute(
        self, signal: dict[str, Any], now_ms: int, guards: RiskGuards, *, paused: bool = False
    ) -> list[dict[str, Any]]:
        """Apply one signal; returns the trade events it causes, in the order the EA reports them."""
        sid = str(signal.get("id", ""))
        action = signal.get("action")
        symbol = str(signal.get("symbol") or "")
        if paused:
            return [self._rejected(signal, symbol, "paused", now_ms, guards)]
        if not guards.trading_enabled:
            return [self._rejected(signal, symbol, "trading_disabled", now_ms, guards)]
        expires = _int(signal.get("expiresAt"))
        created = _int(signal.get("createdAt"))
        if expires > 0 and now_ms > expires:
            return [self._rejected(signal, symbol, "expired", now_ms, guards)]
        if created > 0 and now_ms - created > guards.max_signal_age_s * 1000:
            return [self._rejected(signal, symbol, "stale", now_ms, guards)]
        if action == "close_all":
            return self._close(signal, sid, "", "", now_ms, guards)
        if not symbol or (guards.allowed_symbols and symbol not in guards.allowed_symbols):
            return [self._rejected(signal, symbol, "symbol_not_allowed", now_ms, guards)]
        if action == "open":
            return self._open(signal, sid, symbol, now_ms, guards)
        if action == "close":
            return self._close(signal, sid, symbol, str(signal.get("side") or ""), now_ms, guards)
        if action == "modify":
            return self._modify(signal, sid, symbol, now_ms, guards)
        if action == "cancel":
            return self._cancel(signal, sid, symbol, str(signal.get("side") or ""), now_ms, guards)
        return [self._rejected(signal, symbol, "unsupported_action", now_ms, guards)]

    def _open(
        self, signal: dict[str, Any], sid: str, symbol: str, now_ms: int, guards: RiskGuards
    ) -> list[dict[str, Any]]:
        side = signal.get("side")
        order_type = signal.get("orderType", "market")
        if order_type not in ("market", "limit", "stop"):
            return [self._rejected(signal, symbol, "unsupported_order_type", now_ms, guards)]
        if side not in ("buy", "sell"):
            return [self._rejected(signal, symbol, "invalid_side", now_ms, guards)]
        if self.daily.paused:
            return [self._rejected(signal, symbol, "daily_loss", now_ms, guards)]
        if not in_trading_hours(guards.trading_hours, guards.server_s(now_ms)):
            return [self._rejected(signal, symbol, "outside_trading_hours", now_ms, guards)]
        held = len(self.positions) + len(self.orders)
        if guards.max_open_positions > 0 and held >= guards.max_open_positions:
            return [self._rejected(signal, symbol, "max_open_positions", now_ms, guards)]
        digits = digits_of(symbol)
        point = 10.0**-digits
        bid, ask = self.quote(symbol)
        market = ask if side == "buy" else bid
        entry = market if order_type == "market" else round(_num(signal.get("price")), digits)
        if guards.lot_mode == "risk" and entry <= 0:
            return [self._rejected(signal, symbol, "invalid_price", now_ms, guards)]
        volume, reason = size_volume(
            guards.lot_mode,
            signal_volume=_num(signal.get("volume")),
            multiplier=guards.lot_multiplier,
            fixed_lot=guards.fixed_lot,
            risk_percent=guards.risk_percent,
            equity=self.equity(),
            entry=entry,
            sl=round(_num(signal.get("sl")), digits),
            tick_size=point,
            tick_value=point * contract_of(symbol),
            vol_min=VOLUME_MIN,
            vol_max=VOLUME_MAX,
            vol_step=VOLUME_STEP,
            max_lot=guards.max_lot,
        )
        if reason:
            return [self._rejected(signal, symbol, reason, now_ms, guards)]
        if order_type != "market":
            return self._place(signal, sid, symbol, str(side), str(order_type), volume, now_ms, guards)
        deviation = guards.max_slippage_points
        signal_dev = signal.get("deviation")
        if isinstance(signal_dev, int) and 0 <= signal_dev < deviation:
            deviation = signal_dev
        price = _num(signal.get("price"))
        if price > 0 and abs(market - price) > deviation * point + point / 2:
            return [self._rejected(signal, symbol, "slippage", now_ms, guards)]
        required = volume * contract_of(symbol) * market / self.leverage
        if required > self.equity() - self.margin():
            return [
                self._rejected(
                    signal, symbol, "trade_server: not enough money", now_ms, guards, retcode=RETCODE_NO_MONEY
                )
            ]
        order = self._ticket()
        deal = self._ticket()
        position = Position(
            order,
            symbol,
            str(side),
            volume,
            market,
            round(_num(signal.get("sl")), digits),
            round(_num(signal.get("tp")), digits),
            sid,
        )
        self.positions.append(position)
        tag = signal_tag(sid)
        return [
            self._deal(sid, deal, order, position, str(side), "in", volume, market, 0.0, now_ms, guards, tag),
            self._position_event(sid, position, "opened", volume, now_ms, guards, suffix="|opened"),
            self._order_filled(sid, order, symbol, str(side), volume, market, now_ms, guards, tag),
        ]

    def _place(
        self,
        signal: dict[str, Any],
        sid: str,
        symbol: str,
        side: str,
        order_type: str,
        volume: float,
        now_ms: int,
        guards: RiskGuards,
    ) -> list[dict[str, Any]]:
        digits = digits_of(symbol)
        price = round(_num(signal.get("price")), digits)
        if price <= 0:
            return [self._rejected(signal, symbol, "invalid_price", now_ms, guards)]
        bid, ask = self.quote(symbol)
        market = ask if side == "buy" else bid
        # a limit waits for a better price, a stop for a worse one; otherwise the server refuses it
        better = price < market if side == "buy" else price > market
        if better != (order_type == "limit"):
            return [
                self._rejected(
                    signal,
                    symbol,
                    "trade_server: invalid price",
                    now_ms,
                    guards,
                    retcode=RETCODE_INVALID_PRICE,
                )
            ]
        expires = _int(signal.get("expiresAt"))
        expiration = (expires + 999) // 1000 if expires > 0 else 0
        if expiration and expiration <= now_ms // 1000:
            return [
                self._rejected(
                    signal,
                    symbol,
                    "trade_server: invalid expiration",
                    now_ms,
                    guards,
                    retcode=RETCODE_INVALID_EXPIRATION,
                )
            ]
        order = PendingOrder(
            self._ticket(),
            symbol,
            side,
            order_type,
            volume,
            price,
            round(_num(signal.get("sl")), digits),
            round(_num(signal.get("tp")), digits),
            expiration,
            sid,
            signal_tag(sid),
        )
        self.orders.append(order)
        return [self._pending_event(sid, order, "placed", now_ms, guards)]

    def _cancel(
        self, signal: dict[str, Any], sid: str, symbol: str, side: str, now_ms: int, guards: RiskGuards
    ) -> list[dict[str, Any]]:
        matching = [o for o in self.orders if o.symbol == symbol and (not side or o.side == side)]
        if not matching:
            return [self._rejected(signal, symbol, "no_order", now_ms, guards)]
        for o in matching:
            self.orders.remove(o)
        return [self._pending_event(sid, o, "cancelled", now_ms, guards) for o in matching]

    def check_pending(self, now_ms: int, guards: RiskGuards) -> list[dict[str, Any]]:
        """Expire and fill pending orders as the trade server does between two handlers: expiries
        first, then orders the market reached, in the order they were placed. A limit order fills at
        its own price, a stop order at the market."""
        events: list[dict[str, Any]] = []
        for o in [o for o in self.orders if o.expiration_s and now_ms // 1000 >= o.expiration_s]:
            self.orders.remove(o)
            events.append(self._pending_event(o.signal_id, o, "expired", now_ms, guards))
        for o in list(self.orders):
            bid, ask = self.quote(o.symbol)
            market = ask if o.side == "buy" else bid
            if o.order_type == "limit":
                reached = market <= o.price if o.side == "buy" else market >= o.price
                price = o.price
            else:
                reached = market >= o.price if o.side == "buy" else market <= o.price
                price = market
            if not reached:
                continue
            self.orders.remove(o)
            deal = self._ticket()
            position = Position(o.ticket, o.symbol, o.side, o.volume, price, o.sl, o.tp, o.signal_id)
            self.positions.append(position)
            sid = o.signal_id
            filled = self._order_filled(
                sid, o.ticket, o.symbol, o.side, o.volume, o.price, now_ms, guards, o.comment
            )
            filled["orderType"] = o.order_type
            events += [
                self._deal(
                    sid,
                    deal,
                    o.ticket,
                    position,
                    o.side,
                    "in",
                    o.volume,
                    price,
                    0.0,
                    now_ms,
                    guards,
                    o.comment,
                ),
                self._position_event(sid, position, "opened", o.volume, now_ms, guards, suffix="|opened"),
                filled,
            ]
        return events

    def _close(
        self, signal: dict[str, Any], sid: str, symbol: str, side: str, now_ms: int, guards: RiskGuards
    ) -> list[dict[str, Any]]:
        matching = [
            p for p in self.positions if (not symbol or p.symbol == symbol) and (not side or p.side == side)
        ]
        if not matching:
            return [self._rejected(signal, symbol, "no_position", now_ms, guards)]
        events: list[dict[str, Any]] = []
        for p in matching:
            bid, ask = self.quote(p.symbol)
            close_side = "sell" if p.side == "buy" else "buy"
            price = bid if p.side == "buy" else ask
            profit = self.profit(p)
            order = self._ticket()
            deal = self._ticket()
            self.positions.remove(p)
            self.balance = round(self.balance + profit, 2)
            events.append(
                self._deal(
                    sid, deal, order, p, close_side, "out", p.volume, price, profit, now_ms, guards, ""
                )
            )
            closed = self._position_event(sid, p, "closed", p.volume, now_ms, guards, suffix="|closed")
            closed["profit"] = profit
            closed.pop("sl", None)
            closed.pop("tp", None)
            events.append(closed)
            events.append(
                self._order_filled(sid, order, p.symbol, close_side, p.volume, price, now_ms, guards, "")
            )
        return events

    def _modify(
        self, signal: dict[str, Any], sid: str, symbol: str, now_ms: int, guards: RiskGuards
    ) -> list[dict[str, Any]]:
        side = str(signal.get("side") or "")
        matching = [p for p in self.positions if p.symbol == symbol and (not side or p.side == side)]
        if not matching:
            return [self._rejected(signal, symbol, "no_position", now_ms, guards)]
        digits = digits_of(symbol)
        sl = round(_num(signal.get("sl")), digits)
        tp = round(_num(signal.get("tp")), digits)
        events = []
        for p in matching:
            p.sl, p.tp = sl, tp
            suffix = f"|sltp|{sl:.{digits}f}|{tp:.{digits}f}"
            event = self._position_event(sid, p, "modified", p.volume, now_ms, guards, suffix=suffix)
            event["profit"] = self.profit(p)
            events.append(event)
        return events

    # -- daily loss limit -----------------------------------------------------------------------------

    def check_daily_loss(self, now_ms: int, guards: RiskGuards) -> list[dict[str, Any]]:
        """Roll the broker day and trip the daily loss limit, as the EA does on every timer tick and
        before every ``open``; returns the ``account`` event of a pause that began or ended."""
        equity = self.equity()
        day = broker_day(guards.server_s(now_ms))
        paused_day, trips = self.daily.day, self.daily.trips
        if self.daily.roll(day, equity):
            return [self._risk_event(now_ms, guards, "active", paused_day, trips)]
        if guards.max_daily_loss_pct <= 0 and self.daily.resume(equity):
            return [self._risk_event(now_ms, guards, "active", day, trips)]  # the limit was turned off
        if self.daily.trip(equity, guards.max_daily_loss_pct):
            return [self._risk_event(now_ms, guards, "daily_loss", day, self.daily.trips)]
        return []

    def resume_daily_loss(self, now_ms: int, guards: RiskGuards) -> list[dict[str, Any]]:
        """An operator resumed the account: a daily-loss pause ends, with a fresh allowance."""
        if not self.daily.resume(self.equity()):
            return []
        return [self._risk_event(now_ms, guards, "active", self.daily.day, self.daily.trips)]

    def _risk_event(
        self, now_ms: int, guards: RiskGuards, state: str, day: int, trips: int
    ) -> dict[str, Any]:
        """A snapshot that says the limit paused (``daily_loss``) or released (``active``) the account."""
        event = self.snapshot(now_ms, name=f"{self.login}|risk|{day}|{trips}|{state}")
        event["riskState"] = state
        event["dayStartEquity"] = round(self.daily.start_equity, 2)
        if state == "daily_loss":
            event["resumeAt"] = ((day + 1) * 86_400 - guards.server_utc_offset_s) * 1000
        return event

    def snapshot(self, now_ms: int, *, name: str = "") -> dict[str, Any]:
        """The periodic ``account`` event (``name``: a name-based id instead of one per time)."""
        margin = self.margin()
        equity = self.equity()
        event: dict[str, Any] = {
            "id": event_uuid(name or f"{self.login}|account|{now_ms}"),
            "kind": "account",
            "account": self.login,
            "ts": now_ms,
            "balance": round(self.balance, 2),
            "equity": equity,
            "margin": margin,
            "freeMargin": round(equity - margin, 2),
            "currency": self.currency,
            "leverage": self.leverage,
            "positions": [
                {
                    "ticket": p.ticket,
                    "symbol": p.symbol,
                    "side": p.side,
                    "volume": p.volume,
                    "priceOpen": p.price_open,
                    "profit": self.profit(p),
                    "magic": DEFAULT_MAGIC,
                }
                for p in self.positions[:1000]
            ],
        }
        if margin > 0:
            event["marginLevel"] = round(equity / margin * 100, 2)
        return event

    # -- persistence ---------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SimAccount:
        positions = [Position(**p) for p in data.get("positions", [])]
        orders = [PendingOrder(**o) for o in data.get("orders", [])]
        daily = DailyLoss(**data.get("daily", {}))
        fields = {k: v for k, v in data.items() if k not in ("positions", "orders", "daily")}
        return cls(**fields, positions=positions, orders=orders, daily=daily)
