"""The MQL5 side of the suite (tests/mql5): where the shipped sources, the test programs and the
harness are, and the end-to-end pieces the EA tests share: the compiled EA run as a terminal would
run it (:class:`EA`), the engine and operator in front of a hub's REST API (:class:`Bridge`), the
EA's inputs and the exactly-once check. The hub is :class:`tests.support.hub.HubProcess`.
"""

from __future__ import annotations

import functools
import hashlib
import os
import signal
import subprocess
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from tests.support.hub import ROOT, HubProcess
from tests.support.waits import wait_until

__all__ = [
    "ACCOUNT",
    "EA",
    "EXPERTS",
    "HARNESS",
    "INCLUDE",
    "MQL5_TESTS",
    "PROGRAMS",
    "TRADE_CONFIG",
    "WAIT",
    "Bridge",
    "assert_exactly_once",
    "ea_inputs",
    "until_ea",
]

MQL5_TESTS = ROOT / "tests" / "mql5"
HARNESS = MQL5_TESTS / "harness"
PROGRAMS = MQL5_TESTS / "programs"
INCLUDE = ROOT / "mql5" / "Include"
EXPERTS = ROOT / "mql5" / "Experts"

ACCOUNT = "50123"
TRADE_CONFIG = """\
account login=50123 balance=10000 currency=USD leverage=100
symbol EURUSD bid=1.10000 ask=1.10020 digits=5 vol_min=0.01 vol_max=100 vol_step=0.01 contract=100000
symbol GBPUSD bid=1.25000 ask=1.25030 digits=5 vol_min=0.01 vol_max=100 vol_step=0.01 contract=100000
symbol USDJPY bid=150.000 ask=150.020 digits=3 vol_min=0.01 vol_max=100 vol_step=0.01 contract=100000
"""
#: A compiled EA under AddressSanitizer on two shared cores takes seconds per step.
WAIT = 90.0
#: :func:`tests.support.waits.wait_until` at the EA tests' pace: polls of the hub's REST API every 0.2 s.
until_ea = functools.partial(wait_until, timeout=WAIT, interval=0.2)


def harness_env(root: Path, inputs: Mapping[str, str], **extra: str) -> dict[str, str]:
    """The environment of an EA binary built by the harness: its terminal folders under ``root``
    (common and files, the trade server's config and state), a 10 ms timer floor, leak checks, and
    each EA input as ``MQL_INPUT_<name>``."""
    env = dict(os.environ)
    env.update(
        {
            "MQL_COMMON_DIR": str(root / "common"),
            "MQL_FILES_DIR": str(root / "files"),
            "MQL_TRADE_CONFIG": str(root / "trade.cfg"),
            "MQL_TRADE_STATE": str(root / "trade.state"),
            "MQL_TIMER_MIN_MS": "10",
            "ASAN_OPTIONS": "detect_leaks=1",
            **extra,
        }
    )
    env.update({f"MQL_INPUT_{k}": v for k, v in inputs.items()})
    return env


class EA:
    """The compiled EA as a terminal would run it; state survives restarts in `root`."""

    def __init__(
        self, binary: Path, root: Path, inputs: dict[str, str], extra_env: dict[str, str] | None = None
    ) -> None:
        self.binary = binary
        self.root = root
        self.inputs = inputs
        self.extra_env = extra_env or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = root / "ea.log"
        (root / "common").mkdir(parents=True, exist_ok=True)
        (root / "files").mkdir(exist_ok=True)
        (root / "trade.cfg").write_text(TRADE_CONFIG)

    def start(self) -> None:
        env = harness_env(self.root, self.inputs)
        env.update(self.extra_env)
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen([str(self.binary)], env=env, stdout=log, stderr=subprocess.STDOUT)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.proc = None
        return rc

    def wait_subscribed(self) -> None:
        """On its first start the EA follows signals live from its first subscription (docs/mql5.md)."""
        state = self.root / "common" / "MTBridge" / f"{ACCOUNT}-770001" / "state.txt"
        until_ea(
            lambda: state.exists() and "offset signals:alpha " in state.read_text(),
            "the EA's first subscription",
        )

    def deals(self) -> list[list[str]]:
        path = self.root / "trade.state"
        if not path.exists():
            return []
        return [line.split() for line in path.read_text().splitlines() if line.startswith("deal ")]

    def deals_for(self, signal_id: str) -> list[list[str]]:
        tag = self.tag(signal_id).encode().hex()
        return [d for d in self.deals() if d[-1] == tag]

    @staticmethod
    def tag(signal_id: str) -> str:
        """The order comment the EA puts on a signal's orders (MtbSignalTag)."""
        return "mtb#" + hashlib.sha1(f"mtbridge-event:tag:{signal_id}".encode()).hexdigest()[:12]

    def assert_clean_exit(self, rc: int) -> None:
        assert rc == 0, self.log.read_text()[-5000:]
        text = self.log.read_text()
        assert "ERROR: AddressSanitizer" not in text and "runtime error" not in text, text[-5000:]


