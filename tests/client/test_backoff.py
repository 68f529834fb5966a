from __future__ import annotations

import pytest

from bridge.client import _backoff
from bridge.client._backoff import backoff_delay, minimum_delay


class TestBackoff:
    def test_backoff_grows_exponentially_to_the_cap(self) -> None:
        bounds = [backoff_delay(n, rand=lambda: 1.0) for n in range(10)]
        assert bounds[:4] == [0.5, 1.0, 2.0, 4.0]
        assert bounds[-1] == 30.0
        assert backoff_delay(10_000, rand=lambda: 1.0) == 30.0

    def test_backoff_full_jitter_spans_zero_to_bound(self) -> None:
        assert backoff_delay(3, rand=lambda: 0.0) == 0.0
        assert backoff_delay(3, rand=lambda: 0.25) == pytest.approx(1.0)

    def test_backoff_constants_are_overridable(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(_backoff, "BACKOFF_INITIAL_DELAY", 0.1)
        monkeypatch.setattr(_backoff, "BACKOFF_MAX_DELAY", 0.3)
        assert [backoff_delay(n, rand=lambda: 1.0) for n in range(4)] == pytest.approx([0.1, 0.2, 0.3, 0.3])
        assert backoff_delay(0, rand=lambda: 1.0, initial=2.0, cap=5.0) == 2.0

    def test_backoff_floors_for_rate_limit_and_too_many_connections(self) -> None:
        assert minimum_delay(4003) == 5.0
        assert minimum_delay(4007) == 30.0
        assert minimum_delay(1001) == 0.0
        assert minimum_delay(None) == 0.0
