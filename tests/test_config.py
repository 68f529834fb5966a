"""Limits are declared once (HubLimits): every settable one is a setting with the same default and
bounds, reaches the hub, and is documented in docs/configuration.md with its default."""

from __future__ import annotations

import re
from dataclasses import MISSING, fields
from pathlib import Path

import pytest
from pydantic import ValidationError

from bridge.config import Settings, load_settings
from bridge.hub.limits import (
    DEFAULT_BODY_TIMEOUT,
    DEFAULT_HANDSHAKE_TIMEOUT,
    DEFAULT_MAX_REQUEST_BYTES,
    NULLABLE_LIMITS,
    HubLimits,
    settable_limits,
)

DOCS = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"
SETTABLE = [f.name for f in settable_limits()]
FIXED = [f.name for f in fields(HubLimits) if f.name not in SETTABLE]


def _documented() -> dict[str, str]:
    """``| `name` | `default` | ... |`` rows of docs/configuration.md."""
    rows = re.findall(r"^\| `([a-z_]+)` \| `([^`]*)`", DOCS.read_text(encoding="utf-8"), re.MULTILINE)
    return dict(rows)


def test_the_settable_limits_are_settings_and_the_fixed_ones_are_not() -> None:
    assert set(SETTABLE) <= set(Settings.model_fields)
    assert not set(FIXED) & set(Settings.model_fields)
    for f in settable_limits():
        assert Settings.model_fields[f.name].default == f.default, f.name
    assert Settings().hub_limits() == HubLimits()


@pytest.mark.parametrize("name", SETTABLE)
def test_every_settable_limit_reaches_the_hub(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    default = getattr(HubLimits(), name)
    value = int(default) + 1 if isinstance(default, int) else float(default) + 0.5
    monkeypatch.setenv(f"MTBRIDGE_{name.upper()}", str(value))
    limits = load_settings(None).hub_limits()
    assert getattr(limits, name) == value
    assert limits == HubLimits(**{name: value})


def test_bounds_come_with_the_limit() -> None:
    with pytest.raises(ValidationError):
        load_settings(None, drain_window=601)


@pytest.mark.parametrize("name", SETTABLE + FIXED)
def test_every_limit_is_documented_with_its_default(name: str) -> None:
    documented = _documented()
    assert name in documented, f"{name} is missing from docs/configuration.md"
    default = next(f.default for f in fields(HubLimits) if f.name == name)
    assert default is not MISSING and default is not None
    assert float(documented[name]) == float(default), name


def test_the_http_limits_are_documented_with_their_defaults() -> None:
    documented = _documented()
    assert float(documented["http_header_timeout"]) == DEFAULT_HANDSHAKE_TIMEOUT
    assert float(documented["http_body_timeout"]) == DEFAULT_BODY_TIMEOUT
    assert float(documented["max_request_bytes"]) == DEFAULT_MAX_REQUEST_BYTES


@pytest.mark.parametrize("name", NULLABLE_LIMITS)
def test_an_empty_setting_disables_a_nullable_limit(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/configuration.md: "empty disables" (for example ``MTBRIDGE_RATE_PER_SECOND=``)."""
    monkeypatch.setenv(f"MTBRIDGE_{name.upper()}", "")
    assert getattr(load_settings().hub_limits(), name) is None
