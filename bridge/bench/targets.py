"""Servers under test: the hub and the peer servers of ``bench/peers/``.

In bridge/bench "target" means only this: a server under test (the ``target`` column of
every table names it). A throughput or latency objective is a *goal* (``INGEST_GOAL``,
``FRAME_GOAL_MS``); the ``targeted`` scenario borrows the protocol's word for a signal addressed
to named accounts. A target knows how to start its server and which load generator arguments make a
subscriber or a publisher speak its protocol. Every peer does the same thing: one
publisher connection, N subscriber connections, each published message delivered
to every subscriber.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import msgpack

from bridge.bench.exceptions import BenchError
from bridge.bench.loadgen import repo_root
from bridge.bench.procs import ServerProcess

__all__ = [
    "HUB_BENCH_ENV",
    "HUB_CHANNEL",
    "PAYLOAD_PAD",
    "PEER_NAMES",
    "HubTarget",
    "PeerTarget",
    "Target",
    "peer_targets",
]

#: Padding that makes the published payload about 200 bytes of JSON:
#: {"t":<13 digits>,"seq":<up to 7 digits>,"pad":"..."} is 42 bytes plus the padding.
PAYLOAD_PAD = 158
#: Settings the hub runs with under benchmark: defaults, except the per-IP and per-subject
#: connection caps, because every benchmark client comes from 127.0.0.1 with one token.
HUB_BENCH_ENV = {
    "MTBRIDGE_MAX_CONNECTIONS_PER_IP": "1000000",
    "MTBRIDGE_MAX_CONNECTIONS_PER_SUBJECT": "1000000",
    "MTBRIDGE_LOG_LEVEL": "warning",
}
#: The ephemeral channel fan-out and latency runs publish on.
HUB_CHANNEL = "instrument:BENCH"
HUB_SUBPROTOCOLS = {"json": "mtbridge.v1.json", "msgpack": "mtbridge.v1.msgpack"}
SIO_PATH = "/socket.io/?EIO=4&transport=websocket"
PEER_NAMES = ("uwebsockets", "node-ws", "node-socketio", "py-websockets", "py-socketio")


def _peer_payload_template(pad: int) -> str:
    return '{"t":%T,"seq":%S,"pad":"' + "x" * pad + '"}'


class Target:
    """Base of a server under test."""

    name: str
    kind: str
    encodings: tuple[str, ...] = ("json",)

    def start(self, *, port: int, core: int | None) -> ServerProcess:
        raise NotImplementedError

    def after_start(self, server: ServerProcess) -> None:
        """Work that needs the running server (e.g. minting a token against its data dir)."""

    def sub_args(self, *, encoding: str = "json") -> list[str]:
        raise NotImplementedError

    def pub_args(self, *, encoding: str = "json", pad: int = PAYLOAD_PAD) -> list[str]:
        raise NotImplementedError

    #: Unanswered publishes allowed per connection when publishing as fast as possible;
    #: 0 for servers that do not answer a publish (TCP backpressure is then the bound).
    pub_window: int = 0

    def versions(self) -> dict[str, str]:
        return {}

    def cleanup(self) -> None:
        """Remove what the target created (data directories)."""


@dataclass
class HubTarget(Target):
    """`mtbridge serve` with a fresh data directory, tokens minted by `mtbridge token`."""

    command: Sequence[str]
    extra_args: Sequence[str] = ()
    channel: str = HUB_CHANNEL
    name: str = "mtbridge"
    kind: str = "hub"
    encodings: tuple[str, ...] = ("json", "msgpack")
    pub_window: int = 64
    data_dir: Path = field(init=False)
    token: str = field(init=False, default="")

    def __post_init__(self) -> None:
        self.data_dir = Path(tempfile.mkdtemp(prefix="mtbridge-bench-"))

    @classmethod
    def default_command(cls) -> list[str]:
        """The `mtbridge` script next to this interpreter, else the one on PATH."""
        local = Path(sys.executable).parent / "mtbridge"
        if local.is_file():
            return [str(local)]
        found = shutil.which("mtbridge")
        if found:
            return [found]
        return [sys.executable, "-c", "from bridge.cli import main; raise SystemExit(main())"]

    def start(self, *, port: int, core: int | None) -> ServerProcess:
        argv = [
            *self.command,
            "serve",
            "--data-dir",
            str(self.data_dir),
            "--port",
            str(port),
            *self.extra_args,
        ]
        return ServerProcess(self.name, argv, port=port, core=core, env=HUB_BENCH_ENV)

    def mint_token(self, *, role: str = "engine", sub: str = "bench", accounts: Sequence[str] = ()) -> str:
        """A JWT for the hub under test (never logged)."""
        argv = [
            *self.command,
            "token",
            "--data-dir",
            str(self.data_dir),
            "--role",
            role,
            "--sub",
            sub,
            "--publish",
            "*",
            "--subscribe",
            "*",
            "--ttl",
            "3600",
        ]
        for account in accounts:
            argv += ["--account", account]
        proc = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)
        token = proc.stdout.strip()
        if proc.returncode != 0 or not token or any(c.isspace() for c in token):
            raise BenchError(f"`mtbridge token` failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
        return token

    def after_start(self, server: ServerProcess) -> None:
        if not self.token:
            self.token = self.mint_token()

    @staticmethod
    def auth_message(token: str) -> dict[str, object]:
        return {"type": "auth", "requestId": "a", "payload": {"token": token}}

    def _init_args(self, messages: Sequence[dict[str, object]], encoding: str) -> list[str]:
        args = ["--path", "/ws", "--subprotocol", HUB_SUBPROTOCOLS[encoding], "--init-wait", "1"]
        for message in messages:
            if encoding == "json":
                args += ["--init", json.dumps(message, separators=(",", ":"))]
            else:
                args += ["--init-hex", msgpack.packb(message).hex()]
        # welcome, then one result per init message
        return [*args, "--ready-frames", str(1 + len(messages))]

    def request_args(
        self, token: str, *, then: Sequence[dict[str, object]] = (), encoding: str = "json"
    ) -> list[str]:
        """Connection setup for request/answer clients: auth with token, then the given messages."""
        return self._init_args([self.auth_message(token), *then], encoding)

    def sub_args(self, *, encoding: str = "json") -> list[str]:
        subscribe: dict[str, object] = {"type": "subscribe", "requestId": "s", "channel": self.channel}
        return self._init_args([self.auth_message(self.token), subscribe], encoding)

    def pub_args(self, *, encoding: str = "json", pad: int = PAYLOAD_PAD) -> list[str]:
        args = self._init_args([self.auth_message(self.token)], encoding)
        if encoding == "msgpack":
            return [*args, "--msgpack-channel", self.channel, "--pad", str(pad)]
        template = (
            '{"type":"publish","requestId":"%S","channel":'
            + json.dumps(self.channel)
            + ',"payload":'
            + _peer_payload_template(pad)
            + "}"
        )
        return [*args, "--template", template]

    def versions(self) -> dict[str, str]:
        from importlib.metadata import PackageNotFoundError, version

        out = {"python": sys.version.split()[0]}
        for dist in ("mtbridge", "websockets", "uvloop", "orjson", "msgpack"):
            try:
                out[dist] = version(dist)
            except PackageNotFoundError:
                continue
        return out

    def cleanup(self) -> None:
        shutil.rmtree(self.data_dir, ignore_errors=True)


@dataclass
class PeerTarget(Target):
    """A peer server from bench/peers/."""

    name: str
    script: str
    runtime: str  # "node" or "python"
    sio: bool = False
    packages: tuple[str, ...] = ()
    kind: str = "peer"

    @property
    def peers_dir(self) -> Path:
        return repo_root() / "bench" / "peers"

    def _argv(self, port: int) -> list[str]:
        script = self.peers_dir / self.script
        if not script.is_file():
            raise BenchError(f"{self.name}: {script} not found")
        if self.runtime == "node":
            node = shutil.which("node")
            if node is None:
                raise BenchError(f"{self.name}: node is not installed (run bench/peers/install.sh)")
            if not (self.peers_dir / "node_modules").is_dir():
                raise BenchError(f"{self.name}: run bench/peers/install.sh first")
            return [node, str(script), str(port)]
        return [sys.executable, str(script), str(port)]

    def start(self, *, port: int, core: int | None) -> ServerProcess:
        return ServerProcess(self.name, self._argv(port), port=port, core=core, cwd=self.peers_dir)

    def sub_args(self, *, encoding: str = "json") -> list[str]:
        if self.sio:
            return ["--path", SIO_PATH, "--sio", "--init-wait", "1", "--init", "40", "--ready-frames", "2"]
        return ["--path", "/sub"]

    def pub_args(self, *, encoding: str = "json", pad: int = PAYLOAD_PAD) -> list[str]:
        if self.sio:
            return [
                "--path",
                SIO_PATH,
                "--sio",
                "--init-wait",
                "1",
                "--init",
                "40",
                "--ready-frames",
                "2",
                "--template",
                '42["pub",' + _peer_payload_template(pad) + "]",
            ]
        return ["--path", "/pub", "--template", _peer_payload_template(pad)]

    def versions(self) -> dict[str, str]:
        out: dict[str, str] = {}
        if self.runtime == "node":
            node = shutil.which("node")
            if node:
                out["node"] = subprocess.run(
                    [node, "--version"], capture_output=True, text=True, check=False
                ).stdout.strip()
            for package in self.packages:
                manifest = self.peers_dir / "node_modules" / package / "package.json"
                try:
                    out[package] = json.loads(manifest.read_text())["version"]
                except (OSError, ValueError, KeyError):
                    continue
        else:
            from importlib.metadata import PackageNotFoundError, version

            out["python"] = sys.version.split()[0]
            for dist in self.packages:
                try:
                    out[dist] = version(dist)
                except PackageNotFoundError:
                    continue
        return out


def peer_targets(names: Sequence[str] | None = None) -> list[PeerTarget]:
    """The peers in the order tables show them, optionally filtered by name."""
    peers = [
        PeerTarget("uwebsockets", "node_uws.js", "node", packages=("@trufflesuite/uws-js-unofficial",)),
        PeerTarget("node-ws", "node_ws.js", "node", packages=("ws",)),
        PeerTarget("node-socketio", "node_socketio.js", "node", sio=True, packages=("socket.io",)),
        PeerTarget("py-websockets", "py_websockets.py", "python", packages=("websockets",)),
        PeerTarget(
            "py-socketio",
            "py_socketio.py",
            "python",
            sio=True,
            packages=("python-socketio", "python-engineio", "uvicorn", "uvloop"),
        ),
    ]
    if names is None:
        return peers
    unknown = set(names) - {p.name for p in peers}
    if unknown:
        raise BenchError(f"unknown peers: {', '.join(sorted(unknown))} (known: {', '.join(PEER_NAMES)})")
    return [p for p in peers if p.name in names]
