"""End to end: the shipped MTBridgeEA.mq5, compiled by the harness, against a live `mtbridge serve`.

The hub runs with its embedded defaults (SQLite, in-process broker) in a temporary data directory;
signals are published and events read over the hub's REST API; the EA trades on the runtime's
simulated trade server, whose state file tells what was really executed.
"""

from __future__ import annotations

import datetime
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.hub import HubProcess
from tests.support.mql5 import (
    ACCOUNT,
    EA,
    EXPERTS,
    HARNESS,
    TRADE_CONFIG,
    Bridge,
    assert_exactly_once,
    ea_inputs,
    until_ea,
)
from tests.support.ports import free_port

pytestmark = [pytest.mark.mql5, pytest.mark.slow]

MTBRIDGE = Path(sys.executable).with_name("mtbridge")


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[HubProcess]:
    h = HubProcess(tmp_path / "hub-data")
    h.start()
    yield h
    h.stop()


@pytest.fixture
def ea_binary(mql5_build: Callable[..., Path]) -> Path:
    return mql5_build(EXPERTS / "MTBridgeEA.mq5")


def test_ea_executes_reports_and_guards(hub: HubProcess, ea_binary: Path, tmp_path: Path) -> None:
    bridge = Bridge(hub)
    ea = EA(ea_binary, tmp_path / "terminal", ea_inputs(bridge, f"ws://127.0.0.1:{hub.port}/ws"))
    ea.start()
    try:
        ea.wait_subscribed()
        s1 = bridge.publish(
            symbol="EURUSD", action="open", side="buy", orderType="market", volume=0.1, sl=1.07, tp=1.19
        )
        bridge.wait_executed(ea, s1)
        bridge.wait_status(s1, "executed")
        deal = next(e for e in bridge.events(s1) if e["kind"] == "deal")["payload"]
        assert (deal["symbol"], deal["side"], deal["entry"], deal["volume"], deal["price"]) == (
            "EURUSD",
            "buy",
            "in",
            0.1,
            1.1002,
        )

        # a modify is reported with its signal, so the hub marks it executed
        modify = bridge.publish(symbol="EURUSD", action="modify", sl=1.06, tp=1.18)
        bridge.wait_status(modify, "executed")
        modified = [e["payload"] for e in bridge.events(modify)]
        assert [(m["kind"], m["state"], m["ticket"], m["sl"], m["tp"], m["signalId"]) for m in modified] == [
            ("position", "modified", deal["position"], 1.06, 1.18, modify)
        ]

        # 0.004 lot rounds down to 0 steps of 0.01: below the minimum, never rounded up to it
        oversize = bridge.publish(
            symbol="EURUSD", action="open", side="buy", orderType="market", volume=0.004
        )
        disallowed = bridge.publish(
            symbol="USDJPY", action="open", side="sell", orderType="market", volume=0.1
        )
        stale = bridge.publish(
            symbol="EURUSD",
            action="open",
            side="buy",
            orderType="market",
            volume=0.1,
            createdAt=int(time.time() * 1000) - 120_000,
        )
        slipped = bridge.publish(
            symbol="GBPUSD",
            action="open",
            side="buy",
            orderType="market",
            volume=0.1,
            price=1.2400,
            deviation=10,
        )
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
        until_ea(
            lambda: sorted(e["kind"] for e in bridge.events(close)) == ["deal", "order", "position"],
            "the close to be reported",
        )
        closed = next(e for e in bridge.events(close) if e["kind"] == "position")["payload"]
        assert (closed["state"], closed["side"], closed["ticket"]) == ("closed", "buy", deal["position"])
        out_deals = [d for d in ea.deals() if d[5] == "1"]  # entry OUT in the simulator's state file
        assert len(out_deals) == 1 and out_deals[0][10] == str(deal["position"])
        bridge.wait_status(close, "executed")

        until_ea(lambda: any(e["kind"] == "account" for e in bridge.events()), "an account snapshot")
        assert_exactly_once(bridge, ea, [s1, s2])
    finally:
        rc = ea.stop()
    ea.assert_clean_exit(rc)


def test_ea_survives_hub_and_terminal_restarts(hub: HubProcess, ea_binary: Path, tmp_path: Path) -> None:
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


def test_outbox_survives_restart_and_is_resent(hub: HubProcess, ea_binary: Path, tmp_path: Path) -> None:
    """Events written to the outbox while the hub was unreachable reach the database after a restart."""
    bridge = Bridge(hub)
    ea = EA(ea_binary, tmp_path / "terminal", ea_inputs(bridge, f"ws://127.0.0.1:{hub.port}/ws"))
    outbox = tmp_path / "terminal" / "common" / "MTBridge" / f"{ACCOUNT}-770001" / "outbox.jnl"
    outbox.parent.mkdir(parents=True)
    event_id = str(uuid.uuid4())
    now_ms = int(time.time() * 1000)
    pending = (
        f'{{"id":"{event_id}","kind":"deal","account":"{ACCOUNT}","ts":{now_ms},"ticket":4242,'
        '"symbol":"EURUSD","side":"buy","entry":"in","volume":0.1,"price":1.1}'
    )
    acked_id = str(uuid.uuid4())
    acked = pending.replace(event_id, acked_id).replace("4242", "4343")
    # one pending event, one already acknowledged, and a torn last line from a crash mid-write
    outbox.write_text(f'+{pending}\n+{acked}\n-{acked_id}\n+{{"id":"torn')
    ea.start()
    try:
        until_ea(
            lambda: any(e["id"] == event_id for e in bridge.events()), "the pending event in the database"
        )
        until_ea(lambda: f"-{event_id}" in outbox.read_text(), "the acknowledgement in the journal")
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
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    day = datetime.timedelta(days=1)
    cert = (
        x509.CertificateBuilder()
        .subject_name(leaf_name)
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - day)
        .not_valid_after(now + 2 * day)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_path, cert_path, key_path = tmp / "ca.pem", tmp / "cert.pem", tmp / "key.pem"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return ca_path, cert_path, key_path


