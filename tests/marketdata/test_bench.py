"""The throughput benchmark runs end to end (figures are recorded in docs, never asserted)."""

from __future__ import annotations

import importlib

from bridge.bench.marketdata import CountingSink, bench_adapter_throughput
from bridge.marketdata import metrics
from tests.support.marketdata import FIXTURES, require_fixtures


async def test_bench_replays_the_recorded_okx_session() -> None:
    require_fixtures()
    sink = CountingSink()
    result = await bench_adapter_throughput("okx", sink=sink, fixtures=FIXTURES)
    assert result["checksums_verified"] == 290
    assert result["published"] == sink.count > 0
    assert isinstance(result["normalised_per_s"], int)


def test_metrics_module_can_be_imported_twice() -> None:
    before = metrics.RESYNCS
    reloaded = importlib.reload(metrics)
    assert reloaded.RESYNCS is before
