"""Trade events: strict validation per kind, delivery-status transitions; property test of the parser."""

from __future__ import annotations

import itertools
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.protocol.delivery import DeliveryStatus, can_transition
from bridge.protocol.event_csv import EVENT_CSV_COLUMNS, event_csv_row
from bridge.protocol.events import EventInvalid, TradeEvent, parse_event, status_from_event

NOW = 1_700_000_000.0
TS = 1_700_000_000_123
EVENT_ID = "6f1c2d3e-4a5b-4c6d-8e7f-9a0b1c2d3e4f"
SIGNAL_ID = "0b7c8e2a-5d4f-4c3b-9a1e-2f6d8c0b1a93"

BASE: dict[str, dict[str, Any]] = {
    "order": {
        "state": "filled",
        "ticket": 123456,
        "symbol": "EURUSD",
        "side": "buy",
        "orderType": "market",
        "volume": 0.1,
        "price": 1.0801,
        "retcode": 10009,
    },
    "deal": {
        "ticket": 99,
        "order": 123456,
        "position": 555,
        "symbol": "EURUSD",
        "side": "buy",
        "entry": "in",
        "volume": 0.1,
        "price": 1.0801,
        "profit": 0.0,
        "commission": -0.7,
    },
    "position": {
        "ticket": 555,
        "state": "opened",
        "symbol": "EURUSD",
        "side": "buy",
        "volume": 0.1,
        "priceOpen": 1.0801,
        "sl": 1.07,
        "tp": 1.09,
        "profit": 1.5,
    },
    "account": {
        "balance": 10_000.0,
        "equity": 10_001.5,
        "margin": 108.0,
        "freeMargin": 9_893.5,
        "currency": "USD",
        "leverage": 100,
        "positions": [{"ticket": 555, "symbol": "EURUSD", "side": "buy", "volume": 0.1, "priceOpen": 1.0801}],
    },
}


