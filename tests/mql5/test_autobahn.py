"""Conformance: the shipped WebSocketClient.mqh, compiled by the harness, against the Autobahn client cases.

kosoku's fuzzing server serves every non-compression case; tests/mql5/programs/AutobahnClient.mq5
(which includes the shipped header unchanged) runs them all from OnTimer, echoing every message.
Both with and without the "SocketIsReadable returns 1 on an empty buffer" quirk emulated.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.mql5 import PROGRAMS
from tests.support.ports import free_port

pytestmark = [pytest.mark.mql5, pytest.mark.slow]

KOSOKU = Path(sys.executable).with_name("kosoku")
ACCEPTABLE = {"OK", "NON-STRICT", "INFORMATIONAL"}


def _start_kosoku(outdir: Path) -> tuple[subprocess.Popen[str], int]:
    for _attempt in range(5):
        port = free_port()
        proc = subprocess.Popen(
            [
                str(KOSOKU),
                "-m",
                "fuzzingserver",
                f"127.0.0.1:{port}",
                "-o",
                str(outdir),
                "-x",
                "12.*",
                "-x",
                "13.*",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stderr is not None
        line = proc.stderr.readline()
        if "listening" in line:
            return proc, port
        proc.kill()
        proc.wait()
    raise AssertionError("kosoku did not start")


@pytest.mark.parametrize("quirk", [False, True], ids=["plain", "readable-quirk"])
def test_autobahn_client_cases(mql5_build: Callable[..., Path], tmp_path: Path, quirk: bool) -> None:
    binary = mql5_build(PROGRAMS / "AutobahnClient.mq5")
    outdir = tmp_path / "reports"
    server, port = _start_kosoku(outdir)
    env = dict(
        os.environ,
        MQL_INPUT_ServerUrl=f"ws://127.0.0.1:{port}",
        MQL_TIMER_MIN_MS="1",
        MQL_INPUT_Agent="mtbridge-mql5",
    )
    env.pop("MQL_QUIRK_READABLE_EMPTY", None)
    if quirk:
        env["MQL_QUIRK_READABLE_EMPTY"] = "1"
    try:
        client = subprocess.run([str(binary)], env=env, capture_output=True, text=True, timeout=900)
        out, err = server.communicate(timeout=120)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    assert client.returncode == 0, client.stdout[-3000:] + client.stderr[-3000:]
    assert server.returncode == 0, out[-5000:] + err[-5000:]
    index = json.loads((outdir / "index.json").read_text())
    cases = index["mtbridge-mql5"]
    assert len(cases) >= 290
    assert not any(case_id.startswith(("12.", "13.")) for case_id in cases)
    bad = {
        cid: c
        for cid, c in cases.items()
        if c["behavior"] not in ACCEPTABLE or c["behaviorClose"] not in ACCEPTABLE
    }
    assert not bad, bad
    assert f"after case {len(cases) + 1} of {len(cases)}" in client.stdout


def test_kosoku_report_counts_failures(tmp_path: Path) -> None:
    """The gate above means something: a client that does not echo fails kosoku's run."""
    server, port = _start_kosoku(tmp_path / "reports")
    import websocket  # websocket-client, a dev dependency

    try:
        ws = websocket.create_connection(f"ws://127.0.0.1:{port}/getCaseCount", timeout=10)
        ws.recv()
        ws.close()
        ws = websocket.create_connection(f"ws://127.0.0.1:{port}/runCase?case=1&agent=mute", timeout=10)
        ws.recv()  # the case's first message has come: a mute client never echoes it
        ws.close()
        ws = websocket.create_connection(f"ws://127.0.0.1:{port}/updateReports?agent=mute", timeout=10)
        ws.close()
        server.communicate(timeout=60)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    assert server.returncode != 0
