"""`mtbridge bench cluster`: the cross-node data path (issue 15), measured small on purpose.

Two hub nodes share a scratch PostgreSQL database and a ``redis-server`` of the bench's own (on a free
port, so that it can be killed). The clients are Python asyncio WebSocket clients in this process
(not the C load generator): the figures are latencies and catch-up times at fixed, modest rates, not
throughput limits. Three measurements:

- ``relay``: an engine on node A publishes on an ephemeral channel at a fixed rate; subscribers on
  node B receive it (cross-node, through Redis), subscribers on node A too (local), and the same load
  runs against a single hub without Redis. p50/p99 of publish-to-receive.
- ``durable``: signals published on node A (window of requests in flight), EAs on node B: signals/s
  committed and publish-to-EA p50/p99, end to end through PostgreSQL and Redis.
- ``restart``: the same durable load; Redis is SIGKILLed, left down ``REDIS_DOWN_S`` seconds and
  restarted; the time from the restart until every EA holds every signal committed before it, and
  the gap-fill counters of node B.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bridge.bench.exceptions import BenchError, NotAvailable
from bridge.bench.procs import ServerProcess, free_port
from bridge.bench.scenarios import Context, Row
from bridge.bench.targets import HUB_BENCH_ENV, HubTarget
from bridge.protocol.signals import signal_channel

__all__ = ["ClusterPlan", "run_cluster"]

STRATEGY = "bench"
SIGNALS = signal_channel(STRATEGY)
TICKS = "instrument:BENCH"
#: Seconds Redis stays down in ``restart``: longer than one periodic gap check (2 s).
REDIS_DOWN_S = 3.0
START_TIMEOUT = 60.0


@dataclass(frozen=True)
class ClusterPlan:
    relay_rate: float = 200.0  # ephemeral publications per second
    relay_subscribers: int = 10
    durable_rate: float = 200.0  # signals offered per second
    durable_eas: int = 10
    measure_s: float = 10.0

    @classmethod
    def quick_plan(cls) -> ClusterPlan:
        return cls(relay_rate=100.0, relay_subscribers=5, durable_rate=100.0, durable_eas=5, measure_s=4.0)


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class _Node:
    def __init__(self, name: str, command: list[str], root: Path, core: int | None, args: list[str]) -> None:
        self.port = free_port()
        self.url = f"ws://127.0.0.1:{self.port}/ws"
        self.http = f"http://127.0.0.1:{self.port}"
        data = root / name
        data.mkdir(parents=True, exist_ok=True)
        env = {
            **HUB_BENCH_ENV,
            "MTBRIDGE_JWT_SECRET_FILE": str(root / "jwt-secret"),
            "MTBRIDGE_NODE_ID": name,
        }
        env["MTBRIDGE_LOG_LEVEL"] = "warning"
        argv = [*command, "serve", "--data-dir", str(data), "--port", str(self.port), *args]
        self.proc = ServerProcess(name, argv, port=self.port, core=core, env=env)

    def metric(self, prefix: str) -> float:
        import urllib.request

        with urllib.request.urlopen(self.http + "/metrics", timeout=10) as r:  # noqa: S310 - http://127.0.0.1
            text = r.read().decode()
        return sum(
            float(line.rpartition(" ")[2])
            for line in text.splitlines()
            if line.startswith(prefix) and not line.startswith("#")
        )


class _Redis:
    def __init__(self, core: int | None) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            raise NotAvailable("cluster", "redis-server is not on PATH")
        self.exe, self.core, self.port = exe, core, free_port()
        self.proc: ServerProcess | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        argv = [self.exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.proc = ServerProcess("redis", argv, port=self.port, core=self.core)
        self.proc.wait_listening(START_TIMEOUT)

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.proc.kill()
            self.proc.proc.wait()
            self.proc.stop()
            self.proc = None


@dataclass
class _Ea:
    ws: Any
    got: dict[int, float] = field(default_factory=dict)


async def _connect(url: str, token: str) -> Any:
    import websockets

    ws = await websockets.connect(url, ping_interval=None, max_queue=None, open_timeout=30)
    await ws.recv()  # welcome
    await ws.send(json.dumps({"type": "auth", "requestId": "a", "payload": {"token": token}}))
    reply = json.loads(await ws.recv())
    if reply.get("type") != "result":
        raise BenchError(f"auth refused: {reply}")
    return ws


async def _subscribe(ws: Any, channel: str) -> None:
    await ws.send(json.dumps({"type": "subscribe", "requestId": "s", "channel": channel}))
    while True:
        msg = json.loads(await ws.recv())
        if msg.get("requestId") == "s":
            if msg["type"] != "result":
                raise BenchError(f"subscribe refused: {msg}")
            return


async def _collect(ws: Any, on_message: Callable[[dict[str, Any], float], None]) -> None:
    with contextlib.suppress(Exception):
        async for raw in ws:
            msg = json.loads(raw)
            if msg.get("type") == "message":
                on_message(msg, time.time())


def _latency_into(sink: list[float]) -> Callable[[dict[str, Any], float], None]:
    def on_message(msg: dict[str, Any], now: float) -> None:
        sink.append(now - msg["payload"]["t"])

    return on_message


def _arrival_into(got: dict[int, float]) -> Callable[[dict[str, Any], float], None]:
    def on_message(msg: dict[str, Any], now: float) -> None:
        got.setdefault(msg["offset"], now)

    return on_message


async def _paced(rate: float, seconds: float, send: Callable[[int], Awaitable[None]]) -> int:
    """Call ``send(i)`` ``rate`` times a second for ``seconds``; returns how many were sent."""
    n = int(rate * seconds)
    start = time.monotonic()
    for i in range(n):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        await send(i)
    return n


async def _relay(
    pub_url: str, sub_urls: dict[str, str], tokens: dict[str, str], plan: ClusterPlan
) -> list[Row]:
    """Ephemeral publish-to-receive latency, by where the subscribers are."""
    latencies: dict[str, list[float]] = {where: [] for where in sub_urls}
    subs: list[Any] = []
    readers = []
    for where, url in sub_urls.items():
        for _ in range(plan.relay_subscribers):
            ws = await _connect(url, tokens["dashboard"])
            await _subscribe(ws, TICKS)
            subs.append(ws)
            readers.append(asyncio.create_task(_collect(ws, _latency_into(latencies[where]))))
    engine = await _connect(pub_url, tokens["engine"])

    async def send(i: int) -> None:
        body = {"type": "publish", "channel": TICKS, "payload": {"t": time.time(), "i": i}}
        await engine.send(json.dumps(body))

    try:
        await _paced(plan.relay_rate, plan.measure_s, send)
        await asyncio.sleep(1.0)  # the last ones arrive
    finally:
        for task in readers:
            task.cancel()
        for ws in [*subs, engine]:
            await ws.close()
    return [
        {
            "measure": "relay",
            "where": where,
            "rate": plan.relay_rate,
            "subscribers": plan.relay_subscribers,
            "received": len(vals),
            "p50_ms": round(_pct(vals, 0.5) * 1000, 2),
            "p99_ms": round(_pct(vals, 0.99) * 1000, 2),
        }
        for where, vals in latencies.items()
    ]


async def _durable(
    a: _Node, b: _Node, tokens: dict[str, str], plan: ClusterPlan, redis: _Redis | None
) -> list[Row]:
    """Signals on node A to EAs on node B; with ``redis``, kill and restart it midway."""
    eas = [_Ea(await _connect(b.url, tokens["ea"])) for _ in range(plan.durable_eas)]
    sent_at: dict[int, float] = {}
    for ea in eas:
        await _subscribe(ea.ws, SIGNALS)
    readers = [asyncio.create_task(_collect(ea.ws, _arrival_into(ea.got))) for ea in eas]
    engine = await _connect(a.url, tokens["engine"])
    pending: dict[str, float] = {}
    committed: dict[int, float] = {}

    async def answers() -> None:
        with contextlib.suppress(Exception):
            async for raw in engine:
                msg = json.loads(raw)
                started = pending.pop(msg.get("requestId", ""), None)
                if started is not None and msg.get("type") == "result":
                    committed[msg["payload"]["offset"]] = started
                    sent_at[msg["payload"]["offset"]] = started

    reader = asyncio.create_task(answers())

    async def send(i: int) -> None:
        rid = f"p{i}"
        body = {
            "id": str(uuid.uuid4()), "strategy": STRATEGY, "accounts": ["90001"], "symbol": "EURUSD",
            "action": "open", "side": "buy", "orderType": "market", "volume": 0.01, "ttl": 600,
        }  # fmt: skip
        pending[rid] = time.time()
        await engine.send(
            json.dumps({"type": "publish", "requestId": rid, "channel": SIGNALS, "payload": body})
        )

    rows: list[Row] = []
    try:
        started = time.monotonic()
        if redis is None:
            n = await _paced(plan.durable_rate, plan.measure_s, send)
        else:
            half = plan.measure_s / 2

            async def chaos() -> tuple[float, int]:
                await asyncio.sleep(half)
                redis.kill()
                await asyncio.sleep(REDIS_DOWN_S)
                top = max(committed, default=0)
                await asyncio.to_thread(redis.start)
                return time.time(), top

            chaos_task = asyncio.create_task(chaos())
            n = await _paced(plan.durable_rate, plan.measure_s + REDIS_DOWN_S, send)
            restarted, top_at_restart = await chaos_task
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (  # noqa: ASYNC110 - polling the collectors' dicts
            len(committed) < n or any(len(ea.got) < len(committed) for ea in eas)
        ):
            await asyncio.sleep(0.01)
        elapsed = time.monotonic() - started
        complete = all(len(ea.got) >= n for ea in eas)
        lat = [ea.got[o] - sent_at[o] for ea in eas for o in ea.got if o in sent_at]
        row: Row = {
            "measure": "durable" if redis is None else "restart",
            "where": "A->B",
            "rate": plan.durable_rate,
            "eas": plan.durable_eas,
            "committed": len(committed),
            "complete": complete,
            "signals_per_s": round(len(committed) / elapsed, 1),
            "p50_ms": round(_pct(lat, 0.5) * 1000, 2),
            "p99_ms": round(_pct(lat, 0.99) * 1000, 2),
        }
        if redis is not None:
            caught = max(
                (ea.got[o] for ea in eas for o in range(1, top_at_restart + 1) if o in ea.got), default=0.0
            )
            # From the restart until the last EA holds every signal committed before it; 0 when the
            # periodic check had already filled everything from the store during the outage.
            row["catch_up_s"] = round(max(0.0, caught - restarted), 2)
            row["gap_fills"] = b.metric("mtbridge_gap_fills_total")
            row["gap_filled"] = b.metric("mtbridge_gap_filled_publications_total")
        rows.append(row)
    finally:
        reader.cancel()
        for task in readers:
            task.cancel()
        for ws in [engine, *(ea.ws for ea in eas)]:
            await ws.close()
    return rows


def run_cluster(ctx: Context, command: list[str], database_url: str, plan: ClusterPlan) -> list[Row]:
    """Start Redis, two nodes on ``database_url`` and a single hub, then measure."""
    root = Path(tempfile.mkdtemp(prefix="mtbridge-bench-cluster-"))
    redis = _Redis(ctx.cores.client)
    redis.start()
    from bridge.auth.tokens import issue, load_or_create_secret

    secret, _ = load_or_create_secret(root / "jwt-secret")
    now = time.time()
    tokens = {
        "engine": issue(
            secret, sub="bench-engine", role="engine", now=now, ttl=3600, publish=[SIGNALS, TICKS]
        ),
        "dashboard": issue(secret, sub="bench-dash", role="dashboard", now=now, ttl=3600),
        "ea": issue(
            secret, sub="bench-ea", role="ea", now=now, ttl=3600, accounts=["90001"], subscribe=[SIGNALS]
        ),
    }
    cluster_args = ["--database-url", database_url, "--redis-url", redis.url]
    nodes = [_Node(n, command, root, ctx.cores.server, cluster_args) for n in ("a", "b")]
    single = _Node("single", command, root, ctx.cores.server, [])
    rows: list[Row] = []
    try:
        for node in [*nodes, single]:
            node.proc.wait_listening(START_TIMEOUT)
        a, b = nodes
        ctx.log("  cluster: relay (ephemeral) A->B, A->A and a single hub ...")
        rows += asyncio.run(_relay(a.url, {"A->B": b.url, "A->A": a.url}, tokens, plan))
        single_rows = asyncio.run(_relay(single.url, {"single": single.url}, tokens, plan))
        rows += single_rows
        ctx.log("  cluster: durable signals A->B on PostgreSQL ...")
        rows += asyncio.run(_durable(a, b, tokens, plan, None))
        ctx.log("  cluster: Redis SIGKILLed and restarted under durable load ...")
        rows += asyncio.run(_durable(a, b, tokens, plan, redis))
    finally:
        for node in [*nodes, single]:
            node.proc.stop()
        redis.kill()
        shutil.rmtree(root, ignore_errors=True)
    return rows


def default_command() -> list[str]:
    return HubTarget.default_command()
