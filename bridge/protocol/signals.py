"""Trading signals published by strategy engines: schema and strict validation.

Pure and I/O-free: no clock is read here, the caller passes ``now`` (unix seconds).

Wire units: every timestamp on the wire (``createdAt``, ``expiresAt``) is **unix milliseconds as an
integer**; ``ttl`` is in seconds. :func:`parse_signal` never raises anything but :class:`SignalInvalid`,
which carries every problem found as a :class:`FieldError` so a publisher can fix them in one go.

Cross-field rules (what a trader expects):

- at least one of ``accounts`` / ``groups``;
- ``open`` needs ``side``, ``orderType`` and ``volume``;
- ``limit`` / ``stop`` orders need ``price``;
- ``modify`` needs at least one of ``sl``, ``tp``, ``price``;
- ``symbol`` is required except for ``close_all``;
- exactly one of ``ttl`` / ``expiresAt`` (a signal that never expires is a liability);
- with a side and both stops set: ``sl < tp`` for buy, ``sl > tp`` for sell; with a price too, the price lies
  between them. ``sl``/``tp`` of 0 mean "none" as in MetaTrader.

Here: the schema (:class:`Signal`, its limits and its wire form), the full validator and its fast path.
Not here: the field checker and the error types (:mod:`bridge.protocol.fields`, re-exported here), what
a channel does with a signal (the hub) or who it is for (:mod:`bridge.protocol.targeting`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from bridge.protocol._fastpath import (
    Doubt,
    fast_choice,
    fast_integer,
    fast_number,
    fast_pattern,
    fast_positive_number,
    fast_text,
    fast_uuid,
    slot_setters,
)
from bridge.protocol.fields import LOGIN_RE, MAX_TS_MS, SYMBOL_RE, Checker, FieldError, Invalid

__all__ = [
    "ACTIONS",
    "CLOCK_SKEW_MS",
    "MAX_ACCOUNTS",
    "MAX_COMMENT_LENGTH",
    "MAX_DEVIATION",
    "MAX_GROUPS",
    "MAX_MAGIC",
    "MAX_PRICE",
    "MAX_TTL_S",
    "MAX_VOLUME",
    "ORDER_TYPES",
    "SIDES",
    "SIGNAL_FIELDS",
    "Action",
    "OrderType",
    "Side",
    "Signal",
    "SignalInvalid",
    "parse_signal",
    "signal_channel",
]


def signal_channel(strategy: object) -> str:
    """The channel a signal of ``strategy`` is published on: ``signals:<strategy>``. A payload without
    a string strategy maps to ``signals:_``, so that it reaches validation (which names the missing
    field) instead of failing on a malformed channel name."""
    return f"signals:{strategy}" if isinstance(strategy, str) else "signals:_"


Action = Literal["open", "close", "modify", "cancel", "close_all"]
Side = Literal["buy", "sell"]
OrderType = Literal["market", "limit", "stop"]

ACTIONS: Final[tuple[str, ...]] = ("open", "close", "modify", "cancel", "close_all")
SIDES: Final[tuple[str, ...]] = ("buy", "sell")
ORDER_TYPES: Final[tuple[str, ...]] = ("market", "limit", "stop")

#: Largest volume in lots accepted in one signal; far above any broker's per-order maximum.
MAX_VOLUME: Final = 10_000.0
#: Largest price accepted; guards against garbage such as 1e300 reaching an EA.
MAX_PRICE: Final = 1e9
#: MetaTrader truncates order comments to 31 characters; we refuse rather than truncate.
MAX_COMMENT_LENGTH: Final = 31
#: Maximum slippage in points.
MAX_DEVIATION: Final = 100_000
#: MQL5 magic numbers are ulong; we keep them in the signed 64-bit range so every store can hold them.
MAX_MAGIC: Final = 2**63 - 1
#: Longest lifetime of a signal (7 days).
MAX_TTL_S: Final = 7 * 24 * 3600
MAX_ACCOUNTS: Final = 1000
MAX_GROUPS: Final = 100
#: How far a publisher's ``createdAt`` may be ahead of the hub's clock.
CLOCK_SKEW_MS: Final = 60_000

SIGNAL_FIELDS: Final[frozenset[str]] = frozenset(
    {
        "id",
        "strategy",
        "accounts",
        "groups",
        "symbol",
        "action",
        "side",
        "orderType",
        "volume",
        "price",
        "sl",
        "tp",
        "deviation",
        "magic",
        "comment",
        "ttl",
        "expiresAt",
        "createdAt",
    }
)

_NAME_RE: Final = re.compile(r"[A-Za-z0-9_.\-]{1,64}")


class SignalInvalid(Invalid):
    """A signal failed validation."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Signal:
    """A validated signal. Timestamps are unix milliseconds; ``expires_at`` is always set."""

    id: str
    strategy: str
    accounts: tuple[str, ...]
    groups: tuple[str, ...]
    symbol: str | None
    action: Action
    side: Side | None
    order_type: OrderType | None
    volume: float | None
    price: float | None
    sl: float | None
    tp: float | None
    deviation: int | None
    magic: int | None
    comment: str | None
    created_at: int
    expires_at: int

    @property
    def channel(self) -> str:
        """The durable channel the signal is published on."""
        return signal_channel(self.strategy)

    def is_expired(self, now_ms: int) -> bool:
        return now_ms >= self.expires_at

    def to_payload(self) -> dict[str, Any]:
        """The canonical payload delivered to EAs: absent optionals are omitted, ``ttl`` is resolved
        into ``expiresAt``; ``createdAt``/``expiresAt`` are integer unix milliseconds."""
        # Straight-line on purpose: this runs for every signal stored and delivered.
        payload: dict[str, Any] = {"id": self.id, "strategy": self.strategy}
        if self.accounts:
            payload["accounts"] = list(self.accounts)
        if self.groups:
            payload["groups"] = list(self.groups)
        if self.symbol is not None:
            payload["symbol"] = self.symbol
        if self.action is not None:
            payload["action"] = self.action
        if self.side is not None:
            payload["side"] = self.side
        if self.order_type is not None:
            payload["orderType"] = self.order_type
        if self.volume is not None:
            payload["volume"] = self.volume
        if self.price is not None:
            payload["price"] = self.price
        if self.sl is not None:
            payload["sl"] = self.sl
        if self.tp is not None:
            payload["tp"] = self.tp
        if self.deviation is not None:
            payload["deviation"] = self.deviation
        if self.magic is not None:
            payload["magic"] = self.magic
        if self.comment is not None:
            payload["comment"] = self.comment
        payload["createdAt"] = self.created_at
        payload["expiresAt"] = self.expires_at
        return payload


