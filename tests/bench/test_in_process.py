"""The scenarios that need no load generator, through the one entry point `mtbridge bench <scenario>`:
`store` (the store's writes alone), `marketdata` (one adapter on a recorded session) and `parse`
(validation per call). Each runs to the end and writes every figure; nothing here asserts a speed
(docs/benchmarks.md holds those)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bridge.bench.marketdata import DEFAULT_FIXTURES
from bridge.bench.parse import CASES
from bridge.bench.runner import SCENARIOS, SCENARIOS_BY_NAME

BIN = str(Path(sys.executable).parent / "mtbridge")


def _bench(*args: str) -> tuple[str, dict[str, object]]:
    out_dir = Path(args[-1])
    out = out_dir / "result.json"
    done = subprocess.run(
        [BIN, "bench", *args[:-1], "--out", str(out)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    doc = json.loads(out.read_text())
    assert doc["command"].startswith("mtbridge bench ")
    scenarios = doc["scenarios"]
    assert isinstance(scenarios, dict)
    return done.stdout, scenarios


def test_in_process_scenarios_run_only_when_named() -> None:
    for name in ("store", "marketdata", "parse"):
        assert name in SCENARIOS_BY_NAME
        assert name not in SCENARIOS


def test_bench_store_commits_every_call_of_each_scenario(tmp_path: Path) -> None:
    stdout, scenarios = _bench(
        "store",
        "--count",
        "300",
        "--concurrency",
        "20",
        "--scenario",
        "record",
        "--scenario",
        "chain",
        str(tmp_path),
    )
    result = scenarios["store"]
    assert isinstance(result, dict)
    assert result["database"] == "sqlite"
    rows = result["rows"]
    assert [r["scenario"] for r in rows] == ["record", "chain"]
    for row in rows:
        assert row["count"] == 300 and row["concurrency"] == 20
        assert row["rows_per_s"] > 0 and row["cpu_us_per_row"] > 0
    assert "record:" in stdout and "chain:" in stdout


def test_bench_marketdata_replays_the_recorded_okx_session_in_hub(tmp_path: Path) -> None:
    if not (DEFAULT_FIXTURES / "recorded" / "OKX.ws.1.0").exists():
        pytest.skip("recorded exchange sessions are not in this checkout")
    _, scenarios = _bench("marketdata", "--venue", "okx", "--in-hub", "--subscribers", "3", str(tmp_path))
    result = scenarios["marketdata"]
    assert isinstance(result, dict)
    assert result["venue"] == "okx"
    assert result["checksums_verified"] == 290
    assert result["hub_publications"] == result["published"]
    assert result["subscribers"] == 3


def test_bench_parse_times_every_case(tmp_path: Path) -> None:
    _, scenarios = _bench("parse", "--repeat", "1", "--min-seconds", "0.01", str(tmp_path))
    result = scenarios["parse"]
    assert isinstance(result, dict)
    assert [r["case"] for r in result["rows"]] == [name for name, _ in CASES]
    assert all(r["us_per_call"] > 0 for r in result["rows"])
