"""Trade events reported by EAs: schema and strict validation.

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
  ``volume``, ``priceOpen`` required; ``sl``, ``tp``, ``profit``, ``swap``, ``magic``, ``comment`` optional),
  and, when the EA's daily loss limit pauses or un-pauses the account, ``riskState`` (active|daily_loss),
  ``dayStartEquity`` and ``resumeAt`` (unix ms, the next broker day).

Here: the event schema, its validator (full and fast path) and :func:`status_from_event`, the delivery
status an event proves. Not here: the status model and its forward-only rule
(:mod:`bridge.protocol.delivery`), the CSV export (:mod:`bridge.protocol.event_csv`), both re-exported
here; the field checker (:mod:`bridge.protocol.fields`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from bridge.protocol._fastpath import (
    Doubt,
    fast_choice,
    fast_integer,
    fast_number,
    fast_pattern,
    fast_text,
    fast_uuid,
    slot_setters,
)
from bridge.protocol.delivery import DeliveryStatus
from bridge.protocol.fields import LOGIN_RE, MAX_TS_MS, SYMBOL_RE, Checker, FieldError, Invalid
from bridge.protocol.signals import MAX_MAGIC, MAX_PRICE, MAX_VOLUME

__all__ = [
    "EVENT_KINDS",
    "MAX_EVENT_COMMENT_LENGTH",
    "MAX_EVENT_MESSAGE_LENGTH",
    "MAX_SNAPSHOT_POSITIONS",
    "RISK_STATES",
    "EventInvalid",
    "EventKind",
    "TradeEvent",
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
#: An account's trading state under the EA's risk limits: ``daily_loss`` while the daily loss limit
#: pauses it, ``active`` otherwise (reported when the pause ends).
RISK_STATES: Final = ("active", "daily_loss")
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
        {
            "balance",
            "equity",
            "margin",
            "freeMargin",
            "marginLevel",
            "currency",
            "leverage",
            "riskState",
            "dayStartEquity",
            "resumeAt",
            "positions",
        }
    ),
}
_SNAPSHOT_POSITION_FIELDS: Final = frozenset(
    {"ticket", "symbol", "side", "volume", "priceOpen", "sl", "tp", "profit", "swap", "magic", "comment"}
)


class EventInvalid(Invalid):
    """A trade event failed validation."""


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
        # One dict display each (a repeated key keeps its first place and takes the last value, as update).
        if self.signal_id is None:
            return {"id": self.id, "kind": self.kind, "account": self.account, "ts": self.ts, **self.data}
        return {
            "id": self.id,
            "kind": self.kind,
            "account": self.account,
            "ts": self.ts,
            "signalId": self.signal_id,
            **self.data,
        }


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
    if type(obj) is dict:
        try:
            return _fast_event(obj)
        except _FAST_PATH_GAVE_UP:
            pass  # the full validator decides, and reports
    return _full_event(obj)


def _full_event(obj: object) -> TradeEvent:
    """The reference validator: every rule, every error, for any input (the fast path's fallback)."""
    if not isinstance(obj, Mapping):
        raise EventInvalid([FieldError("", "type", "event must be an object")])
    try:
        return _parse_event(obj)
    except EventInvalid:
        raise
    except (TypeError, ValueError, OverflowError) as exc:
        raise EventInvalid([FieldError("", "invalid", "event could not be parsed")]) from exc


def _parse_event(obj: Mapping[str, Any]) -> TradeEvent:
    c = Checker(obj)
    kind = c.choice("kind", EVENT_KINDS, required=True)
    c.reject_unknown(_COMMON | _KIND_FIELDS[kind] if kind is not None else _COMMON | _all_kind_fields())
    event_id = c.uuid("id", required=True)
    account = c.string("account", required=True, pattern=LOGIN_RE, what="a login (digits)")
    ts = c.integer("ts", required=True, minimum=0, maximum=MAX_TS_MS)
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


def _price(c: Checker, name: str, *, required: bool = False) -> float | None:
    return c.number(name, required=required, minimum=0.0, maximum=MAX_PRICE)


def _money(c: Checker, name: str, *, required: bool = False) -> float | None:
    return c.number(name, required=required, minimum=-_MAX_MONEY, maximum=_MAX_MONEY)


def _trade_common(c: Checker, data: dict[str, Any], *, symbol_required: bool) -> None:
    _put(data, "symbol", c.string("symbol", required=symbol_required, pattern=SYMBOL_RE, what="a symbol"))
    _put(data, "magic", c.integer("magic", minimum=0, maximum=MAX_MAGIC))
    _put(data, "comment", c.text("comment", max_length=MAX_EVENT_COMMENT_LENGTH))


def _order(c: Checker, data: dict[str, Any]) -> None:
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


def _deal(c: Checker, data: dict[str, Any]) -> None:
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


def _position(c: Checker, data: dict[str, Any]) -> None:
    _put(data, "ticket", c.integer("ticket", required=True, minimum=0, maximum=_MAX_TICKET))
    _put(data, "state", c.choice("state", _POSITION_STATES, required=True))
    _trade_common(c, data, symbol_required=True)
    _position_tail(c, data)


def _position_tail(c: Checker, data: dict[str, Any]) -> None:
    """What a position event and a position of an account snapshot share after their common fields
    (the fast path's :data:`_POSITION_TAIL`)."""
    _put(data, "side", c.choice("side", _SIDES, required=True))
    _put(data, "volume", c.number("volume", required=True, minimum=0.0, maximum=MAX_VOLUME))
    _put(data, "priceOpen", _price(c, "priceOpen", required=True))
    for name in ("sl", "tp"):
        _put(data, name, _price(c, name))
    for name in ("profit", "swap"):
        _put(data, name, _money(c, name))


def _account(c: Checker, data: dict[str, Any]) -> None:
    for name in ("balance", "equity", "margin", "freeMargin"):
        _put(data, name, _money(c, name, required=True))
    _put(data, "marginLevel", c.number("marginLevel", minimum=0.0, maximum=_MAX_MONEY))
    _put(data, "currency", c.string("currency", pattern=_CURRENCY_RE, what="a currency code"))
    _put(data, "leverage", c.integer("leverage", minimum=1, maximum=100_000))
    _put(data, "riskState", c.choice("riskState", RISK_STATES))
    _put(data, "dayStartEquity", _money(c, "dayStartEquity"))
    _put(data, "resumeAt", c.integer("resumeAt", minimum=0, maximum=MAX_TS_MS))
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
        sub = Checker(item)
        sub.reject_unknown(_SNAPSHOT_POSITION_FIELDS)
        entry: dict[str, Any] = {}
        _put(entry, "ticket", sub.integer("ticket", required=True, minimum=0, maximum=_MAX_TICKET))
        _trade_common(sub, entry, symbol_required=True)
        _position_tail(sub, entry)
        for error in sub.errors:
            c.error(f"{prefix}.{error.field}", error.code, error.message)
        positions.append(entry)
    data["positions"] = positions


# -- fast path ------------------------------------------------------------------------------------------
#
# Valid events of the usual shape are checked against the tables below, which list each kind's fields in
# the order the full validator above puts them into ``data`` (so ``to_payload()`` keeps its key order).
# Anything unusual, valid or not, raises Doubt and the full validator runs from scratch: it alone accepts
# the unusual and it alone builds errors. tests/protocol/test_fastpath.py checks both paths agree.

#: (field, required, check, a, b): ``check(value, a, b)`` returns the value to keep or raises Doubt.
_FastSpec = tuple[tuple[str, bool, Callable[[Any, Any, Any], Any], Any, Any], ...]

#: What makes the fast path give up: Doubt, or (defensively) what the full path itself turns into an error.
_FAST_PATH_GAVE_UP: Final = (Doubt, TypeError, ValueError, OverflowError)
_SIDE_SET: Final = frozenset(_SIDES)
_TRADE_COMMON: Final[_FastSpec] = (
    ("symbol", True, fast_pattern, SYMBOL_RE, None),
    ("magic", False, fast_integer, 0, MAX_MAGIC),
    ("comment", False, fast_text, MAX_EVENT_COMMENT_LENGTH, None),
)
_FAST_ORDER: Final[_FastSpec] = (
    ("state", True, fast_choice, frozenset(_ORDER_STATES), None),
    ("ticket", False, fast_integer, 0, _MAX_TICKET),  # required unless rejected: checked after the table
    *_TRADE_COMMON,
    ("side", False, fast_choice, _SIDE_SET, None),
    ("orderType", False, fast_choice, frozenset(_ORDER_TYPES), None),
    ("volume", False, fast_number, 0.0, MAX_VOLUME),
    ("price", False, fast_number, 0.0, MAX_PRICE),
    ("sl", False, fast_number, 0.0, MAX_PRICE),
    ("tp", False, fast_number, 0.0, MAX_PRICE),
    ("retcode", False, fast_integer, 0, 2**31 - 1),
    ("message", False, fast_text, MAX_EVENT_MESSAGE_LENGTH, None),
)
_FAST_DEAL: Final[_FastSpec] = (
    ("ticket", True, fast_integer, 0, _MAX_TICKET),
    ("order", False, fast_integer, 0, _MAX_TICKET),
    ("position", False, fast_integer, 0, _MAX_TICKET),
    *_TRADE_COMMON,
    ("side", True, fast_choice, _SIDE_SET, None),
    ("entry", True, fast_choice, frozenset(_DEAL_ENTRIES), None),
    ("volume", True, fast_number, 0.0, MAX_VOLUME),
    ("price", True, fast_number, 0.0, MAX_PRICE),
    ("profit", False, fast_number, -_MAX_MONEY, _MAX_MONEY),
    ("commission", False, fast_number, -_MAX_MONEY, _MAX_MONEY),
    ("swap", False, fast_number, -_MAX_MONEY, _MAX_MONEY),
    ("fee", False, fast_number, -_MAX_MONEY, _MAX_MONEY),
)
#: What a position event and a position of an account snapshot share after their common fields.
_POSITION_TAIL: Final[_FastSpec] = (
    ("side", True, fast_choice, _SIDE_SET, None),
    ("volume", True, fast_number, 0.0, MAX_VOLUME),
    ("priceOpen", True, fast_number, 0.0, MAX_PRICE),
    ("sl", False, fast_number, 0.0, MAX_PRICE),
    ("tp", False, fast_number, 0.0, MAX_PRICE),
    ("profit", False, fast_number, -_MAX_MONEY, _MAX_MONEY),
    ("swap", False, fast_number, -_MAX_MONEY, _MAX_MONEY),
)
_FAST_POSITION: Final[_FastSpec] = (
    ("ticket", True, fast_integer, 0, _MAX_TICKET),
    ("state", True, fast_choice, frozenset(_POSITION_STATES), None),
    *_TRADE_COMMON,
    *_POSITION_TAIL,
)
_FAST_SNAPSHOT_POSITION: Final[_FastSpec] = (
    ("ticket", True, fast_integer, 0, _MAX_TICKET),
    *_TRADE_COMMON,
    *_POSITION_TAIL,
)
_FAST_ACCOUNT: Final[_FastSpec] = (
    ("balance", True, fast_number, -_MAX_MONEY, _MAX_MONEY),
    ("equity", True, fast_number, -_MAX_MONEY, _MAX_MONEY),
    ("margin", True, fast_number, -_MAX_MONEY, _MAX_MONEY),
    ("freeMargin", True, fast_number, -_MAX_MONEY, _MAX_MONEY),
    ("marginLevel", False, fast_number, 0.0, _MAX_MONEY),
    ("currency", False, fast_pattern, _CURRENCY_RE, None),
    ("leverage", False, fast_integer, 1, 100_000),
    ("riskState", False, fast_choice, frozenset(RISK_STATES), None),
    ("dayStartEquity", False, fast_number, -_MAX_MONEY, _MAX_MONEY),
    ("resumeAt", False, fast_integer, 0, MAX_TS_MS),
)
#: kind -> (every field allowed at the top level, the kind's table).
_FAST_KINDS: Final[dict[str, tuple[frozenset[str], _FastSpec]]] = {
    "order": (_COMMON | _KIND_FIELDS["order"], _FAST_ORDER),
    "deal": (_COMMON | _KIND_FIELDS["deal"], _FAST_DEAL),
    "position": (_COMMON | _KIND_FIELDS["position"], _FAST_POSITION),
    "account": (_COMMON | _KIND_FIELDS["account"], _FAST_ACCOUNT),
}

_new = object.__new__
_set_id, _set_kind, _set_account, _set_ts, _set_signal_id, _set_data = slot_setters(
    TradeEvent, "id", "kind", "account", "ts", "signal_id", "data"
)


def _fast_event(obj: dict[Any, Any]) -> TradeEvent:
    """The event the full validator would return for ``obj``, or Doubt."""
    kind = obj.get("kind")
    if type(kind) is not str or kind not in _FAST_KINDS:
        raise Doubt
    allowed, spec = _FAST_KINDS[kind]
    if not obj.keys() <= allowed:
        raise Doubt
    get = obj.get
    event_id = fast_uuid(get("id"))
    account = fast_pattern(get("account"), LOGIN_RE)
    ts = fast_integer(get("ts"), 0, MAX_TS_MS)
    signal_id = get("signalId")
    if signal_id is not None:
        signal_id = fast_uuid(signal_id)
    data = _fast_fields(obj, spec)
    if kind == "order":
        if "ticket" not in data and data["state"] != "rejected":
            raise Doubt
    elif kind == "account":
        data["positions"] = _fast_positions(get("positions"))
    event: TradeEvent = _new(TradeEvent)
    _set_id(event, event_id)
    _set_kind(event, kind)
    _set_account(event, account)
    _set_ts(event, ts)
    _set_signal_id(event, signal_id)
    _set_data(event, data)
    return event


def _fast_fields(obj: dict[Any, Any], spec: _FastSpec) -> dict[str, Any]:
    """The checked fields of ``spec`` that ``obj`` gives (a null is an absent field, as in the full path)."""
    data: dict[str, Any] = {}
    get = obj.get
    for name, required, check, a, b in spec:
        value = get(name)
        if value is None:
            if required:
                raise Doubt
            continue
        data[name] = check(value, a, b)
    return data


def _fast_positions(raw: Any) -> list[dict[str, Any]]:
    """The snapshot's ``positions`` (absent: an empty list)."""
    if raw is None:
        return []
    if type(raw) is not list or len(raw) > MAX_SNAPSHOT_POSITIONS:
        raise Doubt
    positions: list[dict[str, Any]] = []
    for item in raw:
        if type(item) is not dict or not item.keys() <= _SNAPSHOT_POSITION_FIELDS:
            raise Doubt
        positions.append(_fast_fields(item, _FAST_SNAPSHOT_POSITION))
    return positions