def parse_signal(obj: object, now: float) -> Signal:
    """Validate an untrusted signal object.

    Args:
        obj: the decoded JSON/MessagePack payload.
        now: the hub's clock, unix seconds.

    Returns:
        The validated :class:`Signal` with ``createdAt`` defaulting to ``now`` and ``expiresAt`` resolved.

    Raises:
        SignalInvalid: with every field error found; never any other exception.
    """
    if type(obj) is dict:
        try:
            return _fast_signal(obj, now)
        except _FAST_PATH_GAVE_UP:
            pass  # the full validator decides, and reports
    return _full_signal(obj, now)


def _full_signal(obj: object, now: float) -> Signal:
    """The reference validator: every rule, every error, for any input (the fast path's fallback)."""
    if not isinstance(obj, Mapping):
        raise SignalInvalid([FieldError("", "type", "signal must be an object")])
    try:
        return _parse_signal(obj, now)
    except SignalInvalid:
        raise
    except (TypeError, ValueError, OverflowError) as exc:  # defensive: keep the one-exception contract
        raise SignalInvalid([FieldError("", "invalid", "signal could not be parsed")]) from exc


def _parse_signal(obj: Mapping[str, Any], now: float) -> Signal:
    c = Checker(obj)
    now_ms = int(now * 1000)
    c.reject_unknown(SIGNAL_FIELDS)

    signal_id = c.uuid("id", required=True)
    strategy = c.string("strategy", required=True, pattern=_NAME_RE, what="1-64 of A-Z a-z 0-9 _ . -")
    accounts = c.string_list("accounts", pattern=LOGIN_RE, max_items=MAX_ACCOUNTS, what="a login (digits)")
    groups = c.string_list("groups", pattern=_NAME_RE, max_items=MAX_GROUPS, what="a group name")
    action = c.choice("action", ACTIONS, required=True)
    symbol = c.string(
        "symbol", required=action not in (None, "close_all"), pattern=SYMBOL_RE, what="a symbol name"
    )
    side = c.choice("side", SIDES, required=action == "open")
    order_type = c.choice("orderType", ORDER_TYPES, required=action == "open")
    volume = c.number(
        "volume", required=action == "open", minimum=0.0, exclusive_minimum=True, maximum=MAX_VOLUME
    )
    price = c.number(
        "price",
        required=order_type in ("limit", "stop"),
        minimum=0.0,
        exclusive_minimum=True,
        maximum=MAX_PRICE,
    )
    sl = c.number("sl", minimum=0.0, maximum=MAX_PRICE)
    tp = c.number("tp", minimum=0.0, maximum=MAX_PRICE)
    deviation = c.integer("deviation", minimum=0, maximum=MAX_DEVIATION)
    magic = c.integer("magic", minimum=0, maximum=MAX_MAGIC)
    comment = c.text("comment", max_length=MAX_COMMENT_LENGTH)
    ttl = c.number("ttl", minimum=0.0, exclusive_minimum=True, maximum=MAX_TTL_S)
    expires_at = c.integer("expiresAt", minimum=0, maximum=MAX_TS_MS)
    created_at = c.integer("createdAt", minimum=0, maximum=MAX_TS_MS)

    if not accounts and not groups and not c.has_error("accounts") and not c.has_error("groups"):
        c.error("accounts", "required", "at least one account or group is required")
    if action in ("close_all", "cancel", "modify") and c.present("volume"):
        c.error("volume", "not_allowed", f"is not allowed for {action}")
    if action == "modify" and not any(c.present(f) for f in ("sl", "tp", "price")):
        c.error("sl", "required", "modify needs at least one of sl, tp, price")
    if action != "open" and c.present("orderType") and action != "cancel":
        c.error("orderType", "not_allowed", "is only allowed for open and cancel")

    if c.present("ttl") and c.present("expiresAt"):
        c.error("expiresAt", "conflict", "give either ttl or expiresAt, not both")
    elif not c.present("ttl") and not c.present("expiresAt"):
        c.error("ttl", "required", "one of ttl or expiresAt is required")

    if created_at is not None and created_at > now_ms + CLOCK_SKEW_MS:
        c.error("createdAt", "range", "is in the future")
        created_at = None
    created = created_at if created_at is not None else now_ms
    expiry: int | None = None
    if ttl is not None:
        expiry = created + math.ceil(ttl * 1000)
    elif expires_at is not None:
        expiry = expires_at
        if expiry > now_ms + MAX_TTL_S * 1000:
            c.error("expiresAt", "range", "is too far in the future")
    if expiry is not None and expiry <= now_ms and not c.errors:
        c.error("expiresAt" if expires_at is not None else "ttl", "expired", "the signal has already expired")
    if expiry is not None and expiry <= created and expires_at is not None and not c.has_error("expiresAt"):
        c.error("expiresAt", "range", "must be after createdAt")

    if side is not None and sl and tp:
        if (side == "buy" and not sl < tp) or (side == "sell" and not sl > tp):
            c.error("sl", "conflict", f"sl and tp are on the wrong sides for a {side}")
        elif price is not None and not (min(sl, tp) < price < max(sl, tp)):
            c.error("price", "conflict", "price must lie between sl and tp")

    if c.errors:
        raise SignalInvalid(c.errors)
    assert signal_id is not None and strategy is not None and action is not None and expiry is not None
    return Signal(
        id=signal_id,
        strategy=strategy,
        accounts=accounts or (),
        groups=groups or (),
        symbol=symbol,
        action=action,  # type: ignore[arg-type]
        side=side,  # type: ignore[arg-type]
        order_type=order_type,  # type: ignore[arg-type]
        volume=volume,
        price=price,
        sl=sl,
        tp=tp,
        deviation=deviation,
        magic=magic,
        comment=comment,
        created_at=created,
        expires_at=expiry,
    )


