"""Targeted fan-out inside the hub, without sockets: what one signal for one account costs as the
number of EAs subscribed to its strategy's channel grows.

A firm attaches one EA per account, all subscribed to the same ``signals:<strategy>``; most signals
are for a few accounts. The figure that matters is the hub's CPU per publication at N subscribers,
so this runs the hub's own ``fanout`` and flush on connections whose socket discards what it gets,
pinned to the server's core, and counts publications per CPU second. ``scan_us_per_publication``
is what the claim check of every subscriber alone costs (the fan-out before the channel index);
the index makes the cost flat in N.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from typing import Final

from bridge.auth.tokens import Claims, Verifier
from bridge.bench.procs import pinned
from bridge.bench.scenarios import Context, Row
from bridge.hub.connection import Connection
from bridge.hub.hub import Hub
from bridge.hub.limits import HubLimits
from bridge.protocol.channels import Role
from bridge.protocol.envelope import Encoding
from bridge.protocol.targeting import Targets

__all__ = ["run_targeted"]

CHANNEL: Final = "signals:bench"
#: Subscriber counts below the fan-out sizes, to show where the cost starts to grow.
SMALL_SIZES: Final = (10, 100)
FIRST_LOGIN: Final = 700_000


class _NullSink:
    """A socket that takes everything at once."""

    def write(self, data: bytes) -> None:
        pass

    def buffered(self) -> int:
        return 0

    def ping_frame(self) -> bytes:
        return b"\x89\x00"

    def close_frame(self, code: int, reason: str) -> bytes:
        return b"\x88\x02" + code.to_bytes(2, "big")

    def finish(self, flush: bool) -> None:
        pass


def _subscribe(hub: Hub, n: int) -> list[str]:
    channel = hub._channel(CHANNEL, hub.policy_for(CHANNEL))
    logins = [str(FIRST_LOGIN + i) for i in range(n)]
    expires = time.time() + 3600
    for i, login in enumerate(logins):
        conn = hub.connect(_NullSink(), Encoding.JSON, f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}")
        conn.claims = Claims(sub=f"ea-{login}", role=Role.EA, exp=expires, accounts=frozenset({login}))
        channel.add(conn)
        conn.subscriptions.add(CHANNEL)
    return logins


def _cpu_per_call(seconds: float, call: Callable[[int], object]) -> float:
    """CPU microseconds per call of ``call(i)``, run for about ``seconds`` of CPU."""
    calls, start = 0, time.process_time()
    deadline = start + seconds
    while True:
        for _ in range(100):
            call(calls)
            calls += 1
        now = time.process_time()
        if now >= deadline:
            return (now - start) / calls * 1e6


async def _measure(n: int, seconds: float) -> Row:
    verifier = Verifier(["HS256"], secret=secrets.token_bytes(32))
    hub = Hub(verifier, limits=HubLimits(max_connections_per_ip=None))
    logins = _subscribe(hub, n)
    targets = [Targets(frozenset({login}), frozenset()) for login in logins]
    payload = {"id": "x", "strategy": "bench", "accounts": [logins[0]], "action": "open", "pad": "x" * 120}

    def publish(i: int) -> None:
        hub.fanout(CHANNEL, i + 1, payload, targets[i % n])
        hub._flush()

    subs: list[Connection] = list(hub.channels[CHANNEL].json_subs)

    def scan(i: int) -> int:
        """The fan-out's claim check before the index: every subscriber, every signal."""
        t = targets[i % n]
        reached = 0
        for c in subs:
            claims = c.claims
            if claims is None or claims.role is not Role.EA or t.accepts(claims.accounts, claims.groups):
                reached += 1
        return reached

    us = _cpu_per_call(seconds, publish)
    scan_us = _cpu_per_call(seconds / 2, scan)
    for conn in list(hub.connections.values()):
        hub.disconnected(conn)
    return {
        "target": "mtbridge",
        "subscribers": n,
        "publications_per_s": round(1e6 / us),
        "us_per_publication": round(us, 2),
        "scan_us_per_publication": round(scan_us, 2),
    }


def run_targeted(ctx: Context) -> list[Row]:
    """One row per subscriber count, in this process pinned to the server's core."""
    sizes = sorted({*SMALL_SIZES, *ctx.plan.fanout_sizes})
    seconds = min(ctx.plan.measure_s, 2.0)
    with pinned(ctx.cores.server):
        rows = []
        for n in sizes:
            ctx.log(f"  targeted fan-out: {n:,} EAs on {CHANNEL}, each signal for one account ...")
            rows.append(asyncio.run(_measure(n, seconds)))
            row = rows[-1]
            ctx.log(
                f"    {row['us_per_publication']} us per publication "
                f"(the claim scan alone: {row['scan_us_per_publication']} us)"
            )
        return rows
