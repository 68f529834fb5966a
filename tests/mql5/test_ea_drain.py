"""The shipped MQL5 EA, compiled by the harness, behind a real nginx (deploy/nginx, wss://): the hub
drains on SIGTERM (reconnect hint, close 1001), comes back, and the EA reconnects by itself, recovers
the signal published while it was away by offset, and executes each signal exactly once."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.hub import HubProcess
from tests.support.mql5 import EA, EXPERTS, Bridge, assert_exactly_once, ea_inputs, until_ea
from tests.support.nginx import NGINX, Nginx

pytestmark = [
    pytest.mark.mql5,
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("nginx") is None and not Path(NGINX).exists(),
        reason="nginx is installed by scripts/test.sh (apt-get install nginx)",
    ),
]


def test_ea_reconnects_through_nginx_after_a_drain_and_loses_nothing(
    mql5_build: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    binary = mql5_build(EXPERTS / "MTBridgeEA.mq5")
    hub = HubProcess(tmp_path / "hub-data")
    monkeypatch.setenv("MTBRIDGE_DRAIN_WINDOW", "2")  # the hub process inherits it
    hub.start()
    proxy = Nginx(tmp_path / "nginx", [f"127.0.0.1:{hub.port}"]).start()
    bridge = Bridge(hub)
    url = f"wss://localhost:{proxy.https_port}/ws"
    ea = EA(binary, tmp_path / "terminal", ea_inputs(bridge, url), {"MQL_TLS_CA_FILE": str(proxy.cert)})
    ea.start()
    try:
        ea.wait_subscribed()
        first = bridge.publish(symbol="EURUSD", action="open", side="buy", orderType="market", volume=0.1)
        bridge.wait_executed(ea, first)

        hub.stop()  # SIGTERM: the hint and the 1001 close reach the EA through nginx
        until_ea(lambda: "code 1001" in ea.log.read_text(), "the EA to see the drain")
        hub.start()
        # Published before the EA is back (it waits afterMs, then nginx's 502s back it off): recovered
        # by offset on its resubscription.
        second = bridge.publish(symbol="EURUSD", action="open", side="buy", orderType="market", volume=0.1)
        third = bridge.publish(symbol="GBPUSD", action="open", side="sell", orderType="market", volume=0.1)
        bridge.wait_executed(ea, second)
        bridge.wait_executed(ea, third)
        assert_exactly_once(bridge, ea, [first, second, third])
    finally:
        rc = ea.stop()
        proxy.stop()
        hub.stop()
    ea.assert_clean_exit(rc)