# -- fast path ------------------------------------------------------------------------------------------
#
# A valid signal of the usual shape is checked field by field in the full validator's order, with exact
# builtin types only. Anything unusual, valid or not, raises Doubt and the full validator runs from
# scratch: it alone accepts the unusual and it alone builds errors. tests/protocol/test_fastpath.py checks
# both paths agree.

#: What makes the fast path give up: Doubt, or (defensively) what the full path itself turns into an error.
_FAST_PATH_GAVE_UP: Final = (Doubt, TypeError, ValueError, OverflowError)
_ACTION_SET: Final = frozenset(ACTIONS)
_SIDE_SET: Final = frozenset(SIDES)
_ORDER_TYPE_SET: Final = frozenset(ORDER_TYPES)
_NO_VOLUME_ACTIONS: Final = frozenset({"close_all", "cancel", "modify"})

_new = object.__new__
(
    _set_id, _set_strategy, _set_accounts, _set_groups, _set_symbol, _set_action, _set_side, _set_order_type,
    _set_volume, _set_price, _set_sl, _set_tp, _set_deviation, _set_magic, _set_comment, _set_created_at,
    _set_expires_at,
) = slot_setters(
    Signal, "id", "strategy", "accounts", "groups", "symbol", "action", "side", "order_type", "volume",
    "price", "sl", "tp", "deviation", "magic", "comment", "created_at", "expires_at",
)  # fmt: skip


