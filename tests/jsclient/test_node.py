"""The client's Node tests (clients/js/test/*.test.mjs) against a live hub, in both encodings:
with the `ws` package, and with the runtime's global WebSocket (Node 22+, or this Node 20 with
``--experimental-websocket``)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from tests.support.node import PKG, global_websocket_flags, need_node_package, run


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["MTBRIDGE_BIN"] = str(Path(sys.executable).parent / "mtbridge")
    return env


def test_client_with_ws_package() -> None:
    need_node_package("ws")
    run(["node", "--test", "--test-reporter=spec", "test/client.test.mjs"], PKG, timeout=600, env=_env())


def test_client_with_global_websocket() -> None:
    need_node_package()
    out = run(
        [
            "node",
            *global_websocket_flags(),
            "--test",
            "--test-reporter=tap",
            "test/global-websocket.test.mjs",
        ],
        PKG,
        timeout=300,
        env=_env(),
    )
    # Ran, not skipped for want of a WebSocket: both encodings.
    assert "# pass 2" in out and "# skipped 0" in out, out[-2000:]
