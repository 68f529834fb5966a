"""End to end: the shipped MTBridgeEA.mq5, compiled by the harness, against a live `mtbridge serve`.

The hub runs with its embedded defaults (SQLite, in-process broker) in a temporary data directory;
signals are published and events read over the hub's REST API; the EA trades on the runtime's
simulated trade server, whose state file tells what was really executed.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import EXPERTS, HERE, free_port

HARNESS = HERE / "harness"

pytestmark = [pytest.mark.mql5, pytest.mark.slow]

MTBRIDGE = Path(sys.executable).with_name("mtbridge")
ACCOUNT = "50123"
TRADE_CONFIG = """\
account login=50123 balance=10000 currency=USD leverage=100
symbol EURUSD bid=1.10000 ask=1.10020 digits=5 vol_min=0.01 vol_max=100 vol_step=0.01 contract=100000
symbol GBPUSD bid=1.25000 ask=1.25030 digits=5 vol_min=0.01 vol_max=100 vol_step=0.01 contract=100000
symbol USDJPY bid=150.000 ask=150.020 digits=3 vol_min=0.01 vol_max=100 vol_step=0.01 contract=100000
"""
WAIT = 90.0


def wait_for(what: str, predicate: Callable[[], Any], timeout: float = WAIT) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


class Hub:
    """A `mtbridge serve` process that can be stopped and started again on the same port and data."""

    def __init__(self, data: Path, port: int) -> None:
        self.data = data
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = data.parent / "hub.log"

    def token(self, *args: str) -> str:
        out = subprocess.run([str(MTBRIDGE), "token", "--data-dir", str(self.data), *args, "--ttl", "3600"],
                             check=True, capture_output=True, text=True)
        return out.stdout.strip()

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [str(MTBRIDGE), "serve", "--data-dir", str(self.data), "--port", str(self.port)],
                stdout=log, stderr=subprocess.STDOUT,
            )

        def ready() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"hub exited: {self.log.read_text()[-3000:]}")
            try:
                return httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for("the hub to be ready", ready)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


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
        env = dict(os.environ)
        env.update({
            "MQL_COMMON_DIR": str(self.root / "common"),
            "MQL_FILES_DIR": str(self.root / "files"),
            "MQL_TRADE_CONFIG": str(self.root / "trade.cfg"),
            "MQL_TRADE_STATE": str(self.root / "trade.state"),
            "MQL_TIMER_MIN_MS": "10",
            "ASAN_OPTIONS": "detect_leaks=1",
        })
        env.update({f"MQL_INPUT_{k}": v for k, v in self.inputs.items()})
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
        wait_for("the EA's first subscription",
                 lambda: state.exists() and "offset signals:alpha " in state.read_text())

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
    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.engine = hub.token("--role", "engine", "--sub", "engine-1", "--publish", "signals:*")
        self.admin = hub.token("--role", "admin", "--sub", "ops")
        self.ea = hub.token("--role", "ea", "--sub", "ea-50123", "--account", ACCOUNT,
                            "--subscribe", "signals:*")

    def publish(self, **fields: Any) -> str:
        sig: dict[str, Any] = {"id": str(uuid.uuid4()), "strategy": "alpha", "accounts": [ACCOUNT],
                               "ttl": 600}
        sig.update(fields)
        r = httpx.post(f"{self.hub.url}/api/v1/signals", json=sig, timeout=10,
                       headers={"Authorization": f"Bearer {self.engine}"})
        assert r.status_code == 201, r.text
        return str(sig["id"])

    def control(self, command: str) -> None:
        r = httpx.post(f"{self.hub.url}/api/v1/control", timeout=10,
                       json={"scope": "account", "command": command, "account": ACCOUNT},
                       headers={"Authorization": f"Bearer {self.admin}"})
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
            r = httpx.get(f"{self.hub.url}/api/v1/events", params=params, timeout=10,
                          headers={"Authorization": f"Bearer {self.admin}"})
            assert r.status_code == 200, r.text
            body = r.json()
            items += body["items"]
            cursor = body.get("nextCursor")
            if not cursor:
                return items

    def status(self, signal_id: str) -> str | None:
        r = httpx.get(f"{self.hub.url}/api/v1/signals/{signal_id}", timeout=10,
                      headers={"Authorization": f"Bearer {self.admin}"})
        if r.status_code != 200:
            return None
        for d in r.json().get("deliveries", []):
            if d["account"] == ACCOUNT:
                return str(d["status"])
        return None

    def wait_status(self, signal_id: str, status: str) -> None:
        wait_for(f"signal {signal_id} to be {status}", lambda: self.status(signal_id) == status)

    def wait_executed(self, ea: EA, signal_id: str) -> None:
        """Executed on the trade server and its deal, order and position events all stored."""
        def done() -> bool:
            kinds = sorted(e["kind"] for e in self.events(signal_id))
            return bool(ea.deals_for(signal_id)) and kinds == ["deal", "order", "position"]

        wait_for(f"signal {signal_id} executed and reported", done)

    def rejection(self, signal_id: str) -> str:
        def get() -> str | None:
            for e in self.events(signal_id):
                if e["kind"] == "order" and e["payload"].get("state") == "rejected":
                    return str(e["payload"]["message"])
            return None

        return str(wait_for(f"rejection of {signal_id}", get))


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    h = Hub(tmp_path / "hub-data", free_port())
    h.data.mkdir()
    h.start()
    yield h
    h.stop()


@pytest.fixture
def ea_binary(mql5_build: Callable[..., Path]) -> Path:
    return mql5_build(EXPERTS / "MTBridgeEA.mq5")


def ea_inputs(bridge: Bridge, url: str) -> dict[str, str]:
    return {"HubUrl": url, "Token": bridge.ea, "Strategies": "alpha", "AllowedSymbols": "EURUSD,GBPUSD",
            "MaxLot": "1.0", "MaxSignalAgeSec": "30", "MaxSlippagePoints": "20", "SnapshotIntervalSec": "2",
            "TimerMs": "20"}


def assert_exactly_once(bridge: Bridge, ea: EA, signal_ids: list[str]) -> None:
    for sid in signal_ids:
        assert len(ea.deals_for(sid)) == 1, f"signal {sid} executed {len(ea.deals_for(sid))} times"
        kinds = sorted(e["kind"] for e in bridge.events(sid))
        assert kinds == ["deal", "order", "position"], (sid, kinds)
    ids = [e["id"] for e in bridge.events()]
    assert len(ids) == len(set(ids))


def test_ea_executes_reports_and_guards(hub: Hub, ea_binary: Path, tmp_path: Path) -> None:
    bridge = Bridge(hub)
    ea = EA(ea_binary, tmp_path / "terminal", ea_inputs(bridge, f"ws://127.0.0.1:{hub.port}/ws"))
    ea.start()
    try:
        ea.wait_subscribed()
        s1 = bridge.publish(symbol="EURUSD", action="open", side="buy", orderType="market", volume=0.1,
                            sl=1.07, tp=1.19)
        bridge.wait_executed(ea, s1)
        bridge.wait_status(s1, "executed")
        deal = next(e for e in bridge.events(s1) if e["kind"] == "deal")["payload"]
        assert (deal["symbol"], deal["side"], deal["entry"], deal["volume"], deal["price"]) == (
            "EURUSD", "buy", "in", 0.1, 1.1002)

        # a modify is reported with its signal, so the hub marks it executed
        modify = bridge.publish(symbol="EURUSD", action="modify", sl=1.06, tp=1.18)
        bridge.wait_status(modify, "executed")
        modified = [e["payload"] for e in bridge.events(modify)]
        assert [(m["kind"], m["state"], m["ticket"], m["sl"], m["tp"], m["signalId"]) for m in modified] == [
            ("position", "modified", deal["position"], 1.06, 1.18, modify)]

        # 0.004 lot rounds down to 0 steps of 0.01: below the minimum, never rounded up to it
        oversize = bridge.publish(symbol="EURUSD", action="open", side="buy", orderType="market",
                                  volume=0.004)
        disallowed = bridge.publish(symbol="USDJPY", action="open", side="sell", orderType="market",
                                    volume=0.1)
        stale = bridge.publish(symbol="EURUSD", action="open", side="buy", orderType="market", volume=0.1,
                               createdAt=int(time.time() * 1000) - 120_000)
        slipped = bridge.publish(symbol="GBPUSD", action="open", side="buy", orderType="market", volume=0.1,
                                 price=1.2400, deviation=10)
        assert bridge.rejection(oversize) == "volume_below_min"
        assert bridge.rejection(disallowed) == "symbol_not_allowed"
        assert bridge.rejection(stale) == "stale"
        assert bridge.rejection(slipped) == "slippage"
        for sid in (oversize, disallowed, stale, slipped):
            bridge.wait_status(sid, "rejected")
            assert ea.deals_for(sid) == []

        bridge.control("pause")
        paused = bridge.publish(symbol="EURUSD", action="open", side="sell", orderType="market", volume=0.2)
        assert bridge.rejection(paused) == "paused"
        bridge.control("resume")
        s2 = bridge.publish(symbol="GBPUSD", action="open", side="sell", orderType="market", volume=0.2)
        bridge.wait_executed(ea, s2)

        close = bridge.publish(symbol="EURUSD", action="close")
        wait_for("the close to be reported", lambda: sorted(e["kind"] for e in bridge.events(close))
                 == ["deal", "order", "position"])
        closed = next(e for e in bridge.events(close) if e["kind"] == "position")["payload"]
        assert (closed["state"], closed["side"], closed["ticket"]) == ("closed", "buy", deal["position"])
        out_deals = [d for d in ea.deals() if d[5] == "1"]  # entry OUT in the simulator's state file
        assert len(out_deals) == 1 and out_deals[0][10] == str(deal["position"])
        bridge.wait_status(close, "executed")

        wait_for("an account snapshot", lambda: any(e["kind"] == "account" for e in bridge.events()))
        assert_exactly_once(bridge, ea, [s1, s2])
    finally:
        rc = ea.stop()
    ea.assert_clean_exit(rc)


def test_ea_survives_hub_and_terminal_restarts(hub: Hub, ea_binary: Path, tmp_path: Path) -> None:
    bridge = Bridge(hub)
    ea = EA(ea_binary, tmp_path / "terminal", ea_inputs(bridge, f"ws://127.0.0.1:{hub.port}/ws"))
    ea.start()
    try:
        ea.wait_subscribed()
        s1 = bridge.publish(symbol="EURUSD", action="open", side="buy", orderType="market", volume=0.1)
        bridge.wait_executed(ea, s1)

        # hub restart: the EA reconnects with backoff and resubscribes from its offset
        hub.stop()
        hub.start()
        s2 = bridge.publish(symbol="GBPUSD", action="open", side="buy", orderType="market", volume=0.3)
        bridge.wait_executed(ea, s2)

        # terminal crash: SIGKILL loses nothing that was flushed; a signal published meanwhile is
        # recovered by offset after the restart, and nothing runs twice
        ea.stop(signal.SIGKILL)
        s3 = bridge.publish(symbol="EURUSD", action="open", side="sell", orderType="market", volume=0.4)
        ea.start()
        bridge.wait_executed(ea, s3)

        # orderly terminal restart
        rc = ea.stop()
        ea.assert_clean_exit(rc)
        s4 = bridge.publish(symbol="GBPUSD", action="open", side="sell", orderType="market", volume=0.5)
        ea.start()
        bridge.wait_executed(ea, s4)
        assert_exactly_once(bridge, ea, [s1, s2, s3, s4])
        assert len(ea.deals()) == 4
    finally:
        if ea.proc is not None:
            ea.stop()


def test_outbox_survives_restart_and_is_resent(hub: Hub, ea_binary: Path, tmp_path: Path) -> None:
    """Events written to the outbox while the hub was unreachable reach the database after a restart."""
    bridge = Bridge(hub)
    ea = EA(ea_binary, tmp_path / "terminal", ea_inputs(bridge, f"ws://127.0.0.1:{hub.port}/ws"))
    outbox = tmp_path / "terminal" / "common" / "MTBridge" / f"{ACCOUNT}-770001" / "outbox.jnl"
    outbox.parent.mkdir(parents=True)
    event_id = str(uuid.uuid4())
    now_ms = int(time.time() * 1000)
    pending = (f'{{"id":"{event_id}","kind":"deal","account":"{ACCOUNT}","ts":{now_ms},"ticket":4242,'
               '"symbol":"EURUSD","side":"buy","entry":"in","volume":0.1,"price":1.1}')
    acked_id = str(uuid.uuid4())
    acked = pending.replace(event_id, acked_id).replace("4242", "4343")
    # one pending event, one already acknowledged, and a torn last line from a crash mid-write
    outbox.write_text(f"+{pending}\n+{acked}\n-{acked_id}\n+{{\"id\":\"torn")
    ea.start()
    try:
        wait_for("the pending event in the database",
                 lambda: any(e["id"] == event_id for e in bridge.events()))
        wait_for("the acknowledgement in the journal", lambda: f"-{event_id}" in outbox.read_text())
        assert not any(e["id"] == acked_id for e in bridge.events())
    finally:
        rc = ea.stop()
    ea.assert_clean_exit(rc)


# ------------------------------------------------------------------------------------------ TLS
def _make_ca_and_cert(tmp: Path) -> tuple[Path, Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mtbridge test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
          .not_valid_after(now + datetime.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    leaf_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    day = datetime.timedelta(days=1)
    cert = (x509.CertificateBuilder().subject_name(leaf_name)
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - day).not_valid_after(now + 2 * day)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    ca_path, cert_path, key_path = tmp / "ca.pem", tmp / "cert.pem", tmp / "key.pem"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return ca_path, cert_path, key_path


class TlsProxy:
    """tests/mql5/harness/tls_proxy.py in a subprocess: TLS termination in front of the hub."""

    def __init__(self, cert: Path, key: Path, backend_port: int) -> None:
        self.port = free_port()
        self.args = [sys.executable, str(HARNESS / "tls_proxy.py"), str(cert), str(key), str(self.port),
                     str(backend_port)]
        self.proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> TlsProxy:
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline().strip() == "ready"
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        self.proc.terminate()
        self.proc.wait(timeout=30)


def test_ea_over_wss_with_a_private_ca(hub: Hub, ea_binary: Path, tmp_path: Path) -> None:
    ca, cert, key = _make_ca_and_cert(tmp_path)
    bridge = Bridge(hub)
    with TlsProxy(cert, key, hub.port) as proxy:
        ea = EA(ea_binary, tmp_path / "terminal", ea_inputs(bridge, f"wss://localhost:{proxy.port}/ws"),
                {"MQL_TLS_CA_FILE": str(ca)})
        ea.start()
        try:
            ea.wait_subscribed()
            s1 = bridge.publish(symbol="EURUSD", action="open", side="buy", orderType="market", volume=0.1)
            bridge.wait_executed(ea, s1)
            assert_exactly_once(bridge, ea, [s1])
        finally:
            rc = ea.stop()
        ea.assert_clean_exit(rc)

        # without the CA the certificate is refused and nothing connects
        other = EA(ea_binary, tmp_path / "untrusting", ea_inputs(bridge, f"wss://localhost:{proxy.port}/ws"),
                   {"MQL_TLS_CA_FILE": str(tmp_path / "cert.pem"), "MQL_RUN_SECONDS": "3"})
        other.start()
        assert other.proc is not None
        assert other.proc.wait(timeout=60) == 0
        assert "TLS handshake with localhost failed" in other.log.read_text()


def test_ea_pending_orders_fill_cancel_and_expire(hub: Hub, ea_binary: Path, tmp_path: Path) -> None:
    """Limit/stop signals become pending orders on the trade server; a price the test sets fills one,
    a cancel signal removes one, and one expires with its signal."""
    bridge = Bridge(hub)
    ea = EA(ea_binary, tmp_path / "terminal", ea_inputs(bridge, f"ws://127.0.0.1:{hub.port}/ws"))
    ea.start()
    try:
        ea.wait_subscribed()

        def order_states(sid: str) -> list[str]:
            # the hub lists newest first
            return [e["payload"]["state"] for e in reversed(bridge.events(sid)) if e["kind"] == "order"]

        limit = bridge.publish(symbol="EURUSD", action="open", side="buy", orderType="limit", volume=0.1,
                               price=1.095, sl=1.09, tp=1.12)
        stop = bridge.publish(symbol="GBPUSD", action="open", side="sell", orderType="stop", volume=0.2,
                              price=1.24)
        short = bridge.publish(symbol="GBPUSD", action="open", side="sell", orderType="limit", volume=0.1,
                               price=1.3, ttl=4)
        wrong = bridge.publish(symbol="EURUSD", action="open", side="buy", orderType="stop", volume=0.1,
                               price=1.05)
        for sid in (limit, stop, short):
            wait_for(f"{sid} placed", lambda sid=sid: order_states(sid) == ["placed"])
            bridge.wait_status(sid, "acked")
        assert bridge.rejection(wrong) == "trade_server: invalid price"
        assert ea.deals() == []

        # the market falls to the buy limit: it fills at its price and the signal is executed
        (tmp_path / "terminal" / "trade.cfg").write_text(
            TRADE_CONFIG.replace("bid=1.10000 ask=1.10020", "bid=1.09480 ask=1.09500"))
        wait_for("the fill", lambda: sorted(e["kind"] for e in bridge.events(limit))
                 == ["deal", "order", "order", "position"])
        bridge.wait_status(limit, "executed")
        assert len(ea.deals_for(limit)) == 1
        deal = next(e for e in bridge.events(limit) if e["kind"] == "deal")["payload"]
        assert (deal["entry"], deal["price"], deal["side"]) == ("in", 1.095, "buy")
        orders = {e["payload"]["state"]: e["payload"] for e in bridge.events(limit) if e["kind"] == "order"}
        assert sorted(orders) == ["filled", "placed"]
        assert (orders["filled"]["orderType"], orders["filled"]["price"]) == ("limit", 1.095)

        # the short-lived order expires with its signal (reported against it), then a cancel removes
        # the sell stop, reported against the cancel signal; nothing else is left to cancel
        wait_for("the expiry", lambda: order_states(short) == ["placed", "expired"])
        cancel = bridge.publish(symbol="GBPUSD", action="cancel", side="sell")
        wait_for("the cancellation", lambda: order_states(cancel) == ["cancelled"])
        stop_ticket = next(e["payload"]["ticket"] for e in bridge.events(stop))
        assert bridge.events(cancel)[0]["payload"]["ticket"] == stop_ticket
        again = bridge.publish(symbol="GBPUSD", action="cancel")
        assert bridge.rejection(again) == "no_order"
        assert len(ea.deals()) == 1
    finally:
        rc = ea.stop()
    ea.assert_clean_exit(rc)
