"""``mtbridge demo``: its printed URL and token log into the dashboard in Chromium; a busy port is
refused with one line and exit status 2 before anything is started; ``--open`` runs the browser."""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge.simulator import demo
from tests.support.browser import WAIT_MS, WAIT_S
from tests.support.dashboard import BIN, wait_live
from tests.support.ports import free_port
from tests.support.waits import FACTOR, wait_until


class DemoProcess:
    """``mtbridge demo`` in a child process, its stdout read line by line by a thread."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [BIN, "demo", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, pattern: str) -> re.Match[str]:
        rx = re.compile(pattern)
        for line in self.seen:
            if m := rx.search(line):
                return m
        while True:
            try:
                line = self.lines.get(timeout=WAIT_S * 2)
            except queue.Empty:
                raise AssertionError(f"demo printed no line matching {pattern!r}: {self.seen}") from None
            self.seen.append(line)
            if m := rx.search(line):
                return m

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30 * FACTOR)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


@pytest.fixture
def fake_browser(tmp_path: Path) -> Iterator[tuple[dict[str, str], Path]]:
    """``$BROWSER`` pointing at a script that records the URL it is asked to open."""
    opened = tmp_path / "opened.txt"
    script = tmp_path / "browser.sh"
    script.write_text(f'#!/bin/sh\nprintf "%s" "$1" > "{opened}"\n')
    script.chmod(0o755)
    yield {**os.environ, "BROWSER": str(script)}, opened


@pytest.mark.browser
def test_demo_prints_a_url_and_token_that_log_into_the_dashboard(
    page: Any, tmp_path: Path, fake_browser: tuple[dict[str, str], Path]
) -> None:
    env, opened = fake_browser
    data = tmp_path / "demo-data"
    run = DemoProcess("--data-dir", str(data), "--interval", "0.5", "--open", env=env)
    try:
        url = run.wait_for(r"dashboard:\s+(http://\S+)").group(1)
        token = run.wait_for(r"admin token:\s+(\S+)").group(1)
        printed_dir = run.wait_for(r"data:\s+(\S+)").group(1)
        assert Path(printed_dir) == data.resolve()
        # --open ran the system browser ($BROWSER here) on the dashboard.
        wait_until(lambda: opened.exists() and opened.read_text() == url, "the browser to be started")
        run.wait_for(r"simulated EAs connected")

        page.goto(url)
        page.fill("#token-input", token)
        page.click("#login-submit")
        wait_live(page)
        assert page.text_content("#who") == "demo-admin · admin"
        # The demo's signals reach the page's signal table.
        page.wait_for_selector("#signals-vt .vt-row[data-id]", timeout=WAIT_MS)
    finally:
        code = run.stop()
    assert code in (0, 130), run.proc.stderr.read() if run.proc.stderr else ""


def test_demo_refuses_a_busy_port_with_one_line_and_status_2(tmp_path: Path) -> None:
    data = tmp_path / "demo-data"
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        done = subprocess.run(
            [BIN, "demo", "--port", str(port), "--data-dir", str(data), "--duration", "1"],
            capture_output=True,
            text=True,
            timeout=60 * FACTOR,
        )
        # Nothing connected to the port's holder: no connection is waiting to be accepted.
        holder.setblocking(False)
        with pytest.raises(BlockingIOError):
            holder.accept()
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert f"port {port}" in lines[0] and "in use" in lines[0]
    # Refused before anything was started: no data directory, no hub log.
    assert not data.exists()


def test_check_port_free_accepts_a_free_port_and_refuses_a_listening_one() -> None:
    port = free_port()
    demo.check_port_free(port)
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
        s.listen()
        with pytest.raises(demo.PortBusy, match="in use"):
            demo.check_port_free(port)


def test_open_dashboard_says_so_when_there_is_no_browser(monkeypatch: pytest.MonkeyPatch) -> None:
    def none() -> Any:
        raise demo.webbrowser.Error("could not locate runnable browser")

    monkeypatch.setattr(demo.webbrowser, "get", none)
    said: list[str] = []
    assert demo.open_dashboard("http://127.0.0.1:1/", said.append) is False
    assert said == ["no web browser found on this system: open http://127.0.0.1:1/ yourself"]