def _fast_signal(obj: dict[Any, Any], now: float) -> Signal:
    """The signal the full validator would return for ``obj``, or Doubt."""
    if not obj.keys() <= SIGNAL_FIELDS:
        raise Doubt
    get = obj.get
    signal_id = fast_uuid(get("id"))
    strategy = fast_pattern(get("strategy"), _NAME_RE)
    accounts = _fast_names(get("accounts"), LOGIN_RE, MAX_ACCOUNTS)
    groups = _fast_names(get("groups"), _NAME_RE, MAX_GROUPS)
    if not accounts and not groups:
        raise Doubt
    action = fast_choice(get("action"), _ACTION_SET)
    is_open = action == "open"
    symbol = get("symbol")
    if symbol is not None:
        symbol = fast_pattern(symbol, SYMBOL_RE)
    elif action != "close_all":
        raise Doubt
    side = get("side")
    if side is not None:
        side = fast_choice(side, _SIDE_SET)
    elif is_open:
        raise Doubt
    order_type = get("orderType")
    if order_type is not None:
        if not is_open and action != "cancel":
            raise Doubt
        order_type = fast_choice(order_type, _ORDER_TYPE_SET)
    elif is_open:
        raise Doubt
    volume = get("volume")
    if volume is not None:
        if action in _NO_VOLUME_ACTIONS:
            raise Doubt
        volume = fast_positive_number(volume, MAX_VOLUME)
    elif is_open:
        raise Doubt
    price = get("price")
    if price is not None:
        price = fast_positive_number(price, MAX_PRICE)
    elif order_type == "limit" or order_type == "stop":
        raise Doubt
    sl = get("sl")
    if sl is not None:
        sl = fast_number(sl, 0.0, MAX_PRICE)
    tp = get("tp")
    if tp is not None:
        tp = fast_number(tp, 0.0, MAX_PRICE)
    if action == "modify" and sl is None and tp is None and price is None:
        raise Doubt
    deviation = get("deviation")
    if deviation is not None:
        deviation = fast_integer(deviation, 0, MAX_DEVIATION)
    magic = get("magic")
    if magic is not None:
        magic = fast_integer(magic, 0, MAX_MAGIC)
    comment = get("comment")
    if comment is not None:
        comment = fast_text(comment, MAX_COMMENT_LENGTH)

    now_ms = int(now * 1000)
    created_at = get("createdAt")
    if created_at is None:
        created = now_ms
    else:
        created = fast_integer(created_at, 0, MAX_TS_MS)
        if created > now_ms + CLOCK_SKEW_MS:
            raise Doubt
    ttl = get("ttl")
    expires_at = get("expiresAt")
    if ttl is not None:
        if expires_at is not None:
            raise Doubt
        expiry = created + math.ceil(fast_positive_number(ttl, MAX_TTL_S) * 1000)
    elif expires_at is not None:
        expiry = fast_integer(expires_at, 0, MAX_TS_MS)
        if expiry > now_ms + MAX_TTL_S * 1000 or expiry <= created:
            raise Doubt
    else:
        raise Doubt
    if expiry <= now_ms:
        raise Doubt

    if side is not None and sl and tp:
        if (side == "buy" and not sl < tp) or (side == "sell" and not sl > tp):
            raise Doubt
        if price is not None and not (min(sl, tp) < price < max(sl, tp)):
            raise Doubt

    signal: Signal = _new(Signal)
    _set_id(signal, signal_id)
    _set_strategy(signal, strategy)
    _set_accounts(signal, accounts)
    _set_groups(signal, groups)
    _set_symbol(signal, symbol)
    _set_action(signal, action)
    _set_side(signal, side)
    _set_order_type(signal, order_type)
    _set_volume(signal, volume)
    _set_price(signal, price)
    _set_sl(signal, sl)
    _set_tp(signal, tp)
    _set_deviation(signal, deviation)
    _set_magic(signal, magic)
    _set_comment(signal, comment)
    _set_created_at(signal, created)
    _set_expires_at(signal, expiry)
    return signal


def _fast_names(value: Any, pattern: re.Pattern[str], max_items: int) -> tuple[str, ...]:
    """A list of distinct names ``pattern`` matches, as a tuple (absent: empty)."""
    if value is None:
        return ()
    if type(value) is not list or len(value) > max_items:
        raise Doubt
    fullmatch = pattern.fullmatch
    for item in value:
        if type(item) is not str or not fullmatch(item):
            raise Doubt
    if len(set(value)) != len(value):
        raise Doubt
    return tuple(value)
