"""Channel names and authorisation decisions."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.protocol.channels import (
    DEFAULT_POLICIES,
    Role,
    account_of,
    can_publish,
    can_subscribe,
    check_channel,
    matches_any,
)


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("signals:alpha", True),
        ("account:50123:events", True),
        ("account:50123", False),
        ("instrument:BTC-USDT:top", True),
        ("signals:", False),
        ("signals::x", False),
        ("signals:a b", False),
        ("signals:*", False),
        ("nope:x", False),
    ],
)
def test_check_channel(name: str, ok: bool) -> None:
    if ok:
        assert check_channel(name, DEFAULT_POLICIES)
    else:
        with pytest.raises(ValueError):
            check_channel(name, DEFAULT_POLICIES)


def test_patterns_treat_only_star_as_special() -> None:
    assert matches_any(("signals:*",), "signals:alpha")
    assert matches_any(("instrument:BTC-*",), "instrument:BTC-USDT:top")
    assert not matches_any(("signals:a.c",), "signals:abc")
    assert not matches_any((), "signals:x")


def test_account_channels_need_the_account() -> None:
    p = DEFAULT_POLICIES["account"]
    assert account_of("account:7:events") == "7"
    assert can_subscribe(p, Role.EA, frozenset({"7"}), (), "account:7:events")
    assert not can_subscribe(p, Role.EA, frozenset({"8"}), (), "account:7:events")
    assert can_subscribe(p, Role.DASHBOARD, frozenset({"*"}), (), "account:7:events")
    assert not can_subscribe(p, Role.ENGINE, frozenset({"7"}), (), "account:7:events")
    assert can_subscribe(p, Role.ENGINE, frozenset({"7"}), ("account:7:*",), "account:7:events")
    assert can_subscribe(p, Role.ADMIN, frozenset(), (), "account:7:events")
    assert not can_publish(p, Role.EA, frozenset({"7"}), (), "account:7:events")


def test_system_and_signals_rights() -> None:
    s = DEFAULT_POLICIES["signals"]
    assert can_publish(s, Role.ENGINE, frozenset(), ("signals:*",), "signals:a")
    assert not can_publish(s, Role.EA, frozenset(), ("signals:*",), "signals:a")
    assert can_subscribe(s, Role.DASHBOARD, frozenset(), (), "signals:a")
    sysp = DEFAULT_POLICIES["system"]
    assert not can_publish(sysp, Role.ENGINE, frozenset(), ("*",), "system:health")


@given(st.text(max_size=80))
def test_check_channel_never_crashes(name: str) -> None:
    try:
        check_channel(name, DEFAULT_POLICIES)
    except ValueError as exc:
        assert str(exc) in ("invalid_channel", "unknown_namespace")
