"""Signal schema: strict validation, cross-field rules, canonical payload; property test of the parser."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.protocol.signals import (
    MAX_COMMENT_LENGTH,
    SIGNAL_FIELDS,
    Signal,
    SignalInvalid,
    parse_signal,
)
from tests.support.factories import signal

NOW = 1_700_000_000.0
NOW_MS = int(NOW * 1000)
SIGNAL_ID = "0b7c8e2a-5d4f-4c3b-9a1e-2f6d8c0b1a93"


def example(**changes: Any) -> dict[str, Any]:
    """The issue's example signal; a change given as ``...`` removes that field."""
    return signal(sid=SIGNAL_ID, **{"ttl": 30, **changes})


def errors_of(obj: object) -> set[tuple[str, str]]:
    with pytest.raises(SignalInvalid) as info:
        parse_signal(obj, NOW)
    return {(e.field, e.code) for e in info.value.errors}


class TestAccept:
    def test_parse_accepts_issue_example(self) -> None:
        signal = parse_signal(example(), NOW)
        assert signal.id == SIGNAL_ID
        assert signal.accounts == ("50123",)
        assert signal.volume == pytest.approx(0.10)
        assert signal.created_at == NOW_MS
        assert signal.expires_at == NOW_MS + 30_000
        assert signal.channel == "signals:alpha"

    def test_to_payload_resolves_ttl_into_integer_milliseconds(self) -> None:
        payload = parse_signal(example(), NOW).to_payload()
        assert "ttl" not in payload
        assert payload["createdAt"] == NOW_MS and isinstance(payload["createdAt"], int)
        assert payload["expiresAt"] == NOW_MS + 30_000 and isinstance(payload["expiresAt"], int)
        assert payload["orderType"] == "market"
        assert set(payload) <= SIGNAL_FIELDS

    def test_to_payload_round_trips_through_parse(self) -> None:
        first = parse_signal(example(comment="hello", magic=7, deviation=10), NOW)
        again = parse_signal(first.to_payload(), NOW + 1)
        assert again == first

    def test_parse_normalises_uuid_case(self) -> None:
        assert parse_signal(example(id=SIGNAL_ID.upper()), NOW).id == SIGNAL_ID

    def test_parse_accepts_expires_at_and_created_at(self) -> None:
        signal = parse_signal(example(ttl=..., expiresAt=NOW_MS + 5000, createdAt=NOW_MS - 1000), NOW)
        assert signal.expires_at == NOW_MS + 5000
        assert signal.created_at == NOW_MS - 1000

    def test_parse_accepts_groups_only(self) -> None:
        signal = parse_signal(example(accounts=..., groups=["vip"]), NOW)
        assert signal.groups == ("vip",) and signal.accounts == ()

    def test_parse_accepts_limit_with_price_between_stops(self) -> None:
        signal = parse_signal(example(orderType="limit", price=1.08), NOW)
        assert signal.price == pytest.approx(1.08)

    def test_parse_accepts_sell_with_inverted_stops(self) -> None:
        assert parse_signal(example(side="sell", sl=1.09, tp=1.07), NOW).side == "sell"

    def test_parse_accepts_close_all_without_symbol(self) -> None:
        signal = parse_signal(
            example(action="close_all", symbol=..., side=..., orderType=..., volume=..., sl=..., tp=...),
            NOW,
        )
        assert signal.symbol is None and signal.action == "close_all"

    def test_parse_accepts_modify_with_stops(self) -> None:
        obj = example(action="modify", orderType=..., volume=...)
        assert parse_signal(obj, NOW).action == "modify"

    def test_parse_accepts_integral_float_for_integer_field(self) -> None:
        assert parse_signal(example(magic=12.0), NOW).magic == 12

    def test_is_expired(self) -> None:
        signal = parse_signal(example(), NOW)
        assert not signal.is_expired(NOW_MS + 29_999)
        assert signal.is_expired(NOW_MS + 30_000)


