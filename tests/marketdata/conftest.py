"""Fixtures for the market-data tests."""

from __future__ import annotations

import pytest

from tests.support.marketdata import RecordingSink


@pytest.fixture
def sink() -> RecordingSink:
    return RecordingSink()
