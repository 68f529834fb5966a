"""Trade events as the MQL5 EA writes them: name-based ids and each event kind's fields.

The simulated account (:mod:`bridge.simulator.account`) reports through :class:`EventReports`, so the
ids (``MtbUuidFromName``), field sets and field order stay in one place, next to the positions and
pending orders they describe. docs/simulator.md lists every id's name and each action's events.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from bridge.simulator.risk import RiskGuards

__all__ = ["EventReports", "PendingOrder", "Position", "event_uuid", "signal_tag"]


def event_uuid(name: str) -> str:
    """The MQL5 EA's ``MtbUuidFromName``: a version-5-style UUID of SHA-1("mtbridge-event:" + name)."""
    digest = bytearray(hashlib.sha1(("mtbridge-event:" + name).encode(), usedforsecurity=False).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def signal_tag(signal_id: str) -> str:
    """The order comment the EA writes: ``mtb#`` + 12 hex digits (MetaTrader keeps 31 characters)."""
    return "mtb#" + event_uuid("tag:" + signal_id).replace("-", "")[:12]


@dataclass
class Position:
    ticket: int
    symbol: str
    side: str
    volume: float
    price_open: float
    sl: float = 0.0
    tp: float = 0.0
    signal_id: str = ""


@dataclass
class PendingOrder:
    """A limit or stop order in the book, as the harness's trade server keeps it."""

    ticket: int
    symbol: str
    side: str
    order_type: str  # "limit" or "stop"
    volume: float
    price: float
    sl: float = 0.0
    tp: float = 0.0
    expiration_s: int = 0  # unix seconds; 0 = good till cancelled
    signal_id: str = ""
    comment: str = ""


class EventReports:
    """The EA's trade events of one login; mixed into :class:`bridge.simulator.account.SimAccount`."""

    login: str

    def _base(self, name: str, kind: str, ts: int, sid: str) -> dict[str, Any]:
        event: dict[str, Any] = {
            "id": event_uuid(f"{self.login}|{name}"),
            "kind": kind,
            "account": self.login,
            "ts": ts,
        }
        if sid:
            event["signalId"] = sid
        return event

    def _rejected(
        self,
        signal: dict[str, Any],
        symbol: str,
        reason: str,
        now_ms: int,
        guards: RiskGuards,
        *,
        retcode: int = 0,
    ) -> dict[str, Any]:
        sid = str(signal.get("id", ""))
        event = self._base(f"order-rejected|{sid}", "order", now_ms, sid)
        event["state"] = "rejected"
        event["symbol"] = symbol or "-"
        if signal.get("side") in ("buy", "sell"):
            event["side"] = signal["side"]
        if signal.get("orderType") in ("market", "limit", "stop"):
            event["orderType"] = signal["orderType"]
        volume = _num(signal.get("volume"))
        if 0 < volume <= 10_000:
            event["volume"] = volume
        event["magic"] = guards.magic
        if retcode > 0:
            event["retcode"] = retcode
        event["message"] = reason
        return event

    def _pending_event(
        self, sid: str, o: PendingOrder, state: str, now_ms: int, guards: RiskGuards
    ) -> dict[str, Any]:
        event = self._base(f"order|{o.ticket}|{state}", "order", now_ms, sid)
        event.update(
            state=state,
            ticket=o.ticket,
            symbol=o.symbol,
            side=o.side,
            orderType=o.order_type,
            volume=o.volume,
            price=o.price,
        )
        if o.sl > 0:
            event["sl"] = o.sl
        if o.tp > 0:
            event["tp"] = o.tp
        event.update(magic=guards.magic, comment=o.comment)
        return event

    def _order_filled(
        self,
        sid: str,
        ticket: int,
        symbol: str,
        side: str,
        volume: float,
        price: float,
        now_ms: int,
        guards: RiskGuards,
        comment: str,
    ) -> dict[str, Any]:
        event = self._base(f"order|{ticket}|filled", "order", now_ms, sid)
        event.update(
            state="filled",
            ticket=ticket,
            symbol=symbol,
            side=side,
            orderType="market",
            volume=volume,
            price=price,
            magic=guards.magic,
            comment=comment,
        )
        return event

    def _deal(
        self,
        sid: str,
        ticket: int,
        order: int,
        p: Position,
        side: str,
        entry: str,
        volume: float,
        price: float,
        profit: float,
        now_ms: int,
        guards: RiskGuards,
        comment: str,
    ) -> dict[str, Any]:
        event = self._base(f"deal|{ticket}", "deal", now_ms, sid)
        event.update(
            ticket=ticket,
            order=order,
            position=p.ticket,
            symbol=p.symbol,
            side=side,
            entry=entry,
            volume=volume,
            price=price,
            profit=profit,
            commission=0.0,
            swap=0.0,
            magic=guards.magic,
            comment=comment,
        )
        return event

    def _position_event(
        self,
        sid: str,
        p: Position,
        state: str,
        volume: float,
        now_ms: int,
        guards: RiskGuards,
        *,
        suffix: str,
    ) -> dict[str, Any]:
        event = self._base(f"position|{p.ticket}{suffix}", "position", now_ms, sid)
        event.update(
            ticket=p.ticket, symbol=p.symbol, side=p.side, state=state, volume=volume, priceOpen=p.price_open
        )
        if p.sl > 0:
            event["sl"] = p.sl
        if p.tp > 0:
            event["tp"] = p.tp
        event["magic"] = guards.magic
        return event


def _num(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0.0
    return float(value)


def _int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        return 0
    return value
