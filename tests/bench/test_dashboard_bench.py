"""`mtbridge bench dashboard`, briefly: the harness drives a hub, an engine, an EA and Chromium to
the end and reports every figure. Nothing here asserts a speed (docs/benchmarks.md holds those)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bridge.bench.dashboard import CHROMIUM, COLUMNS

pytestmark = pytest.mark.browser

BIN = str(Path(sys.executable).parent / "mtbridge")


def test_bench_dashboard_runs_to_the_end_and_reports_every_figure(tmp_path: Path) -> None:
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed")
    out = tmp_path / "dash.json"
    done = subprocess.run(
        [BIN, "bench", "dashboard", "--rate", "50", "--measure", "2", "--eas", "2", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    row = json.loads(out.read_text())["scenarios"]["dashboard"]
    assert set(COLUMNS) <= set(row)
    # Exact counts: 100 signals to 2 accounts, each delivered, acked and executed, all in the page.
    assert row["signals"] == 100
    assert row["final_deliveries"] == 200
    assert row["status_changes"] == 600
    assert row["frames"] > 0
    assert row["dom_rows"] < 200  # the signal table stayed virtualised