class TestReject:
    def test_parse_rejects_non_object(self) -> None:
        assert errors_of([1, 2]) == {("", "type")}

    def test_parse_rejects_unknown_field(self) -> None:
        assert ("extra", "unknown") in errors_of(example(extra=1))

    def test_parse_rejects_bad_uuid(self) -> None:
        assert ("id", "format") in errors_of(example(id="0b7c..."))

    def test_parse_requires_side_for_open(self) -> None:
        assert ("side", "required") in errors_of(example(side=...))

    def test_parse_requires_price_for_pending_orders(self) -> None:
        assert ("price", "required") in errors_of(example(orderType="stop"))

    def test_parse_requires_a_target(self) -> None:
        assert ("accounts", "required") in errors_of(example(accounts=...))
        assert ("accounts", "required") in errors_of(example(accounts=[], groups=[]))

    def test_parse_rejects_ttl_and_expires_at_together(self) -> None:
        assert ("expiresAt", "conflict") in errors_of(example(expiresAt=NOW_MS + 1000))

    def test_parse_requires_an_expiry(self) -> None:
        assert ("ttl", "required") in errors_of(example(ttl=...))

    def test_parse_rejects_already_expired(self) -> None:
        assert ("expiresAt", "expired") in errors_of(example(ttl=..., expiresAt=NOW_MS - 1))
        assert ("ttl", "expired") in errors_of(example(createdAt=NOW_MS - 60_000))

    def test_parse_rejects_created_at_in_the_future(self) -> None:
        assert ("createdAt", "range") in errors_of(example(createdAt=NOW_MS + 3_600_000))

    @pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
    def test_parse_rejects_non_finite_numbers(self, value: float) -> None:
        assert ("volume", "type") in errors_of(example(volume=value))

    @pytest.mark.parametrize("field", ["volume", "sl", "ttl", "magic", "deviation"])
    def test_parse_rejects_booleans_as_numbers(self, field: str) -> None:
        assert (field, "type") in errors_of(example(**{field: True}))

    @pytest.mark.parametrize("volume", [0, -1, 10_001, "0.1"])
    def test_parse_rejects_bad_volume(self, volume: object) -> None:
        assert any(f == "volume" for f, _ in errors_of(example(volume=volume)))

    def test_parse_rejects_non_digit_login(self) -> None:
        assert ("accounts[0]", "format") in errors_of(example(accounts=["50a23"]))
        assert ("accounts[1]", "duplicate") in errors_of(example(accounts=["1", "1"]))
        assert ("accounts[0]", "type") in errors_of(example(accounts=[50123]))

    def test_parse_rejects_long_comment(self) -> None:
        assert ("comment", "too_long") in errors_of(example(comment="x" * (MAX_COMMENT_LENGTH + 1)))
        assert ("comment", "format") in errors_of(example(comment="a\nb"))

    def test_parse_rejects_stops_on_wrong_side(self) -> None:
        assert ("sl", "conflict") in errors_of(example(sl=1.09, tp=1.07))
        assert ("price", "conflict") in errors_of(example(orderType="limit", price=1.2))

    def test_parse_rejects_volume_for_modify(self) -> None:
        assert ("volume", "not_allowed") in errors_of(example(action="modify", orderType=...))

    def test_parse_requires_something_to_modify(self) -> None:
        obj = example(action="modify", orderType=..., volume=..., sl=..., tp=...)
        assert ("sl", "required") in errors_of(obj)

    def test_parse_reports_every_error_at_once(self) -> None:
        found = errors_of({"id": 1, "strategy": "", "action": "jump", "ttl": 0})
        assert {("id", "type"), ("strategy", "format"), ("action", "enum"), ("ttl", "range")} <= found

    def test_parse_rejects_huge_integers(self) -> None:
        assert ("magic", "range") in errors_of(example(magic=2**70))
        assert ("volume", "range") in errors_of(example(volume=10**400))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_parse_arbitrary_input_only_raises_signal_invalid(obj: object) -> None:
    try:
        result = parse_signal(obj, NOW)
    except SignalInvalid as exc:
        assert exc.errors
    else:
        assert isinstance(result, Signal)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.sampled_from(sorted(SIGNAL_FIELDS)), json_values, max_size=6))
def test_parse_mutated_signal_only_raises_signal_invalid(changes: dict[str, Any]) -> None:
    obj = example(**changes)
    try:
        result = parse_signal(obj, NOW)
    except SignalInvalid as exc:
        assert exc.errors
    else:
        assert isinstance(result, Signal)
        assert result.expires_at > NOW_MS
        assert parse_signal(result.to_payload(), NOW) == result
