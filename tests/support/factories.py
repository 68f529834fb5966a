"""Protocol payloads for tests: signals, trade events (deal, order, account snapshot), the ids tests
compare. One factory per payload; a test states only what it cares about as keyword overrides.

What does not live here: tokens (a hub's ``token()``, or :func:`tests.support.fakes.token` for the
socketless hub) and the rules these payloads are checked against (``bridge/protocol``).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

__all__ = ["STOPS", "account_snapshot", "deal", "now_ms", "numbered_signal", "order", "signal"]

#: The stop loss and take profit of the example signal in docs/protocol.md (EURUSD around 1.08).
STOPS: dict[str, Any] = {"sl": 1.0700, "tp": 1.0900}


def now_ms() -> int:
    return int(time.time() * 1000)


def signal(
    strategy: Any = "alpha",
    accounts: Any = None,
    *,
    sid: str | None = None,
    stops: bool = True,
    **fields: Any,
) -> dict[str, Any]:
    """An ``open`` market buy of 0.1 lot EURUSD for account 50123, valid 600 s, with :data:`STOPS`
    unless ``stops`` is false. A field given as ``...`` is left out (a required field missing, say)."""
    body: dict[str, Any] = {
        "id": sid or str(uuid.uuid4()),
        "strategy": strategy,
        "accounts": accounts if accounts is not None else ["50123"],
        "symbol": "EURUSD",
        "action": "open",
        "side": "buy",
        "orderType": "market",
        "volume": 0.1,
        **(STOPS if stops else {}),
        "ttl": 600,
    }
    for key, value in [*body.items(), *fields.items()]:
        if value is ...:
            body.pop(key, None)
        else:
            body[key] = value
    return body


def numbered_signal(n: int, **fields: Any) -> dict[str, Any]:
    """:func:`signal` without stops and with an id that follows from ``n`` (UUID ``n + 1``), for tests
    that compare the ids received with the ids published, in order."""
    fields.setdefault("stops", False)
    return signal(sid=str(uuid.UUID(int=n + 1, version=4)), **fields)


def deal(account: str, signal_id: str | None = None, eid: str | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": eid or str(uuid.uuid4()),
        "kind": "deal",
        "account": account,
        "ts": now_ms(),
        "ticket": 991,
        "symbol": "EURUSD",
        "side": "buy",
        "entry": "in",
        "volume": 0.1,
        "price": 1.0801,
    }
    if signal_id is not None:
        body["signalId"] = signal_id
    body.update(extra)
    return body


def order(account: str, signal_id: str | None, state: str, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "kind": "order",
        "account": account,
        "ts": now_ms(),
        "state": state,
        "symbol": "EURUSD",
        "side": "buy",
        "orderType": "market",
        "volume": 0.1,
    }
    if signal_id is not None:
        body["signalId"] = signal_id
    body.update(extra)
    return body


def account_snapshot(account: str, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "kind": "account",
        "account": account,
        "ts": now_ms(),
        "balance": 10_000.0,
        "equity": 10_012.5,
        "margin": 108.0,
        "freeMargin": 9_904.5,
        "currency": "USD",
        "leverage": 100,
        "positions": [
            {
                "ticket": 991,
                "symbol": "EURUSD",
                "side": "buy",
                "volume": 0.1,
                "priceOpen": 1.0801,
                "profit": 12.5,
            }
        ],
    }
    body.update(extra)
    return body


def request(mtype: str, rid: str, channel: str | None = None, payload: Any = None) -> dict[str, Any]:
    """A client request envelope (docs/protocol.md): ``channel`` and ``payload`` only when given."""
    env: dict[str, Any] = {"type": mtype, "requestId": rid}
    if channel is not None:
        env["channel"] = channel
    if payload is not None:
        env["payload"] = payload
    return env