class Bridge:
    def __init__(self, hub: HubProcess) -> None:
        self.hub = hub
        self.engine = hub.cli_token(
            "--role", "engine", "--sub", "engine-1", "--publish", "signals:*", "--ttl", "3600"
        )
        self.admin = hub.cli_token("--role", "admin", "--sub", "ops", "--ttl", "3600")
        self.ea = hub.cli_token(
            "--role",
            "ea",
            "--sub",
            "ea-50123",
            "--account",
            ACCOUNT,
            "--subscribe",
            "signals:*",
            "--ttl",
            "3600",
        )

    def publish(self, **fields: Any) -> str:
        sig: dict[str, Any] = {
            "id": str(uuid.uuid4()),
            "strategy": "alpha",
            "accounts": [ACCOUNT],
            "ttl": 600,
        }
        sig.update(fields)
        r = httpx.post(
            f"{self.hub.http}/api/v1/signals",
            json=sig,
            timeout=10,
            headers={"Authorization": f"Bearer {self.engine}"},
        )
        assert r.status_code == 201, r.text
        return str(sig["id"])

    def control(self, command: str) -> None:
        r = httpx.post(
            f"{self.hub.http}/api/v1/control",
            timeout=10,
            json={"scope": "account", "command": command, "account": ACCOUNT},
            headers={"Authorization": f"Bearer {self.admin}"},
        )
        assert r.status_code == 200, r.text

    def events(self, signal_id: str | None = None) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"account": ACCOUNT, "limit": 500}
            if signal_id:
                params["signalId"] = signal_id
            if cursor:
                params["cursor"] = cursor
            r = httpx.get(
                f"{self.hub.http}/api/v1/events",
                params=params,
                timeout=10,
                headers={"Authorization": f"Bearer {self.admin}"},
            )
            assert r.status_code == 200, r.text
            body = r.json()
            items += body["items"]
            cursor = body.get("nextCursor")
            if not cursor:
                return items

    def status(self, signal_id: str) -> str | None:
        r = httpx.get(
            f"{self.hub.http}/api/v1/signals/{signal_id}",
            timeout=10,
            headers={"Authorization": f"Bearer {self.admin}"},
        )
        if r.status_code != 200:
            return None
        for d in r.json().get("deliveries", []):
            if d["account"] == ACCOUNT:
                return str(d["status"])
        return None

    def wait_status(self, signal_id: str, status: str) -> None:
        until_ea(lambda: self.status(signal_id) == status, f"signal {signal_id} to be {status}")

    def wait_executed(self, ea: EA, signal_id: str) -> None:
        """Executed on the trade server and its deal, order and position events all stored."""

        def done() -> bool:
            kinds = sorted(e["kind"] for e in self.events(signal_id))
            return bool(ea.deals_for(signal_id)) and kinds == ["deal", "order", "position"]

        until_ea(done, f"signal {signal_id} executed and reported")

    def rejection(self, signal_id: str) -> str:
        def get() -> str | None:
            for e in self.events(signal_id):
                if e["kind"] == "order" and e["payload"].get("state") == "rejected":
                    return str(e["payload"]["message"])
            return None

        return str(until_ea(get, f"rejection of {signal_id}"))


def ea_inputs(bridge: Bridge, url: str) -> dict[str, str]:
    return {
        "HubUrl": url,
        "Token": bridge.ea,
        "Strategies": "alpha",
        "AllowedSymbols": "EURUSD,GBPUSD",
        "MaxLot": "1.0",
        "MaxSignalAgeSec": "30",
        "MaxSlippagePoints": "20",
        "SnapshotIntervalSec": "2",
        "TimerMs": "20",
    }


def assert_exactly_once(bridge: Bridge, ea: EA, signal_ids: list[str]) -> None:
    for sid in signal_ids:
        assert len(ea.deals_for(sid)) == 1, f"signal {sid} executed {len(ea.deals_for(sid))} times"
        kinds = sorted(e["kind"] for e in bridge.events(sid))
        assert kinds == ["deal", "order", "position"], (sid, kinds)
    ids = [e["id"] for e in bridge.events()]
    assert len(ids) == len(set(ids))
