"""`mtbridge bench all --quick` against the hub only: it completes and writes every figure.

Nothing here asserts a speed: figures go to docs/benchmarks.md, not into tests.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bridge.bench.report import COLUMNS
from bridge.bench.runner import SCENARIOS

pytestmark = pytest.mark.skipif(
    shutil.which("gcc") is None or not sys.platform.startswith("linux"),
    reason="the load generator needs gcc and Linux (epoll, /proc)",
)

#: Generous: the run takes under 2 minutes on a quiet 2-core machine.
TIMEOUT_S = 600
#: Scenarios whose hub side may legitimately report "not available" (durable paths).
MAY_BE_UNAVAILABLE = {"signals", "ingest"}


def test_bench_all_quick_writes_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bridge.cli", "bench", "all", "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    assert doc["quick"] is True
    assert set(doc["scenarios"]) == set(SCENARIOS)
    for scenario, entry in doc["scenarios"].items():
        if entry["status"] == "not available":
            assert scenario in MAY_BE_UNAVAILABLE, entry
            assert entry["errors"], entry
            continue
        assert entry["status"] == "ok", entry
        assert entry["rows"], scenario
        for row in entry["rows"]:
            for column in COLUMNS[scenario]:
                assert column in row, (scenario, column, row)
                value = row[column]
                if column in ("target", "encoding", "database"):
                    assert isinstance(value, str) and value
                elif column == "kept_up":
                    assert isinstance(value, bool)
                else:
                    numeric = isinstance(value, int | float) and not isinstance(value, bool)
                    assert numeric, (scenario, column, row)
    relay = [r for s in ("fanout", "latency", "connections") for r in doc["scenarios"][s]["rows"]]
    assert {r["target"] for r in relay} == {"mtbridge"}
    # printed as tables too
    for scenario in ("fanout", "latency", "connections"):
        assert f"== {scenario} ==" in proc.stdout


def test_ingest_runs_with_the_given_eas_window_and_rate(tmp_path: Path) -> None:
    out = tmp_path / "ingest.json"
    options = ["--quick", "--eas", "6", "--window", "8", "--rate", "3000", "--out", str(out)]
    proc = subprocess.run(
        [sys.executable, "-m", "bridge.cli", "bench", "ingest", *options],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (row,) = json.loads(out.read_text())["scenarios"]["ingest"]["rows"]
    assert (row["database"], row["connections"], row["window"], row["errors"]) == ("sqlite", 6, 8, 0)
    assert row["rate"] == 3000
    assert row["events_per_s"] > 0 and row["disconnected"] == 0


def test_a_rate_eas_or_window_of_zero_or_less_is_refused() -> None:
    refused = [("--rate", v) for v in ("0", "-5", "nan", "inf")] + [("--eas", "0"), ("--window", "-1")]
    for option, value in refused:
        proc = subprocess.run(
            [sys.executable, "-m", "bridge.cli", "bench", "ingest", option, value],
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            check=False,
        )
        assert proc.returncode == 2 and f"{option}: must be a finite number above 0" in proc.stderr, value
