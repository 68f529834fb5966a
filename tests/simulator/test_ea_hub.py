"""The simulated EA and the CLI against a real hub process, through EA restarts and a hub SIGKILL."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge.cli.client import load_payloads, register
from bridge.client import connect
from bridge.simulator import SimulatedEA, load_state, state_path
from tests.support.factories import numbered_signal
from tests.support.hub import HubProcess
from tests.support.waits import WAIT as TIMEOUT
from tests.support.waits import until


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[HubProcess]:
    h = HubProcess(tmp_path / "hub")
    h.data_dir.mkdir()
    h.start()
    yield h
    h.stop(signal.SIGKILL)


def sig(n: int, action: str = "open") -> dict[str, Any]:
    if action == "open":
        return numbered_signal(n, volume=0.01)
    return numbered_signal(n, action=action, side=..., orderType=..., volume=...)  # ... leaves it out


async def test_ea_executes_each_signal_once_across_restarts(hub: HubProcess, tmp_path: Path) -> None:
    eng = hub.cli_token(
        "--role", "engine", "--sub", "eng", "--publish", "signals:*", "--subscribe", "signals:*"
    )
    ea_token = hub.cli_token(
        "--role", "ea", "--sub", "ea-50123", "--account", "50123", "--subscribe", "signals:*"
    )
    dash = hub.cli_token("--role", "dashboard", "--sub", "ops", "--account", "*")
    state_dir = tmp_path / "ea"
    opts: dict[str, Any] = {"backoff_initial": 0.2, "backoff_max": 1.0}

    def new_ea() -> SimulatedEA:
        return SimulatedEA(
            hub.url,
            ea_token,
            "50123",
            ["alpha"],
            state_dir,
            from_start=True,
            snapshot_interval=None,
            client_options=opts,
        )

    engine = await connect(hub.url, eng, retry=True, **opts)
    ea = new_ea()
    await ea.start()
    try:
        for n in range(5):
            await engine.publish("signals:alpha", sig(n))
        await until(lambda: len(ea.state.signals) == 5)
        await ea.stop()  # the EA goes away; signals keep coming
        for n in range(5, 10):
            await engine.publish("signals:alpha", sig(n))
        hub.stop(signal.SIGKILL)  # and the hub dies
        hub.start()
        ea = new_ea()
        await ea.start()
        for n in range(10, 15):
            await engine.publish("signals:alpha", sig(n))
        await until(lambda: len(ea.state.signals) == 15)
        await asyncio.wait_for(ea.drain(), TIMEOUT * 3)
    finally:
        await ea.stop()
        await engine.close()

    state = load_state(state_path(state_dir, "50123"), "50123")
    assert list(state.signals) == [sig(n)["id"] for n in range(15)]  # in publication order, once each
    assert len(state.account.positions) == 15 and state.outbox == []

    viewer = await connect(hub.url, dash)
    try:
        sub = await viewer.subscribe("account:50123:events", since=0)
        stored: list[dict[str, Any]] = []
        async with asyncio.timeout(TIMEOUT * 3):
            while len(stored) < 45:
                stored.append((await sub.__anext__()).payload)
    finally:
        await viewer.close()
    ids = [e["id"] for e in stored]
    assert len(set(ids)) == 45  # 3 events per signal, each stored exactly once
    assert {e["signalId"] for e in stored} == {sig(n)["id"] for n in range(15)}


def run_cli(*argv: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    code = (
        "import argparse,sys\n"
        "from bridge.cli.client import register\n"
        "p=argparse.ArgumentParser(prog='mtbridge');s=p.add_subparsers(dest='command',required=True);register(s)\n"
        "a=p.parse_args(sys.argv[1:]);raise SystemExit(a.func(a))\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code, *argv], input=stdin, capture_output=True, text=True, timeout=TIMEOUT * 6
    )


def test_cli_publish_and_tail(hub: HubProcess) -> None:
    eng = hub.cli_token(
        "--role", "engine", "--sub", "eng", "--publish", "signals:*", "--subscribe", "signals:*"
    )
    one = run_cli(
        "publish",
        "--hub",
        hub.url,
        "--token",
        eng,
        "--channel",
        "signals:alpha",
        "--payload",
        json.dumps(sig(0)),
    )
    assert one.returncode == 0, one.stderr
    assert json.loads(one.stdout) == {
        "channel": "signals:alpha",
        "offset": 1,
        "epoch": json.loads(one.stdout)["epoch"],
        "duplicate": False,
    }
    lines = "\n".join(json.dumps(sig(n)) for n in range(3))  # JSON lines on stdin; sig(0) is a duplicate
    more = run_cli("publish", "--hub", hub.url, "--token", eng, stdin=lines)
    assert more.returncode == 0, more.stderr
    results = [json.loads(line) for line in more.stdout.splitlines()]
    assert [(r["offset"], r["duplicate"]) for r in results] == [(1, True), (2, False), (3, False)]
    bad = run_cli(
        "publish", "--hub", hub.url, "--token", eng, "--payload", json.dumps({**sig(9), "volume": -1})
    )
    assert bad.returncode == 1 and json.loads(bad.stderr)["error"] == "validation_failed"
    tail = run_cli("tail", "signals:alpha", "--hub", hub.url, "--token", eng, "--since", "1", "--count", "2")
    assert tail.returncode == 0, tail.stderr
    assert [json.loads(line)["offset"] for line in tail.stdout.splitlines()] == [2, 3]


def test_cli_register_adds_the_subcommands() -> None:
    parser = argparse.ArgumentParser(prog="mtbridge")
    register(parser.add_subparsers(dest="command"))
    for argv in (
        ["publish", "--payload", "{}"],
        ["tail", "signals:a"],
        ["demo", "--duration", "1"],
        ["simulate-ea", "--account", "1", "--state-dir", "d"],
    ):
        args = parser.parse_args(argv)
        assert callable(args.func)


def test_cli_load_payloads_forms() -> None:
    assert load_payloads('{"a":1}') == [{"a": 1}]
    assert load_payloads('[{"a":1},{"b":2}]') == [{"a": 1}, {"b": 2}]
    assert load_payloads('{"a":1}\n{"b":2}\n') == [{"a": 1}, {"b": 2}]
    with pytest.raises(ValueError):
        load_payloads("[1]")
