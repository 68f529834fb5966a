"""Node for tests: the npm package clients/js (@mtbridge/client), whose tests are tests/jsclient,
and running a node or npm command with its output shown on failure.

They need ``node`` (>= 20) and ``npm ci`` in clients/js (scripts/test.sh does it: the codec, `ws`,
esbuild and TypeScript, pinned by clients/js/package-lock.json). Without them a test skips with the
reason, unless BRIDGE_REQUIRE_SERVICES is set, where it fails instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.hub import ROOT
from tests.support.waits import FACTOR

__all__ = ["PKG", "global_websocket_flags", "need_node_package", "run"]

PKG = ROOT / "clients" / "js"


def need_node_package(*modules: str) -> None:
    """Skip (or fail under BRIDGE_REQUIRE_SERVICES) unless node and clients/js/node_modules are there."""
    reason = None
    if shutil.which("node") is None or shutil.which("npm") is None:
        reason = "node and npm are not installed"
    else:
        for module in ("@msgpack/msgpack", *modules):
            if not (PKG / "node_modules" / module).is_dir():
                reason = f"run `npm ci` in clients/js ({module} is missing)"
                break
    if reason is not None:
        if os.environ.get("BRIDGE_REQUIRE_SERVICES"):
            pytest.fail(reason)
        pytest.skip(reason)


def run(cmd: list[str], cwd: Path, timeout: float = 300, env: dict[str, str] | None = None) -> str:
    """Run a command; on failure the assertion shows its output's tail."""
    proc = subprocess.run(
        cmd,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout * FACTOR,
        check=False,
    )
    tail = f"{proc.stdout[-6000:]}\n{proc.stderr[-4000:]}"
    assert proc.returncode == 0, f"{' '.join(cmd)} failed ({proc.returncode}):\n{tail}"
    return proc.stdout


def global_websocket_flags() -> list[str]:
    """The node flags that give a global WebSocket: none on Node 22+, the flag on Node >= 20.10."""
    probe = "process.exit(typeof WebSocket === 'function' ? 0 : 1)"
    for flags in ([], ["--experimental-websocket"]):
        if subprocess.run(["node", *flags, "-e", probe], capture_output=True, check=False).returncode == 0:
            return flags
    raise AssertionError(
        "this Node has no WebSocket, not even behind --experimental-websocket (Node >= 20.10)"
    )
