"""The simulated account mirrors the EA's execution rules and event sequence, deterministically."""

from __future__ import annotations

import uuid
from typing import Any

from bridge.protocol.events import parse_event
from bridge.simulator import RiskGuards, SimAccount, event_uuid, signal_tag
from bridge.simulator.risk import parse_trading_hours

NOW = 1_700_000_000_000
GUARDS = RiskGuards()


def sig(action: str = "open", n: int = 1, **over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": str(uuid.UUID(int=n, version=4)),
        "strategy": "alpha",
        "accounts": ["50123"],
        "symbol": "EURUSD",
        "action": action,
        "createdAt": NOW - 1000,
        "expiresAt": NOW + 60_000,
    }
    if action == "open":
        body.update(side="buy", orderType="market", volume=0.1)
    body.update(over)
    return body


def test_event_ids_are_name_based_uuids() -> None:
    a = event_uuid("50123|deal|2")
    assert a == event_uuid("50123|deal|2") != event_uuid("50123|deal|3")
    parsed = uuid.UUID(a)
    assert parsed.version == 5 and parsed.variant == uuid.RFC_4122
    assert signal_tag("x").startswith("mtb#") and len(signal_tag("x")) == 16


def test_open_reports_deal_position_order_in_that_order() -> None:
    acc = SimAccount("50123")
    events = acc.execute(sig(sl=1.07, tp=1.09), NOW, GUARDS)
    assert [(e["kind"], e.get("state", e.get("entry"))) for e in events] == [
        ("deal", "in"),
        ("position", "opened"),
        ("order", "filled"),
    ]
    for e in events:
        parse_event(e, NOW / 1000)  # every event passes the hub's validation
        assert e["signalId"] == sig()["id"] and e["ts"] == NOW
    deal, position, order = events
    assert deal["price"] == acc.quote("EURUSD")[1]  # a buy fills at the ask
    assert position["ticket"] == order["ticket"] == deal["order"] == 1 and deal["ticket"] == 2
    assert position["sl"] == 1.07 and position["tp"] == 1.09
    assert len(acc.positions) == 1 and acc.margin() > 0


def test_same_scenario_gives_identical_events() -> None:
    script = [sig(n=1), sig("modify", n=2, sl=1.0, tp=1.2), sig("close", n=3), sig("close", n=4)]
    runs = []
    for _ in range(2):
        acc = SimAccount("50123")
        runs.append([acc.execute(s, NOW, GUARDS) for s in script])
    assert runs[0] == runs[1]
    modify, close, nothing = runs[0][1], runs[0][2], runs[0][3]
    assert [(e["kind"], e["state"]) for e in modify] == [("position", "modified")]
    assert [(e["kind"], e.get("state", e.get("entry"))) for e in close] == [
        ("deal", "out"),
        ("position", "closed"),
        ("order", "filled"),
    ]
    assert close[0]["side"] == "sell" and close[0]["profit"] < 0  # paid the spread
    assert nothing[0]["state"] == "rejected" and nothing[0]["message"] == "no_position"


def test_close_settles_balance() -> None:
    acc = SimAccount("50123", balance=1000.0)
    acc.execute(sig(n=1), NOW, GUARDS)
    events = acc.execute(sig("close_all", n=2, symbol=None), NOW, GUARDS)
    assert acc.positions == [] and acc.balance == round(1000.0 + events[0]["profit"], 2)


def test_guards_reject_in_the_eas_order() -> None:
    acc = SimAccount("50123")
    cases = [
        (sig(), RiskGuards(), True, "paused"),
        (sig(), RiskGuards(trading_enabled=False), False, "trading_disabled"),
        (sig(expiresAt=NOW - 1), RiskGuards(), False, "expired"),
        (sig(createdAt=NOW - 31_000), RiskGuards(), False, "stale"),
        (
            sig(symbol="GBPUSD"),
            RiskGuards(allowed_symbols=frozenset({"EURUSD"})),
            False,
            "symbol_not_allowed",
        ),
        (sig(orderType="stop_limit", price=1.0), RiskGuards(), False, "unsupported_order_type"),
        (sig(orderType="limit", price=1.2), RiskGuards(), False, "trade_server: invalid price"),
        (sig(orderType="stop", price=1.0), RiskGuards(), False, "trade_server: invalid price"),
        (sig(volume=0.004), RiskGuards(), False, "volume_below_min"),
        (sig(volume=0), RiskGuards(), False, "invalid_volume"),
        (sig(), RiskGuards(lot_mode="risk"), False, "no_stop_loss"),
        (sig(), RiskGuards(trading_hours=parse_trading_hours("00:00-00:01")), False, "outside_trading_hours"),
        (sig(price=1.2), RiskGuards(), False, "slippage"),
        (sig(volume=100.0), RiskGuards(max_lot=1000), False, "trade_server: not enough money"),
        (sig("cancel"), RiskGuards(), False, "no_order"),
        (sig("close_by"), RiskGuards(), False, "unsupported_action"),
    ]
    for signal, guards, paused, reason in cases:
        events = acc.execute(signal, NOW, guards, paused=paused)
        assert len(events) == 1, reason
        event = events[0]
        assert (event["kind"], event["state"], event["message"]) == ("order", "rejected", reason)
        assert event["id"] == event_uuid(f"50123|order-rejected|{signal['id']}")
        parse_event(event, NOW / 1000)
    assert acc.positions == []


