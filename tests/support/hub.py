"""Running a real hub for tests: in-process (:func:`running_hub`, same event loop) or as a subprocess
(:class:`HubProcess`, the one launcher of ``mtbridge serve`` in the suite), and :class:`Client`, a
thin JSON/msgpack envelope client for either. Socketless stand-ins are in :mod:`tests.support.fakes`,
waits in :mod:`tests.support.waits`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from signal import SIGTERM
from typing import Any

import uvicorn
import websockets
from websockets.asyncio.client import ClientConnection

from bridge.auth.tokens import issue, load_or_create_secret
from bridge.config import Settings, load_settings
from bridge.server import uvicorn_config
from bridge.services import Services
from tests.support import factories
from tests.support.ports import free_port
from tests.support.waits import WAIT, until, wait_until

__all__ = [
    "ROOT",
    "WAIT",
    "Client",
    "HubProcess",
    "RunningHub",
    "free_port",
    "mint",
    "publish",
    "running_hub",
    "settle",
]

ROOT = Path(__file__).resolve().parents[2]


def mint(data_dir: Path, role: str, sub: str, ttl: float = 3600, **claims: Any) -> str:
    secret, _ = load_or_create_secret(data_dir / "jwt-secret")
    return issue(secret, sub=sub, role=role, now=time.time(), ttl=ttl, **claims)


@dataclass
class RunningHub:
    settings: Settings
    server: uvicorn.Server
    services: Services
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.settings.port}/ws"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.settings.port}"

    @property
    def hub(self) -> Any:
        return self.services.hub

    def token(self, role: str, sub: str, ttl: float = 3600, **claims: Any) -> str:
        return mint(self.settings.data_dir, role, sub, ttl, **claims)

    async def connect(self, token: str | None = None, **kwargs: Any) -> Client:
        return await Client.open(self.url, token, **kwargs)

    def assert_clean(self) -> None:
        """Nothing of closed connections remains in any registry, subscription set or queue."""
        hub = self.hub
        assert hub.connections == {}, hub.connections
        assert hub.by_subject == {}, hub.by_subject
        assert hub.by_ip == {}, hub.by_ip
        leftover = {n: len(c) + len(c.recovering) for n, c in hub.channels.items()}
        assert not any(leftover.values()), leftover

    async def wait_clean(self) -> None:
        """Wait for :meth:`assert_clean` to hold (a closed connection is unregistered by its own task);
        fails with what is left."""

        def clean() -> bool:
            try:
                self.assert_clean()
            except AssertionError:
                return False
            return True

        with contextlib.suppress(AssertionError):
            await until(clean, "the hub's registries to empty", timeout=WAIT)
        self.assert_clean()


@contextlib.asynccontextmanager
async def running_hub(tmp_path: Path, **overrides: Any) -> AsyncIterator[RunningHub]:
    overrides.setdefault("port", free_port())
    overrides.setdefault("data_dir", tmp_path / "hub-data")
    settings = load_settings(None, **overrides)
    config = uvicorn_config(settings, log_config=None)
    server = uvicorn.Server(config)
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve())

    def started() -> bool:
        if task.done():
            task.result()
            raise RuntimeError("hub exited during startup")
        return bool(server.started)

    await until(started, "the hub to start", timeout=WAIT * 3)
    services = _find_services(config)
    try:
        yield RunningHub(settings, server, services)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, WAIT * 3)


def _find_services(config: uvicorn.Config) -> Services:
    app: Any = config.loaded_app
    for _ in range(6):
        state = getattr(app, "state", None)
        if state is not None and hasattr(state, "services"):
            return state.services  # type: ignore[no-any-return]
        app = getattr(app, "app", None)
    raise RuntimeError("services not found on the app")


class Client:
    """A thin JSON-envelope client over the `websockets` library, for tests."""

    def __init__(self, ws: ClientConnection, encoding: str = "json") -> None:
        self.ws = ws
        self.encoding = encoding
        self.welcome: dict[str, Any] = {}
        self._rid = 0

    @classmethod
    async def open(
        cls, url: str, token: str | None = None, *, encoding: str = "json", **kwargs: Any
    ) -> Client:
        """Connect (``encoding`` "json" or "msgpack", negotiated by subprotocol) and authenticate."""
        kwargs.setdefault("ping_interval", None)
        kwargs.setdefault("open_timeout", WAIT)
        if encoding != "json":
            kwargs.setdefault("subprotocols", [f"mtbridge.v1.{encoding}"])
        ws = await websockets.connect(url, **kwargs)
        client = cls(ws, encoding)
        client.welcome = await client.recv()
        assert client.welcome["type"] == "welcome", client.welcome
        if token is not None:
            result = await client.request("auth", payload={"token": token})
            assert result["type"] == "result", result
        return client

    async def send(self, obj: dict[str, Any]) -> None:
        if self.encoding == "msgpack":
            import msgpack

            await self.ws.send(msgpack.packb(obj))
            return
        await self.ws.send(json.dumps(obj))

    async def recv(self, timeout: float = WAIT) -> dict[str, Any]:
        raw = await asyncio.wait_for(self.ws.recv(), timeout)
        if isinstance(raw, bytes):
            import msgpack

            return msgpack.unpackb(raw)  # type: ignore[no-any-return]
        return json.loads(raw)  # type: ignore[no-any-return]

    async def request(self, mtype: str, channel: str | None = None, payload: Any = None) -> dict[str, Any]:
        """Send a request and return its `result`/`error`, keeping other messages in `self.other`."""
        self._rid += 1
        rid = f"r{self._rid}"
        await self.send(factories.request(mtype, rid, channel, payload))
        return await self.until(lambda m: m.get("requestId") == rid)

    async def until(self, predicate: Any, timeout: float = WAIT) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no matching message")
            msg = await self.recv(left)
            if predicate(msg):
                return msg

    async def closed(self, timeout: float = WAIT) -> tuple[int | None, str]:
        """Wait for the hub to close the connection; returns (code, reason)."""
        with contextlib.suppress(websockets.ConnectionClosed):
            while True:
                await asyncio.wait_for(self.ws.recv(), timeout)
        await asyncio.wait_for(self.ws.wait_closed(), timeout)
        rcvd = self.ws.protocol.close_rcvd
        return (rcvd.code, rcvd.reason) if rcvd else (None, "")

    async def close(self) -> None:
        await self.ws.close()


async def settle(c: Client) -> list[dict[str, Any]]:
    """Everything the hub sent ``c`` before the answer to a heartbeat sent now (its writes to one
    connection are in order), so an absent message is known absent without waiting on a clock."""
    got: list[dict[str, Any]] = []
    await c.send({"type": "heartbeat", "requestId": "settle"})
    while True:
        msg = await c.recv()
        if msg.get("type") == "heartbeat" and msg.get("requestId") == "settle":
            return got
        got.append(msg)


async def publish(engine: Client, strategy: str = "alpha", account: str = "50123") -> int:
    """Publish a signal of ``strategy`` for ``account`` (valid 30 s) and return its offset."""
    res = await engine.request(
        "publish", f"signals:{strategy}", factories.signal(strategy, [account], ttl=30)
    )
    assert res["type"] == "result", res
    return int(res["payload"]["offset"])


class HubProcess:
    """`mtbridge serve` as a subprocess, for restarts, SIGTERM and SIGKILL; ``extra`` are the
    scenario's own ``serve`` flags (``--database-url``, ``--allowed-origin``, ``--log-level``...)."""

    def __init__(
        self, data_dir: Path, port: int | None = None, *extra: str, env: dict[str, str] | None = None
    ) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.extra = extra
        self.env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = data_dir.parent / f"hub-{self.port}.log"

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> HubProcess:
        env = {**os.environ, **self.env}
        cmd = [
            sys.executable,
            "-m",
            "bridge.cli",
            "serve",
            "--data-dir",
            str(self.data_dir),
            "--port",
            str(self.port),
            *self.extra,
        ]
        self.data_dir.mkdir(parents=True, exist_ok=True)
        logf = open(self.log, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=logf, stderr=subprocess.STDOUT)
        proc = self.proc

        def ready() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"hub exited: {self.log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(self.http + "/readyz", timeout=1) as r:
                    return bool(r.status == 200)
            except OSError:
                return False

        wait_until(ready, f"the hub's /readyz (log: {self.log})", timeout=WAIT * 4, interval=0.1)
        return self

    def cli_token(self, *args: str) -> str:
        """A token as an operator gets one: ``mtbridge token --data-dir <dir> <args>``."""
        out = subprocess.run(
            [sys.executable, "-m", "bridge.cli", "token", "--data-dir", str(self.data_dir), *args],
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
            timeout=WAIT * 3,
        )
        return out.stdout.strip()

    def token(self, role: str, sub: str, ttl: float = 3600, **claims: Any) -> str:
        shared = self.env.get("MTBRIDGE_JWT_SECRET_FILE")  # a cluster's nodes share one secret
        if shared:
            secret, _ = load_or_create_secret(Path(shared))
            return issue(secret, sub=sub, role=role, now=time.time(), ttl=ttl, **claims)
        return mint(self.data_dir, role, sub, ttl, **claims)

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout: float = WAIT * 3) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(WAIT)

    def stop(self, sig: int = SIGTERM) -> None:
        """SIGTERM (a graceful drain, SIGKILL after ``WAIT * 2``), or ``sig`` (SIGKILL: a crash)."""
        if sig == signal.SIGKILL:
            self.kill()
            return
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(WAIT * 2)
            except subprocess.TimeoutExpired:
                self.kill()
