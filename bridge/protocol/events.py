"""Trade events reported by EAs, and the per-(signal, account) delivery status model.

Pure and I/O-free. Timestamps are unix milliseconds as integers, as for signals.

Event kinds and their fields (besides the common ``id``, ``kind``, ``account``, ``ts``, ``signalId``):

- ``order``: ``state`` (placed|modified|filled|partially_filled|cancelled|rejected|expired), ``ticket``
  (required unless rejected), ``symbol``, ``side``, ``orderType``, ``volume``, ``price``, ``sl``, ``tp``,
  ``magic``, ``comment``, ``retcode`` (MT5 trade server return code), ``message``;
- ``deal``: ``ticket``, ``symbol``, ``side``, ``entry`` (in|out|inout|out_by), ``volume``, ``price``
  (required), ``order``, ``position``, ``profit``, ``commission``, ``swap``, ``fee``, ``magic``, ``comment``;
- ``position``: ``ticket``, ``symbol``, ``side``, ``state`` (opened|modified|closed), ``volume``,
  ``priceOpen`` (required), ``sl``, ``tp``, ``profit``, ``swap``, ``magic``, ``comment``;
- ``account``: snapshot with ``balance``, ``equity``, ``margin``, ``freeMargin`` (required), ``marginLevel``,
  ``currency``, ``leverage``, ``positions`` (list of open positions: ``ticket``, ``symbol``, ``side``,
  ``volume``, ``priceOpen`` required; ``sl``, ``tp``, ``profit``, ``swap``, ``magic``, ``comment`` optional).

Delivery status only moves forward along this rank:
``pending(0) < delivered(1) < acked(2) < expired(3) < executed(4) | rejected(4)``. Steps may be skipped (an
execution report proves delivery even if the ack was lost). ``expired`` may still be overtaken by
``executed``/``rejected``, because a late execution report describes what really happened on the account;
``executed`` and ``rejected`` are final.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final, Literal

from bridge.protocol.signals import (
    _LOGIN_RE,
    _MAX_TS_MS,
    _SYMBOL_RE,
    MAX_MAGIC,
    MAX_PRICE,
    MAX_VOLUME,
    FieldError,
    Invalid,
    _Checker,
)

__all__ = [
    "EVENT_CSV_COLUMNS",
    "EVENT_KINDS",
    "MAX_EVENT_COMMENT_LENGTH",
    "MAX_EVENT_MESSAGE_LENGTH",
    "MAX_SNAPSHOT_POSITIONS",
    "DeliveryStatus",
    "EventInvalid",
    "EventKind",
    "TradeEvent",
    "can_transition",
    "event_csv_row",
    "parse_event",
    "status_from_event",
]

EventKind = Literal["order", "deal", "position", "account"]
EVENT_KINDS: Final[tuple[str, ...]] = ("order", "deal", "position", "account")

MAX_EVENT_COMMENT_LENGTH: Final = 64
MAX_EVENT_MESSAGE_LENGTH: Final = 256
MAX_SNAPSHOT_POSITIONS: Final = 1000
#: Money amounts (balance, profit, ...) are bounded only to keep garbage out.
_MAX_MONEY: Final = 1e15
_MAX_TICKET: Final = 2**63 - 1

_COMMON: Final = frozenset({"id", "kind", "account", "ts", "signalId"})
_ORDER_STATES: Final = (
    "placed",
    "modified",
    "filled",
    "partially_filled",
    "cancelled",
    "rejected",
    "expired",
)
_ORDER_TYPES: Final = ("market", "limit", "stop", "stop_limit")
_SIDES: Final = ("buy", "sell")
_DEAL_ENTRIES: Final = ("in", "out", "inout", "out_by")
_POSITION_STATES: Final = ("opened", "modified", "closed")
_CURRENCY_RE: Final = re.compile(r"[A-Za-z0-9]{2,8}")

_KIND_FIELDS: Final[dict[str, frozenset[str]]] = {
    "order": frozenset(
        {
            "state",
            "ticket",
            "symbol",
            "side",
            "orderType",
            "volume",
            "price",
            "sl",
            "tp",
            "magic",
            "comment",
            "retcode",
            "message",
        }
    ),
    "deal": frozenset(
        {
            "ticket",
            "order",
            "position",
            "symbol",
            "side",
            "entry",
            "volume",
            "price",
            "profit",
            "commission",
            "swap",
            "fee",
            "magic",
            "comment",
        }
    ),
    "position": frozenset(
        {
            "ticket",
            "symbol",
            "side",
            "state",
            "volume",
            "priceOpen",
            "sl",
            "tp",
            "profit",
            "swap",
            "magic",
            "comment",
        }
    ),
    "account": frozenset(
        {"balance", "equity", "margin", "freeMargin", "marginLevel", "currency", "leverage", "positions"}
    ),
}
_SNAPSHOT_POSITION_FIELDS: Final = frozenset(
    {"ticket", "symbol", "side", "volume", "priceOpen", "sl", "tp", "profit", "swap", "magic", "comment"}
)

#: Column order of the CSV export; kind-specific values beyond these go into ``data`` as JSON by the caller.
EVENT_CSV_COLUMNS: Final[tuple[str, ...]] = (
    "id",
    "kind",
    "account",
    "ts",
    "signalId",
    "state",
    "ticket",
    "symbol",
    "side",
    "volume",
    "price",
    "profit",
    "balance",
    "equity",
)


class EventInvalid(Invalid):
    """A trade event failed validation."""


class DeliveryStatus(StrEnum):
    """Where a signal stands for one target account."""

    PENDING = "pending"
    DELIVERED = "delivered"
    ACKED = "acked"
    EXPIRED = "expired"
    EXECUTED = "executed"
    REJECTED = "rejected"

    @property
    def rank(self) -> int:
        return _RANK[self]

    @property
    def is_final(self) -> bool:
        return self in (DeliveryStatus.EXECUTED, DeliveryStatus.REJECTED)


_RANK: Final[dict[DeliveryStatus, int]] = {
    DeliveryStatus.PENDING: 0,
    DeliveryStatus.DELIVERED: 1,
    DeliveryStatus.ACKED: 2,
    DeliveryStatus.EXPIRED: 3,
    DeliveryStatus.EXECUTED: 4,
    DeliveryStatus.REJECTED: 4,
}


def can_transition(old: DeliveryStatus | None, new: DeliveryStatus) -> bool:
    """Whether a delivery may move from ``old`` (None: no record yet) to ``new``; only strictly forward."""
    if old is None:
        return True
    return _RANK[new] > _RANK[old]


@dataclass(frozen=True, slots=True, kw_only=True)
class TradeEvent:
    """A validated trade event; ``data`` holds the kind-specific fields with their wire names."""

    id: str
    kind: EventKind
    account: str
    ts: int
    signal_id: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)

    def to_payload(self) -> dict[str, Any]:
        """The canonical wire form, as stored and rebroadcast on ``account:<login>:events``."""
        payload: dict[str, Any] = {"id": self.id, "kind": self.kind, "account": self.account, "ts": self.ts}
        if self.signal_id is not None:
            payload["signalId"] = self.signal_id
        payload.update(self.data)
        return payload


def status_from_event(event: TradeEvent) -> DeliveryStatus | None:
    """The delivery status an event proves for its ``signalId``, if any.

    The EA carried the signal out (executed) when it reports a fill, a deal, a position change, or
    an order modified or cancelled (a ``cancel`` signal) with that ``signalId``; a rejected order
    means rejected. A pending (limit/stop) order that is only ``placed`` keeps its signal ``acked``
    until it fills; one that expires unfilled leaves it to the expiry sweep.
    """
    if event.signal_id is None:
        return None
    state = event.data.get("state")
    if event.kind == "order":
        if state in ("filled", "partially_filled", "modified", "cancelled"):
            return DeliveryStatus.EXECUTED
        if state == "rejected":
            return DeliveryStatus.REJECTED
        return None
    if event.kind == "deal":
        return DeliveryStatus.EXECUTED
    if event.kind == "position" and state in ("opened", "closed", "modified"):
        return DeliveryStatus.EXECUTED
    return None


def event_csv_row(payload: Mapping[str, Any]) -> list[str]:
    """One CSV row (per :data:`EVENT_CSV_COLUMNS`) from a stored event payload; missing cells are empty."""
    row: list[str] = []
    for column in EVENT_CSV_COLUMNS:
        value = payload.get(column)
        row.append("" if value is None else str(value))
    return row


def parse_event(obj: object, now: float) -> TradeEvent:
    """Validate an untrusted trade event.

    Args:
        obj: the decoded payload of a ``trade.event`` message.
        now: the hub's clock, unix seconds (kept for symmetry with signals; EA clocks are not trusted to
            match ours, so ``ts`` is only range-checked).

    Raises:
        EventInvalid: with every field error found; never any other exception.
    """
    del now
    if not isinstance(obj, Mapping):
        raise EventInvalid([FieldError("", "type", "event must be an object")])
    try:
        return _parse_event(obj)
    except EventInvalid:
        raise
    except (TypeError, ValueError, OverflowError) as exc:
        raise EventInvalid([FieldError("", "invalid", "event could not be parsed")]) from exc


def _parse_event(obj: Mapping[str, Any]) -> TradeEvent:
    c = _Checker(obj)
    kind = c.choice("kind", EVENT_KINDS, required=True)
    c.reject_unknown(_COMMON | _KIND_FIELDS[kind] if kind is not None else _COMMON | _all_kind_fields())
    event_id = c.uuid("id", required=True)
    account = c.string("account", required=True, pattern=_LOGIN_RE, what="a login (digits)")
    ts = c.integer("ts", required=True, minimum=0, maximum=_MAX_TS_MS)
    signal_id = c.uuid("signalId")
    data: dict[str, Any] = {}
    if kind == "order":
        _order(c, data)
    elif kind == "deal":
        _deal(c, data)
    elif kind == "position":
        _position(c, data)
    elif kind == "account":
        _account(c, data)
    if c.errors:
        raise EventInvalid(c.errors)
    assert event_id is not None and kind is not None and account is not None and ts is not None
    return TradeEvent(
        id=event_id,
        kind=kind,  # type: ignore[arg-type]
        account=account,
        ts=ts,
        signal_id=signal_id,
        data=data,
    )


def _all_kind_fields() -> frozenset[str]:
    result: frozenset[str] = frozenset()
    for fields in _KIND_FIELDS.values():
        result |= fields
    return result


def _put(data: dict[str, Any], key: str, value: Any) -> None:
    if value is not None:
        data[key] = value


def _price(c: _Checker, name: str, *, required: bool = False) -> float | None:
    return c.number(name, required=required, minimum=0.0, maximum=MAX_PRICE)


def _money(c: _Checker, name: str, *, required: bool = False) -> float | None:
    return c.number(name, required=required, minimum=-_MAX_MONEY, maximum=_MAX_MONEY)


def _trade_common(c: _Checker, data: dict[str, Any], *, symbol_required: bool) -> None:
    _put(data, "symbol", c.string("symbol", required=symbol_required, pattern=_SYMBOL_RE, what="a symbol"))
    _put(data, "magic", c.integer("magic", minimum=0, maximum=MAX_MAGIC))
    _put(data, "comment", c.text("comment", max_length=MAX_EVENT_COMMENT_LENGTH))


def _order(c: _Checker, data: dict[str, Any]) -> None:
    state = c.choice("state", _ORDER_STATES, required=True)
    _put(data, "state", state)
    _put(
        data,
        "ticket",
        c.integer("ticket", required=state not in (None, "rejected"), minimum=0, maximum=_MAX_TICKET),
    )
    _trade_common(c, data, symbol_required=True)
    _put(data, "side", c.choice("side", _SIDES))
    _put(data, "orderType", c.choice("orderType", _ORDER_TYPES))
    _put(data, "volume", c.number("volume", minimum=0.0, maximum=MAX_VOLUME))
    for name in ("price", "sl", "tp"):
        _put(data, name, _price(c, name))
    _put(data, "retcode", c.integer("retcode", minimum=0, maximum=2**31 - 1))
    _put(data, "message", c.text("message", max_length=MAX_EVENT_MESSAGE_LENGTH))


def _deal(c: _Checker, data: dict[str, Any]) -> None:
    _put(data, "ticket", c.integer("ticket", required=True, minimum=0, maximum=_MAX_TICKET))
    _put(data, "order", c.integer("order", minimum=0, maximum=_MAX_TICKET))
    _put(data, "position", c.integer("position", minimum=0, maximum=_MAX_TICKET))
    _trade_common(c, data, symbol_required=True)
    _put(data, "side", c.choice("side", _SIDES, required=True))
    _put(data, "entry", c.choice("entry", _DEAL_ENTRIES, required=True))
    _put(data, "volume", c.number("volume", required=True, minimum=0.0, maximum=MAX_VOLUME))
    _put(data, "price", _price(c, "price", required=True))
    for name in ("profit", "commission", "swap", "fee"):
        _put(data, name, _money(c, name))


def _position(c: _Checker, data: dict[str, Any]) -> None:
    _put(data, "ticket", c.integer("ticket", required=True, minimum=0, maximum=_MAX_TICKET))
    _put(data, "state", c.choice("state", _POSITION_STATES, required=True))
    _trade_common(c, data, symbol_required=True)
    _put(data, "side", c.choice("side", _SIDES, required=True))
    _put(data, "volume", c.number("volume", required=True, minimum=0.0, maximum=MAX_VOLUME))
    _put(data, "priceOpen", _price(c, "priceOpen", required=True))
    for name in ("sl", "tp"):
        _put(data, name, _price(c, name))
    for name in ("profit", "swap"):
        _put(data, name, _money(c, name))


def _account(c: _Checker, data: dict[str, Any]) -> None:
    for name in ("balance", "equity", "margin", "freeMargin"):
        _put(data, name, _money(c, name, required=True))
    _put(data, "marginLevel", c.number("marginLevel", minimum=0.0, maximum=_MAX_MONEY))
    _put(data, "currency", c.string("currency", pattern=_CURRENCY_RE, what="a currency code"))
    _put(data, "leverage", c.integer("leverage", minimum=1, maximum=100_000))
    raw = c.obj.get("positions")
    if raw is None:
        data["positions"] = []
        return
    if not isinstance(raw, list):
        c.error("positions", "type", "must be a list of positions")
        return
    if len(raw) > MAX_SNAPSHOT_POSITIONS:
        c.error("positions", "too_long", f"must have at most {MAX_SNAPSHOT_POSITIONS} items")
        return
    positions: list[dict[str, Any]] = []
    for index, item in enumerate(raw):
        prefix = f"positions[{index}]"
        if not isinstance(item, Mapping):
            c.error(prefix, "type", "must be an object")
            continue
        sub = _Checker(item)
        sub.reject_unknown(_SNAPSHOT_POSITION_FIELDS)
        entry: dict[str, Any] = {}
        _put(entry, "ticket", sub.integer("ticket", required=True, minimum=0, maximum=_MAX_TICKET))
        _trade_common(sub, entry, symbol_required=True)
        _put(entry, "side", sub.choice("side", _SIDES, required=True))
        _put(entry, "volume", sub.number("volume", required=True, minimum=0.0, maximum=MAX_VOLUME))
        _put(entry, "priceOpen", _price(sub, "priceOpen", required=True))
        for name in ("sl", "tp"):
            _put(entry, name, _price(sub, name))
        for name in ("profit", "swap"):
            _put(entry, name, _money(sub, name))
        for error in sub.errors:
            c.error(f"{prefix}.{error.field}", error.code, error.message)
        positions.append(entry)
    data["positions"] = positions
