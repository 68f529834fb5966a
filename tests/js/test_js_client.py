"""Runs the Node tests of the dashboard's models (tests/js/test_model.mjs).

The JavaScript client's own tests moved with its source to the npm package clients/js
(clients/js/test/, run by tests/jsclient/).

Needs ``node`` (>= 20) and ``npm ci`` in tests/js. Without them the test skips with the reason,
unless BRIDGE_REQUIRE_SERVICES is set, where it fails instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
TIMEOUT_FACTOR = float(os.environ.get("MTBRIDGE_TESTS_TIMEOUT_FACTOR", "1"))


def _missing() -> str | None:
    if shutil.which("node") is None:
        return "node is not installed"
    if not (HERE / "node_modules" / "ws").is_dir():
        return "run `npm ci` in tests/js (the ws package is missing)"
    return None


def test_dashboard_models() -> None:
    reason = _missing()
    if reason is not None:
        if os.environ.get("BRIDGE_REQUIRE_SERVICES"):
            pytest.fail(reason)
        pytest.skip(reason)
    env = dict(os.environ)
    env["MTBRIDGE_BIN"] = str(Path(sys.executable).parent / "mtbridge")
    proc = subprocess.run(
        [
            "node",
            "--test",
            "--test-reporter=spec",
            str(HERE / "test_model.mjs"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600 * TIMEOUT_FACTOR,
        check=False,
    )
    assert proc.returncode == 0, f"node --test failed:\n{proc.stdout[-8000:]}\n{proc.stderr[-4000:]}"