def test_snapshot_is_a_valid_account_event() -> None:
    acc = SimAccount("50123")
    acc.execute(sig(), NOW, GUARDS)
    snap = acc.snapshot(NOW)
    parse_event(snap, NOW / 1000)
    assert snap["equity"] == round(snap["balance"] + snap["positions"][0]["profit"], 2)
    assert snap["freeMargin"] == round(snap["equity"] - snap["margin"], 2)


def test_account_round_trips_through_dict() -> None:
    acc = SimAccount("50123")
    acc.execute(sig(), NOW, GUARDS)
    assert SimAccount.from_dict(acc.to_dict()) == acc


def test_pending_orders_place_trigger_cancel_and_expire() -> None:
    acc = SimAccount("50123")
    bid, ask = acc.quote("EURUSD")  # 1.08495 / 1.08505
    limit = sig(n=1, orderType="limit", price=1.08, sl=1.07, tp=1.1)
    stop = sig(n=2, orderType="stop", side="sell", price=1.07)
    short = sig(n=3, orderType="limit", price=1.05, expiresAt=NOW + 5_000)
    placed = [acc.execute(s, NOW, GUARDS) for s in (limit, stop, short)]
    assert [(e[0]["state"], e[0]["orderType"], e[0]["ticket"]) for e in placed] == [
        ("placed", "limit", 1),
        ("placed", "stop", 2),
        ("placed", "limit", 3),
    ]
    assert placed[0][0]["comment"] == signal_tag(limit["id"]) and placed[0][0]["sl"] == 1.07
    assert acc.check_pending(NOW, GUARDS) == []  # the market is nowhere near

    acc.set_quote("EURUSD", 1.0799, 1.0800)  # reaches the buy limit (ask <= 1.08), not the sell stop
    fill = acc.check_pending(NOW + 1, GUARDS)
    assert [(e["kind"], e.get("state", e.get("entry"))) for e in fill] == [
        ("deal", "in"),
        ("position", "opened"),
        ("order", "filled"),
    ]
    assert {e["signalId"] for e in fill} == {limit["id"]}
    assert fill[0]["price"] == 1.08 and fill[0]["ticket"] == 4 and fill[1]["ticket"] == 1
    assert fill[2]["orderType"] == "limit" and acc.positions[0].sl == 1.07

    cancel = sig("cancel", n=4, side="sell")
    cancelled = acc.execute(cancel, NOW + 2, GUARDS)
    assert [(e["state"], e["ticket"], e["signalId"]) for e in cancelled] == [("cancelled", 2, cancel["id"])]
    assert acc.check_pending(NOW + 4_999, GUARDS) == []
    expired = acc.check_pending(NOW + 5_000, GUARDS)
    assert [(e["state"], e["ticket"], e["signalId"]) for e in expired] == [("expired", 3, short["id"])]
    assert acc.orders == [] and bid < ask
    for e in placed[0] + fill + cancelled + expired:
        parse_event(e, NOW / 1000)
    assert SimAccount.from_dict(acc.to_dict()) == acc


def test_a_stop_order_fills_at_the_market() -> None:
    acc = SimAccount("50123")
    acc.execute(sig(orderType="stop", price=1.09), NOW, GUARDS)
    acc.set_quote("EURUSD", 1.0920, 1.0922)
    deal = acc.check_pending(NOW, GUARDS)[0]
    assert (deal["kind"], deal["price"], acc.positions[0].price_open) == ("deal", 1.0922, 1.0922)