class TlsProxy:
    """tests/mql5/harness/tls_proxy.py in a subprocess: TLS termination in front of the hub."""

    def __init__(self, cert: Path, key: Path, backend_port: int) -> None:
        self.port = free_port()
        self.args = [
            sys.executable,
            str(HARNESS / "tls_proxy.py"),
            str(cert),
            str(key),
            str(self.port),
            str(backend_port),
        ]
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


def test_ea_over_wss_with_a_private_ca(hub: HubProcess, ea_binary: Path, tmp_path: Path) -> None:
    ca, cert, key = _make_ca_and_cert(tmp_path)
    bridge = Bridge(hub)
    with TlsProxy(cert, key, hub.port) as proxy:
        ea = EA(
            ea_binary,
            tmp_path / "terminal",
            ea_inputs(bridge, f"wss://localhost:{proxy.port}/ws"),
            {"MQL_TLS_CA_FILE": str(ca)},
        )
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
        other = EA(
            ea_binary,
            tmp_path / "untrusting",
            ea_inputs(bridge, f"wss://localhost:{proxy.port}/ws"),
            {"MQL_TLS_CA_FILE": str(tmp_path / "cert.pem"), "MQL_RUN_SECONDS": "3"},
        )
        other.start()
        assert other.proc is not None
        assert other.proc.wait(timeout=60) == 0
        assert "TLS handshake with localhost failed" in other.log.read_text()


def test_ea_pending_orders_fill_cancel_and_expire(hub: HubProcess, ea_binary: Path, tmp_path: Path) -> None:
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

        limit = bridge.publish(
            symbol="EURUSD",
            action="open",
            side="buy",
            orderType="limit",
            volume=0.1,
            price=1.095,
            sl=1.09,
            tp=1.12,
        )
        stop = bridge.publish(
            symbol="GBPUSD", action="open", side="sell", orderType="stop", volume=0.2, price=1.24
        )
        short = bridge.publish(
            symbol="GBPUSD", action="open", side="sell", orderType="limit", volume=0.1, price=1.3, ttl=4
        )
        wrong = bridge.publish(
            symbol="EURUSD", action="open", side="buy", orderType="stop", volume=0.1, price=1.05
        )
        for sid in (limit, stop, short):
            until_ea(lambda sid=sid: order_states(sid) == ["placed"], f"{sid} placed")
            bridge.wait_status(sid, "acked")
        assert bridge.rejection(wrong) == "trade_server: invalid price"
        assert ea.deals() == []

        # the market falls to the buy limit: it fills at its price and the signal is executed
        (tmp_path / "terminal" / "trade.cfg").write_text(
            TRADE_CONFIG.replace("bid=1.10000 ask=1.10020", "bid=1.09480 ask=1.09500")
        )
        until_ea(
            lambda: sorted(e["kind"] for e in bridge.events(limit)) == ["deal", "order", "order", "position"],
            "the fill",
        )
        bridge.wait_status(limit, "executed")
        assert len(ea.deals_for(limit)) == 1
        deal = next(e for e in bridge.events(limit) if e["kind"] == "deal")["payload"]
        assert (deal["entry"], deal["price"], deal["side"]) == ("in", 1.095, "buy")
        orders = {e["payload"]["state"]: e["payload"] for e in bridge.events(limit) if e["kind"] == "order"}
        assert sorted(orders) == ["filled", "placed"]
        assert (orders["filled"]["orderType"], orders["filled"]["price"]) == ("limit", 1.095)

        # the short-lived order expires with its signal (reported against it), then a cancel removes
        # the sell stop, reported against the cancel signal; nothing else is left to cancel
        until_ea(lambda: order_states(short) == ["placed", "expired"], "the expiry")
        cancel = bridge.publish(symbol="GBPUSD", action="cancel", side="sell")
        until_ea(lambda: order_states(cancel) == ["cancelled"], "the cancellation")
        stop_ticket = next(e["payload"]["ticket"] for e in bridge.events(stop))
        assert bridge.events(cancel)[0]["payload"]["ticket"] == stop_ticket
        again = bridge.publish(symbol="GBPUSD", action="cancel")
        assert bridge.rejection(again) == "no_order"
        assert len(ea.deals()) == 1
    finally:
        rc = ea.stop()
    ea.assert_clean_exit(rc)