def event(kind: str, /, **changes: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {"id": EVENT_ID, "kind": kind, "account": "50123", "ts": TS, **BASE[kind]}
    for key, value in changes.items():
        if value is ...:
            obj.pop(key, None)
        else:
            obj[key] = value
    return obj


def errors_of(obj: object) -> set[tuple[str, str]]:
    with pytest.raises(EventInvalid) as info:
        parse_event(obj, NOW)
    return {(e.field, e.code) for e in info.value.errors}


class TestParse:
    @pytest.mark.parametrize("kind", sorted(BASE))
    def test_parse_accepts_each_kind(self, kind: str) -> None:
        parsed = parse_event(event(kind, signalId=SIGNAL_ID), NOW)
        assert parsed.kind == kind and parsed.account == "50123" and parsed.ts == TS
        assert parsed.signal_id == SIGNAL_ID
        assert parsed.to_payload() == event(kind, signalId=SIGNAL_ID)

    def test_parse_fills_empty_positions_list(self) -> None:
        assert parse_event(event("account", positions=...), NOW).data["positions"] == []

    def test_parse_allows_rejected_order_without_ticket(self) -> None:
        parsed = parse_event(event("order", state="rejected", ticket=..., retcode=10016), NOW)
        assert parsed.data["state"] == "rejected"
        assert ("ticket", "required") in errors_of(event("order", ticket=...))

    def test_parse_rejects_non_object(self) -> None:
        assert errors_of("x") == {("", "type")}

    def test_parse_rejects_unknown_kind_and_field(self) -> None:
        assert ("kind", "enum") in errors_of(event("order", kind="trade"))
        assert ("entry", "unknown") in errors_of(event("order", entry="in"))

    def test_parse_rejects_bad_common_fields(self) -> None:
        found = errors_of(event("deal", id="nope", account="abc", ts=-1, signalId=5))
        assert {("id", "format"), ("account", "format"), ("ts", "range"), ("signalId", "type")} <= found

    def test_parse_requires_kind_specific_fields(self) -> None:
        assert ("entry", "required") in errors_of(event("deal", entry=...))
        assert ("freeMargin", "required") in errors_of(event("account", freeMargin=...))
        assert ("priceOpen", "required") in errors_of(event("position", priceOpen=...))

    def test_parse_rejects_bad_snapshot_position(self) -> None:
        bad = [{"ticket": 1, "symbol": "EURUSD", "side": "long", "volume": 0.1, "priceOpen": 1.0, "x": 1}]
        found = errors_of(event("account", positions=bad))
        assert {("positions[0].side", "enum"), ("positions[0].x", "unknown")} <= found
        assert ("positions[0]", "type") in errors_of(event("account", positions=[1]))

    @pytest.mark.parametrize("value", [math.nan, math.inf, True, "1.0"])
    def test_parse_rejects_non_numbers(self, value: object) -> None:
        assert any(f == "equity" for f, _ in errors_of(event("account", equity=value)))


class TestStatus:
    def test_status_moves_only_forward(self) -> None:
        order = list(DeliveryStatus)
        for old, new in itertools.product(order, order):
            assert can_transition(old, new) == (new.rank > old.rank)
        assert can_transition(None, DeliveryStatus.DELIVERED)

    def test_status_happy_path(self) -> None:
        path = [
            DeliveryStatus.PENDING,
            DeliveryStatus.DELIVERED,
            DeliveryStatus.ACKED,
            DeliveryStatus.EXECUTED,
        ]
        assert all(can_transition(a, b) for a, b in itertools.pairwise(path))

    def test_status_final_states_do_not_move(self) -> None:
        for final in (DeliveryStatus.EXECUTED, DeliveryStatus.REJECTED):
            assert final.is_final
            assert not any(can_transition(final, new) for new in DeliveryStatus)

    def test_status_late_execution_overrides_expiry(self) -> None:
        assert can_transition(DeliveryStatus.EXPIRED, DeliveryStatus.EXECUTED)
        assert not can_transition(DeliveryStatus.EXPIRED, DeliveryStatus.ACKED)

    def test_status_from_event(self) -> None:
        def status(kind: str, **changes: Any) -> DeliveryStatus | None:
            return status_from_event(parse_event(event(kind, signalId=SIGNAL_ID, **changes), NOW))

        assert status("order") is DeliveryStatus.EXECUTED
        assert status("order", state="rejected") is DeliveryStatus.REJECTED
        assert status("order", state="placed") is None  # a market order is executed when it fills
        assert status("order", state="placed", orderType="limit") is None  # executed when it fills
        assert status("order", state="cancelled") is DeliveryStatus.EXECUTED  # a `cancel` signal carried out
        assert status("order", state="expired") is None
        assert status("deal") is DeliveryStatus.EXECUTED
        assert status("account") is None
        assert status_from_event(parse_event(event("order"), NOW)) is None


def test_event_csv_row_follows_columns() -> None:
    row = event_csv_row(parse_event(event("deal"), NOW).to_payload())
    assert len(row) == len(EVENT_CSV_COLUMNS)
    assert row[EVENT_CSV_COLUMNS.index("ticket")] == "99"
    assert row[EVENT_CSV_COLUMNS.index("signalId")] == ""


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
field_names = st.sampled_from(
    sorted({"id", "kind", "account", "ts", "signalId", "positions"} | {k for b in BASE.values() for k in b})
)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_parse_arbitrary_input_only_raises_event_invalid(obj: object) -> None:
    try:
        result = parse_event(obj, NOW)
    except EventInvalid as exc:
        assert exc.errors
    else:
        assert isinstance(result, TradeEvent)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(sorted(BASE)), st.dictionaries(field_names, json_values, max_size=5))
def test_parse_mutated_event_only_raises_event_invalid(kind: str, changes: dict[str, Any]) -> None:
    try:
        result = parse_event(event(kind, **changes), NOW)
    except EventInvalid as exc:
        assert exc.errors
    else:
        assert parse_event(result.to_payload(), NOW) == result
