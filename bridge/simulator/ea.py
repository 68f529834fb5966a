"""The simulated EA: the MQL5 EA's protocol behaviour, in Python, over :mod:`bridge.client`.

What it does, as ``mql5/Experts/MTBridgeEA.mq5`` does:

- subscribes to ``signals:<strategy>`` for each strategy and to ``account:<login>:control``, with
  ``since`` = the last offset it processed (persisted) and that channel's epoch;
- for each signal targeted at its login: sends ``signal.ack``; if the id was handled before, stops
  there; else executes it on the simulated account (or rejects it: paused, guards) and queues the
  trade events; the execution, the events and the new offset are saved in one atomic write;
- sends queued events with ``trade.event`` and drops each from the outbox only when its ``result``
  arrived (the hub committed it); the outbox survives restarts and is resent until confirmed;
- applies pause/resume control messages; sends an ``account`` snapshot periodically;
- applies the daily loss limit (``RiskGuards.max_daily_loss_pct``) before each signal, after each price
  move and when the broker day rolls over, and reports a pause or its end as an ``account`` event.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bridge.client import Client, ClientError, Message, RecoveryFailed, RequestError, connect
from bridge.client._transport import Transport
from bridge.protocol.signals import signal_channel
from bridge.simulator.account import RiskGuards
from bridge.simulator.risk import broker_day
from bridge.simulator.state import EAState, load_state, save_state, state_path
from bridge.tasks import cancel_and_wait

__all__ = ["DEFAULT_SNAPSHOT_INTERVAL", "OUTBOX_WINDOW", "EventSink", "SimulatedEA"]

logger = logging.getLogger("mtbridge.simulator")

DEFAULT_SNAPSHOT_INTERVAL = 60.0
#: Trade events sent concurrently; the hub answers each after its group commit.
OUTBOX_WINDOW = 64
#: Pause after a round with failed sends (the client itself waits for the connection).
RETRY_PAUSE = 0.5
#: How often pending orders are checked for expiry (prices move only through :meth:`set_price`).
PENDING_CHECK_INTERVAL = 0.2

#: ``sink(kind, data)``: a line for a human (kind: signal, control, event, gap, dropped).
EventSink = Callable[[str, dict[str, Any]], None]


class SimulatedEA:
    """One simulated terminal: one login, one state file, one hub connection."""

    def __init__(
        self,
        url: str,
        token: str,
        account: str,
        strategies: list[str],
        state_dir: Path,
        *,
        guards: RiskGuards | None = None,
        snapshot_interval: float | None = DEFAULT_SNAPSHOT_INTERVAL,
        from_start: bool = False,
        balance: float = 10_000.0,
        clock: Callable[[], float] = time.time,
        transport: Transport | None = None,
        sink: EventSink | None = None,
        client_options: dict[str, Any] | None = None,
        on_queued: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.url = url
        self.token = token
        self.login = account
        self.strategies = strategies
        self.path = state_path(state_dir, account)
        self.guards = guards or RiskGuards()
        self.snapshot_interval = snapshot_interval
        self.from_start = from_start
        self.clock = clock
        self.transport = transport
        self.sink = sink
        self.client_options = client_options or {}
        self.on_queued = on_queued
        self.state: EAState = load_state(self.path, account, balance=balance)
        self.client: Client | None = None
        self.confirmed = 0
        self.dropped = 0
        self._outbox_ready = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopped = asyncio.Event()

    @property
    def control_channel(self) -> str:
        return f"account:{self.login}:control"

    # -- lifecycle ------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect (retrying until the hub is there), subscribe, start sending the outbox."""
        options: dict[str, Any] = {"on_gap": self._on_gap, **self.client_options}
        if self.transport is not None:
            options["transport"] = self.transport
        self.check_pending()  # as the EA's OnInit: the broker day's starting equity, a pause to end
        self.client = await connect(self.url, self.token, retry=True, **options)
        self._spawn(self._send_loop())
        if self.snapshot_interval:
            self._spawn(self._snapshot_loop(self.snapshot_interval))
        self._spawn(self._pending_loop())
        for strategy in self.strategies:
            await self._subscribe(signal_channel(strategy), self._signal_handler(strategy))
        await self._subscribe(self.control_channel, self._on_control)
        if self.state.outbox:
            self._outbox_ready.set()

    async def stop(self) -> None:
        """Close the connection and every task; the state on disk is already current."""
        await cancel_and_wait(list(self._tasks))
        if self.client is not None:
            await self.client.close()
        self._stopped.set()

    async def run(self, duration: float | None = None) -> None:
        """Start, then run until ``duration`` elapsed (or forever) or the client ends for good."""
        await self.start()
        assert self.client is not None
        try:
            waiter = asyncio.ensure_future(self.client.wait_closed())
            try:
                await asyncio.wait_for(asyncio.shield(waiter), duration)
            except TimeoutError:
                pass
            finally:
                waiter.cancel()
                await asyncio.gather(waiter, return_exceptions=True)
        finally:
            await self.stop()

    async def drain(self) -> None:
        """Until the outbox is empty (every event confirmed by the hub)."""
        while self.state.outbox:
            self._outbox_ready.set()
            await asyncio.sleep(0.02)

    # -- inbound --------------------------------------------------------------------------------------

    async def _subscribe(self, channel: str, callback: Callable[[Message], Any]) -> None:
        assert self.client is not None
        since, epoch = self.state.offset(channel)
        if since is None and self.from_start:
            since = 0
        await self.client.subscribe(channel, callback, since=since, epoch=epoch)

    def _epoch(self, channel: str) -> str | None:
        sub = self.client.subscriptions.get(channel) if self.client is not None else None
        return sub.epoch if sub is not None else None

    def _advance(self, message: Message) -> None:
        self.state.offsets[message.channel] = [message.offset, self._epoch(message.channel)]

    def _signal_handler(self, strategy: str) -> Callable[[Message], Awaitable[None]]:
        async def handle(message: Message) -> None:
            await self._on_signal(strategy, message)

        return handle

    async def _on_signal(self, strategy: str, message: Message) -> None:
        signal = message.payload
        sid = signal.get("id")
        if not isinstance(sid, str) or not sid:
            self._advance(message)
            save_state(self.path, self.state)
            return
        accounts = signal.get("accounts")
        if (
            isinstance(accounts, list)
            and not signal.get("groups")
            and not (self.login in accounts or "*" in accounts)
        ):
            self._advance(message)  # not ours: never act on it (the hub should not have sent it)
            save_state(self.path, self.state)
            return
        self._spawn(self._ack(sid))
        if sid in self.state.signals:
            self._advance(message)
            save_state(self.path, self.state)
            self._emit("signal", {"id": sid, "outcome": "duplicate", "offset": message.offset})
            return
        now_ms = int(self.clock() * 1000)
        self._queue(self.state.account.check_daily_loss(now_ms, self.guards))
        events = self.state.account.execute(
            signal, now_ms, self.guards, paused=self.state.is_paused(strategy)
        )
        rejected = len(events) == 1 and events[0].get("state") == "rejected"
        outcome = "rejected" if rejected else "executed"
        self.state.remember(sid, outcome)
        self._queue(events)
        self._advance(message)
        save_state(self.path, self.state)
        self._outbox_ready.set()
        self._emit(
            "signal",
            {
                "id": sid,
                "strategy": strategy,
                "offset": message.offset,
                "action": signal.get("action"),
                "side": signal.get("side"),
                "volume": signal.get("volume"),
                "symbol": signal.get("symbol"),
                "outcome": outcome,
                "message": events[0].get("message") if rejected else None,
                "events": len(events),
            },
        )

    async def _on_control(self, message: Message) -> None:
        control = message.payload
        command, scope = control.get("command"), control.get("scope")
        if command in ("pause", "resume"):
            pause = command == "pause"
            if scope == "account":
                self.state.paused_account = pause
                if not pause:  # an operator's resume also ends a daily-loss pause
                    now_ms = int(self.clock() * 1000)
                    self._queue(self.state.account.resume_daily_loss(now_ms, self.guards))
                    self._outbox_ready.set()
            elif scope == "strategy" and isinstance(control.get("strategy"), str):
                strategy = control["strategy"]
                strategies = [s for s in self.state.paused_strategies if s != strategy]
                self.state.paused_strategies = [*strategies, strategy] if pause else strategies
            self._emit("control", {"command": command, "scope": scope, "strategy": control.get("strategy")})
        self._advance(message)
        save_state(self.path, self.state)

    async def _ack(self, signal_id: str) -> None:
        assert self.client is not None
        try:
            await self.client.signal_ack(signal_id, self.login)
        except ClientError as exc:
            logger.info("signal.ack %s: %s", signal_id, exc)  # the execution report proves delivery anyway

    def _on_gap(self, gap: RecoveryFailed) -> None:
        logger.warning("%s", gap)
        self._emit(
            "gap", {"channel": gap.channel, "reason": gap.reason, "since": gap.since, "offset": gap.offset}
        )

    # -- outbound -------------------------------------------------------------------------------------

    async def _send_loop(self) -> None:
        assert self.client is not None
        while True:
            await self._outbox_ready.wait()
            batch = list(self.state.outbox[:OUTBOX_WINDOW])
            if not batch:
                self._outbox_ready.clear()
                continue
            results = await asyncio.gather(
                *(self.client.trade_event(e) for e in batch), return_exceptions=True
            )
            settled: set[str] = set()
            failed = False
            for event, result in zip(batch, results, strict=True):
                if isinstance(result, dict):
                    settled.add(event["id"])
                    self.confirmed += 1
                    self._emit("event", {**event, "duplicate": result.get("duplicate")})
                elif isinstance(result, RequestError) and not result.retryable:
                    # The hub will never take it (e.g. validation_failed): keeping it would block the outbox.
                    logger.error("trade event %s refused for good: %s", event["id"], result)
                    settled.add(event["id"])
                    self.dropped += 1
                    self._emit("dropped", {"id": event["id"], "error": str(result)})
                elif isinstance(result, BaseException) and not isinstance(result, ClientError | TimeoutError):
                    raise result
                else:
                    failed = True
            if settled:
                self.state.outbox = [e for e in self.state.outbox if e["id"] not in settled]
                save_state(self.path, self.state)
            if failed:
                await asyncio.sleep(RETRY_PAUSE)

    def set_price(self, symbol: str, bid: float, ask: float) -> None:
        """Move the simulated market (tests, demos); pending orders it reaches fill at once."""
        self.state.account.set_quote(symbol, bid, ask)
        self.check_pending()

    def check_pending(self) -> None:
        """Expire and trigger pending orders; their events carry the signal that placed them."""
        now_ms = int(self.clock() * 1000)
        events = self.state.account.check_pending(now_ms, self.guards)
        events += self.state.account.check_daily_loss(now_ms, self.guards)
        if events:
            self._queue(events)
            self._outbox_ready.set()
        save_state(self.path, self.state)

    async def _pending_loop(self) -> None:
        """Pending orders expire with time, as on the trade server; the broker day rolls over."""
        while True:
            await asyncio.sleep(PENDING_CHECK_INTERVAL)
            day = self.state.account.daily.day
            if self.state.account.orders or day != broker_day(self.guards.server_s(int(self.clock() * 1000))):
                self.check_pending()

    async def _snapshot_loop(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            self._queue([self.state.account.snapshot(int(self.clock() * 1000))])
            save_state(self.path, self.state)
            self._outbox_ready.set()

    # -- helpers --------------------------------------------------------------------------------------

    def _queue(self, events: list[dict[str, Any]]) -> None:
        """Into the outbox (saved by the caller); ``on_queued`` sees them in the order they happened."""
        self.state.outbox.extend(events)
        if self.on_queued is not None:
            for event in events:
                self.on_queued(event)

    def _emit(self, kind: str, data: dict[str, Any]) -> None:
        if self.sink is not None:
            try:
                self.sink(kind, {"account": self.login, **data})
            except Exception:
                logger.exception("event sink failed")

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
