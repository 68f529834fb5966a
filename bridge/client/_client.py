"""The client: one logical session with a hub that survives reconnects.

Life of a client (one runner task drives it)::

    CONNECTING ──auth ok, subscriptions restored──▶ OPEN ──link lost──▶ RECONNECTING ─┐
        ▲                                                                               │
        └──────────────── backoff (or the hub's reconnect.afterMs) ◀────────────────────┘
    any state ──close() or terminal close code (4500-4999, 1000)──▶ CLOSED

Every connection authenticates with its first message, then resubscribes every subscription with
``since`` and ``epoch`` (see :mod:`bridge.client._subscription`), and only then lets application
requests through. Requests carry a ``requestId`` and wait on a future with a timeout; a request in
flight when the link drops fails with :class:`ConnectionClosed` (publishing a signal again with the
same ``id`` is safe: the hub answers ``duplicate: true``).

Timeouts use ``asyncio.timeout``, not ``asyncio.wait_for``: on Python 3.11, ``wait_for`` can lose a
cancellation that arrives as its inner awaitable finishes (CPython gh-86296, fixed in 3.12), and a
runner that survives ``close()``'s cancel leaves ``close()`` waiting for it forever. A CI run hung in
a client test's teardown, in ``close()``, with the event loop idle.

Size (about 900 lines, over the 600-line rule): the session state machine, request futures, the
reconnect loop and the REST-made subscriptions hook share the client's one runner task and its state;
splitting the request bookkeeping into a module of its own is the next step (issue 19).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import logging
import random
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Literal

from bridge.client import _backoff
from bridge.client._exceptions import (
    AuthenticationFailed,
    ClientClosed,
    ClientError,
    ConnectError,
    ConnectionClosed,
    RecoveryFailed,
    RequestError,
    RequestTimeout,
)
from bridge.client._messages import Incoming, ProtocolViolation, decode_incoming, encode_outgoing
from bridge.client._subscription import (
    DEFAULT_MAX_QUEUE,
    GapHandler,
    MessageHandler,
    Subscription,
    SubState,
)
from bridge.client._transport import Link, Transport, TransportClosed, WebSocketTransport
from bridge.protocol import codes
from bridge.protocol.envelope import Encoding
from bridge.redact import redact_url

__all__ = [
    "DEFAULT_HEARTBEAT_INTERVAL",
    "DEFAULT_MAX_MESSAGE_BYTES",
    "DEFAULT_MAX_MISSED_HEARTBEATS",
    "DEFAULT_OPEN_TIMEOUT",
    "DEFAULT_REQUEST_TIMEOUT",
    "Client",
    "ClientStats",
    "PublishResult",
    "State",
    "SubscribedHandler",
    "TokenProvider",
    "connect",
]

logger = logging.getLogger("mtbridge.client")

DEFAULT_REQUEST_TIMEOUT = 10.0
DEFAULT_OPEN_TIMEOUT = 10.0
#: docs/protocol.md: 20 s is a good interval; two missed answers mean the connection is dead.
DEFAULT_HEARTBEAT_INTERVAL = 20.0
DEFAULT_MAX_MISSED_HEARTBEATS = 2
#: Largest message accepted from the hub (the hub's own limit is 64 KiB per message; replays are
#: separate messages). ``None`` disables the check.
DEFAULT_MAX_MESSAGE_BYTES: int | None = 1024 * 1024
#: Longest ``reconnect.afterMs`` honoured; a larger hint is treated as this.
MAX_RECONNECT_HINT = 60.0

TokenProvider = Callable[[], "str | Awaitable[str]"]
StatusHandler = Callable[[dict[str, Any]], "Awaitable[None] | None"]
#: Called (synchronously, from the reader, before any of its messages) with a :class:`Subscription`
#: the hub made for this connection over REST; return a message callback to consume it in callback
#: mode, or None and iterate the subscription. docs/protocol.md, "Subscriptions managed over REST".
SubscribedHandler = Callable[[Subscription], "MessageHandler | None"]


class State(IntEnum):
    CONNECTING = 0
    OPEN = 1
    RECONNECTING = 2
    CLOSING = 3
    CLOSED = 4


@dataclass(frozen=True, slots=True)
class PublishResult:
    offset: int
    epoch: str | None
    duplicate: bool


@dataclass
class ClientStats:
    """Counters for tests, dashboards and the demo."""

    connects: int = 0
    reconnects: int = 0
    failed_attempts: int = 0
    duplicates_dropped: int = 0
    heartbeats_missed: int = 0
    token_refreshes: int = 0
    #: (attempt, delay in seconds, close code that caused it) of the latest reconnect waits.
    delays: deque[tuple[int, float, int | None]] = field(default_factory=lambda: deque(maxlen=100))


class _Terminal(Exception):
    """Internal: stop the runner, the client is done."""

    def __init__(self, error: ClientError) -> None:
        self.error = error


class Client:
    """A session with one hub; see the module docstring. Create it with :func:`connect`."""

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        token_provider: TokenProvider | None = None,
        encoding: Literal["json", "msgpack"] | Encoding = "json",
        transport: Transport | None = None,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
        open_timeout: float = DEFAULT_OPEN_TIMEOUT,
        heartbeat_interval: float | None = DEFAULT_HEARTBEAT_INTERVAL,
        max_missed_heartbeats: int = DEFAULT_MAX_MISSED_HEARTBEATS,
        max_message_bytes: int | None = DEFAULT_MAX_MESSAGE_BYTES,
        reconnect: bool = True,
        backoff_initial: float | None = None,
        backoff_factor: float | None = None,
        backoff_max: float | None = None,
        rand: Callable[[], float] = random.random,
        on_gap: GapHandler | None = None,
        on_signal_status: StatusHandler | None = None,
        on_state: Callable[[State], None] | None = None,
        on_subscribed: SubscribedHandler | None = None,
    ) -> None:
        if token is None and token_provider is None:
            raise ValueError("give a token or a token_provider")
        self.url = url
        self._token = token
        self._token_provider = token_provider
        self.encoding = Encoding(encoding)
        self.transport = transport or WebSocketTransport()
        self.request_timeout = request_timeout
        self.open_timeout = open_timeout
        self.heartbeat_interval = heartbeat_interval
        self.max_missed_heartbeats = max_missed_heartbeats
        self.max_message_bytes = max_message_bytes
        self.reconnect = reconnect
        self.backoff_initial = backoff_initial
        self.backoff_factor = backoff_factor
        self.backoff_max = backoff_max
        self.rand = rand
        self.on_gap = on_gap
        self.on_signal_status = on_signal_status
        self.on_state = on_state
        self.on_subscribed = on_subscribed
        self.stats = ClientStats()
        #: ``result`` of the last ``auth`` (sub, role, expiresAt, connectionId).
        self.session: dict[str, Any] = {}
        #: ``welcome.payload`` of the current connection.
        self.welcome: dict[str, Any] = {}
        #: Why the client closed for good (None while running or after a normal close).
        self.close_error: ClientError | None = None
        self._state = State.CONNECTING
        self._subs: dict[str, Subscription] = {}
        self._pending: dict[
            str, tuple[asyncio.Future[dict[str, Any]], Callable[[Incoming], None] | None]
        ] = {}
        self._ids = itertools.count(1)
        self._link: Link | None = None
        self._generation = 0
        self._open = asyncio.Event()
        self._closed = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._hint: float | None = None
        self._forced_code: int | None = None

    # -- lifecycle ------------------------------------------------------------------------------------

    @property
    def state(self) -> State:
        return self._state

    def _set_state(self, state: State) -> None:
        if state is self._state:
            return
        logger.debug("= %s -> %s", self._state.name, state.name)
        self._state = state
        if self.on_state is not None:
            try:
                self.on_state(state)
            except Exception:
                logger.exception("on_state callback failed")

    async def start(self, *, retry: bool = False) -> None:
        """Connect and authenticate. With ``retry`` the first connection also backs off and retries.

        Raises:
            ConnectError: the hub is unreachable (only without ``retry``).
            AuthenticationFailed: the hub refused the token.
        """
        if self._runner is not None:
            raise ClientError("client already started")
        first: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._runner = asyncio.create_task(self._run(first, retry), name="mtbridge-client")
        try:
            await asyncio.shield(first)
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Close the connection and every task of this client; idempotent."""
        if self._state is State.CLOSED:
            return
        self._set_state(State.CLOSING)
        runner, self._runner = self._runner, None
        if runner is not None and runner is not asyncio.current_task():
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
        await self._shutdown(self.close_error)

    async def _shutdown(self, error: ClientError | None) -> None:
        link, self._link = self._link, None
        if link is not None:
            try:
                await link.close(1000, "client closing")
            except Exception:  # the link may already be gone; closing is best effort
                logger.debug("link close failed", exc_info=True)
        self._fail_pending(ClientClosed(None, "client closed"))
        for sub in list(self._subs.values()):
            sub.end(error)
        subs = list(self._subs.values())
        self._subs.clear()
        for sub in subs:
            await sub.stop_dispatcher()
        tasks = [t for t in self._tasks if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._open.clear()
        self._set_state(State.CLOSED)
        self._closed.set()

    async def wait_closed(self) -> None:
        """Until the client is closed; raises the terminal error if it ended on one."""
        await self._closed.wait()
        if self.close_error is not None:
            raise self.close_error

    async def __aenter__(self) -> Client:
        if self._runner is None:
            await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- public requests ------------------------------------------------------------------------------

    async def request(
        self,
        mtype: str,
        *,
        channel: str | None = None,
        payload: dict[str, Any] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> dict[str, Any]:
        """Send one request and return its ``result`` payload.

        Waits for the connection to be open (within the same timeout).

        Raises:
            RequestError: the hub answered ``error``.
            RequestTimeout: no answer in time.
            ConnectionClosed: the link dropped before the answer.
            ClientClosed: the client is closed.
        """
        timeout = self.request_timeout if timeout is None else timeout
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        if self._state is State.CLOSED or self._state is State.CLOSING:
            raise self.close_error or ClientClosed(None, "client closed")
        if not self._open.is_set():
            try:
                async with asyncio.timeout(timeout):
                    await self._wait_open()
            except TimeoutError as exc:
                raise RequestTimeout(mtype, timeout) from exc
        link = self._link
        if link is None:
            raise ConnectionClosed(None, "not connected")
        return await self._request(link, mtype, channel, payload, max(0.0, deadline - loop.time()))

    async def publish(
        self,
        channel: str,
        payload: dict[str, Any],
        *,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> PublishResult:
        """Publish and wait for the hub's result (on durable channels: after the commit)."""
        result = await self.request("publish", channel=channel, payload=payload, timeout=timeout)
        offset = result.get("offset")
        epoch = result.get("epoch")
        return PublishResult(
            offset if isinstance(offset, int) and not isinstance(offset, bool) else 0,
            epoch if isinstance(epoch, str) else None,
            result.get("duplicate") is True,
        )

    async def signal_ack(
        self,
        signal_id: str,
        account: str | None = None,
        *,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> dict[str, Any]:
        """Acknowledge receipt of a signal (``signal.ack``); returns ``{signalId, account, status}``."""
        payload: dict[str, Any] = {"signalId": signal_id}
        if account is not None:
            payload["account"] = account
        return await self.request("signal.ack", payload=payload, timeout=timeout)

    async def trade_event(
        self,
        event: dict[str, Any],
        *,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> dict[str, Any]:
        """Report a trade event; the ``result`` (``{id, duplicate}``) means the hub committed it."""
        return await self.request("trade.event", payload=event, timeout=timeout)

    async def heartbeat(self, *, timeout: float | None = None) -> int:  # noqa: ASYNC109
        """Round trip a ``heartbeat``; returns the hub's clock (unix ms)."""
        result = await self.request("heartbeat", timeout=timeout)
        ts = result.get("ts")
        return ts if isinstance(ts, int) else 0

    async def subscribe(
        self,
        channel: str,
        callback: MessageHandler | None = None,
        *,
        since: int | None = None,
        epoch: str | None = None,
        on_gap: GapHandler | None = None,
        max_queue: int = DEFAULT_MAX_QUEUE,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> Subscription:
        """Subscribe and wait for the hub's first result.

        Args:
            channel: e.g. ``signals:alpha``.
            callback: called (and awaited, one at a time, in order) for each message; without it,
                iterate the returned :class:`Subscription`.
            since: the last offset the application already processed (recovery from there).
            epoch: the channel epoch that ``since`` belongs to.
            on_gap: called with :class:`RecoveryFailed` when the hub cannot fill a gap (callback mode;
                falls back to the client's ``on_gap``, else it is logged as an error).
            max_queue: messages queued for the application before the channel is paused.

        Raises:
            RequestError: the hub refused (e.g. ``forbidden``).
        """
        if self._state in (State.CLOSING, State.CLOSED):
            raise self.close_error or ClientClosed(None, "client closed")
        if channel in self._subs:
            raise ClientError(f"already subscribed to {channel}")
        sub = Subscription(
            self, channel, since=since, epoch=epoch, callback=callback, on_gap=on_gap, max_queue=max_queue
        )
        self._subs[channel] = sub
        if self._open.is_set() and self._link is not None:
            self._spawn(self._resubscribe(self._link, self._generation, sub))
        try:
            async with asyncio.timeout(self.request_timeout if timeout is None else timeout):
                await sub.wait_subscribed()
        except BaseException as exc:
            if self._subs.get(channel) is sub:
                del self._subs[channel]
            sub.end(None)
            if isinstance(exc, TimeoutError):
                raise RequestTimeout(
                    "subscribe", self.request_timeout if timeout is None else timeout
                ) from exc
            raise
        sub.start_dispatcher()
        return sub

    async def unsubscribe(self, sub: Subscription) -> None:
        if self._subs.get(sub.channel) is sub:
            del self._subs[sub.channel]
            if self._open.is_set() and sub.state is SubState.ACTIVE:
                try:
                    await self.request("unsubscribe", channel=sub.channel)
                except ClientError as exc:
                    logger.debug("unsubscribe %s: %s", sub.channel, exc)
        sub.end(None)
        await sub.stop_dispatcher()

    @property
    def subscriptions(self) -> dict[str, Subscription]:
        return dict(self._subs)

    # -- hooks for subscriptions ----------------------------------------------------------------------

    async def report_gap(self, sub: Subscription, gap: RecoveryFailed) -> None:
        handler = sub.on_gap or self.on_gap
        if handler is None:
            logger.error("%s", gap)
            return
        try:
            outcome = handler(gap)
            if outcome is not None:
                await outcome
        except Exception:
            logger.exception("on_gap handler failed for %s", sub.channel)

    def suspend(self, sub: Subscription) -> None:
        """The application fell ``max_queue`` behind on a durable channel: stop it at the hub."""
        if sub.state is not SubState.ACTIVE:
            return
        sub.state = SubState.SUSPENDED
        logger.warning("%s: %d messages queued, pausing the channel", sub.channel, sub.queued)
        if self._link is not None and self._open.is_set():
            link = self._link
            self._spawn(
                self._quiet(self._request(link, "unsubscribe", sub.channel, None, self.request_timeout))
            )

    def resume(self, sub: Subscription) -> None:
        """Half the queue was drained: resubscribe from what is already queued."""
        sub.state = SubState.PENDING
        sub.generation = -1
        if self._link is not None and self._open.is_set():
            self._spawn(self._resubscribe(self._link, self._generation, sub))

    # -- the runner -----------------------------------------------------------------------------------

    async def _run(self, first: asyncio.Future[None], retry: bool) -> None:
        attempt = 0
        code: int | None = None
        try:
            while True:
                try:
                    link = await self._connect()
                except (
                    ConnectError,
                    TransportClosed,
                    ProtocolViolation,
                    TimeoutError,
                    ConnectionClosed,
                ) as exc:
                    self.stats.failed_attempts += 1
                    if not first.done() and not retry:
                        first.set_exception(exc if isinstance(exc, ClientError) else ConnectError(str(exc)))
                        return
                    code = None
                    if isinstance(exc, TransportClosed):
                        code = exc.code
                        if not codes.is_reconnect(code) or not self.reconnect:
                            raise _Terminal(ClientClosed(exc.code, exc.reason)) from exc
                    logger.info("connect failed (%s); retrying", type(exc).__name__)
                else:
                    before = self.stats.connects
                    code = await self._serve(link, first)
                    if self.stats.connects > before:
                        attempt = 0
                    elif not first.done() and not retry:
                        first.set_exception(ConnectionClosed(code, "connection lost while authenticating"))
                        return
                    if code == 1000 or not codes.is_reconnect(code) or not self.reconnect:
                        raise _Terminal(
                            ClientClosed(
                                code, codes.CLOSE_CODES[code].reason if code in codes.CLOSE_CODES else ""
                            )
                        )
                await self._wait_before_reconnect(attempt, code)
                attempt += 1
        except _Terminal as term:
            logger.warning("client stopped: %s", term.error)
            self.close_error = term.error
            if not first.done():
                first.set_exception(term.error)
            self._runner = None
            await self._shutdown(term.error)
        except asyncio.CancelledError:
            if not first.done():
                first.set_exception(ClientClosed(None, "client closed"))
            raise

    async def _wait_before_reconnect(self, attempt: int, code: int | None) -> None:
        self._set_state(State.RECONNECTING)
        if self._hint is not None:
            delay, self._hint = self._hint, None
        else:
            delay = _backoff.backoff_delay(
                attempt,
                rand=self.rand,
                initial=self.backoff_initial,
                factor=self.backoff_factor,
                cap=self.backoff_max,
            )
        delay = max(delay, _backoff.minimum_delay(code))
        self.stats.delays.append((attempt, delay, code))
        logger.info("reconnecting in %.2f s (attempt %d, close code %s)", delay, attempt + 1, code)
        await asyncio.sleep(delay)

    async def _token_now(self) -> str:
        if self._token_provider is not None:
            token = self._token_provider()
            if inspect.isawaitable(token):
                token = await token
            if not isinstance(token, str):
                raise TypeError("token_provider must return a string")
            return token
        assert self._token is not None
        return self._token

    async def _connect(self) -> Link:
        """Open a link, read ``welcome``, authenticate; the link is returned only when usable."""
        self._set_state(State.CONNECTING if self.stats.connects == 0 else State.RECONNECTING)
        link = await self.transport.connect(
            self.url,
            self.encoding.subprotocol,
            open_timeout=self.open_timeout,
            max_size=self.max_message_bytes,
        )
        try:
            async with asyncio.timeout(self.open_timeout):
                raw = await link.recv()
            welcome = decode_incoming(raw, self.encoding)
            if welcome.type != "welcome":
                raise ProtocolViolation(f"expected welcome, got {welcome.type!r}")
            self.welcome = welcome.payload or {}
        except BaseException:
            await link.close(1002, "bad welcome")
            raise
        return link

    async def _serve(self, link: Link, first: asyncio.Future[None]) -> int:
        """Run one connection: auth, restore subscriptions, then read until it closes; returns the code."""
        self._generation += 1
        generation = self._generation
        self._link = link
        self._forced_code = None
        reader = asyncio.create_task(self._read(link), name="mtbridge-client-reader")
        beat: asyncio.Task[None] | None = None
        try:
            await self._authenticate(link)
            await asyncio.gather(
                *(
                    self._resubscribe(link, generation, s)
                    for s in list(self._subs.values())
                    if s.state is not SubState.SUSPENDED
                )
            )
            if reader.done():
                return reader.result()
            if self.stats.connects:
                self.stats.reconnects += 1
            self.stats.connects += 1
            self._set_state(State.OPEN)
            self._open.set()
            if not first.done():
                first.set_result(None)
            if self.heartbeat_interval:
                beat = asyncio.create_task(self._heartbeat(link), name="mtbridge-client-heartbeat")
            return await asyncio.shield(reader)
        except (ConnectionClosed, RequestTimeout) as exc:
            logger.info("connection lost during setup: %s", exc)
            await link.close(1001, "setup failed")
            return await reader
        finally:
            self._open.clear()
            self._link = None
            for task in (beat, reader):
                if task is not None and not task.done():
                    task.cancel()
            await asyncio.gather(*(t for t in (beat, reader) if t is not None), return_exceptions=True)
            try:
                await link.close(1000, "")
            except Exception:  # already gone: closing is best effort
                logger.debug("link close failed", exc_info=True)
            self._fail_pending(ConnectionClosed(self._forced_code, "connection lost"))
            for sub in self._subs.values():
                if sub.state is SubState.ACTIVE:
                    sub.state = SubState.PENDING

    async def _authenticate(self, link: Link) -> None:
        token = await self._token_now()
        try:
            self.session = await self._request(link, "auth", None, {"token": token}, self.open_timeout)
        except RequestError as exc:
            refreshable = exc.code == "token_expired" and self._token_provider is not None
            if not refreshable:
                raise _Terminal(AuthenticationFailed(exc.code, exc.message)) from exc
            raise ConnectionClosed(codes.TOKEN_EXPIRED.code, exc.message) from exc

    async def _resubscribe(self, link: Link, generation: int, sub: Subscription) -> None:
        """(Re)subscribe ``sub`` on this connection, from the last offset it accepted."""
        if sub.generation == generation or self._subs.get(sub.channel) is not sub:
            return
        sub.generation = generation
        sub.state = SubState.PENDING
        sub.sent_since = sub.received
        payload: dict[str, Any] = {}
        if sub.received is not None:
            payload["since"] = sub.received
            if sub.epoch is not None:
                payload["epoch"] = sub.epoch
        try:
            for attempt in (1, 2):
                try:
                    await self._request(
                        link,
                        "subscribe",
                        sub.channel,
                        payload or None,
                        self.request_timeout,
                        on_result=lambda m: sub.subscribed(m.payload or {}),
                    )
                    return
                except RequestError as exc:
                    if exc.code != "already_subscribed":
                        raise
                    if attempt == 2:
                        logger.warning("< %s: the hub still holds it; left as it is", sub.channel)
                        return
                # The hub holds this channel for the connection already, unanswered here: made for it
                # over REST (a `subscribed` push this client did not adopt, or one that raced this
                # request) or left by a lost unsubscribe. Remove it and subscribe once more, so the
                # stream starts where this subscription asked (`since`), with no gap.
                with contextlib.suppress(RequestError):
                    await self._request(link, "unsubscribe", sub.channel, None, self.request_timeout)
        except RequestError as exc:
            self._subs.pop(sub.channel, None)
            sub.refused(exc)
        except (ConnectionClosed, RequestTimeout) as exc:
            sub.generation = -1
            logger.debug("resubscribe %s interrupted: %s", sub.channel, exc)

    async def _request(
        self,
        link: Link,
        mtype: str,
        channel: str | None,
        payload: dict[str, Any] | None,
        timeout: float,  # noqa: ASYNC109
        *,
        on_result: Callable[[Incoming], None] | None = None,
    ) -> dict[str, Any]:
        rid = str(next(self._ids))
        message: dict[str, Any] = {"type": mtype, "requestId": rid}
        if channel is not None:
            message["channel"] = channel
        if payload is not None:
            message["payload"] = payload
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[rid] = (future, on_result)
        try:
            try:
                await link.send(encode_outgoing(message, self.encoding))
            except TransportClosed as exc:
                raise ConnectionClosed(exc.code, exc.reason) from exc
            try:
                async with asyncio.timeout(timeout):
                    return await asyncio.shield(future)
            except TimeoutError as exc:
                raise RequestTimeout(mtype, timeout) from exc
        finally:
            self._pending.pop(rid, None)
            if not future.done():
                future.cancel()

    def _fail_pending(self, error: ClientError) -> None:
        pending, self._pending = self._pending, {}
        for future, _ in pending.values():
            if not future.done():
                future.set_exception(error)
                future.exception()

    async def _read(self, link: Link) -> int:
        """Read until the link closes; returns the close code that ended it."""
        bad = 0
        while True:
            try:
                data = await link.recv()
            except TransportClosed as exc:
                return self._forced_code or exc.code
            try:
                message = decode_incoming(data, self.encoding)
            except ProtocolViolation as exc:
                bad += 1
                logger.warning("! ignoring a malformed hub message: %s", exc)
                if bad >= 20:
                    self._forced_code = codes.PROTOCOL_ERROR.code
                    await link.close(codes.PROTOCOL_ERROR.code, "malformed messages")
                continue
            bad = 0
            try:
                self._dispatch(message)
            except Exception:
                logger.exception("! failed to handle a %s message", message.type)

    def _dispatch(self, m: Incoming) -> None:
        if m.type == "message":
            sub = self._subs.get(m.channel or "")
            if sub is not None:
                sub.feed(m.offset, m.payload or {})
            return
        if m.type in ("result", "error", "heartbeat") and m.request_id is not None:
            entry = self._pending.get(m.request_id)
            if entry is None:
                logger.debug("< late answer to request %s", m.request_id)
                return
            future, on_result = entry
            if future.done():
                return
            payload = m.payload or {}
            if m.type == "error":
                code = str(payload.get("code", "internal"))
                spec = codes.ERRORS.get(codes.Error(code)) if code in codes.ERRORS else None
                retryable = payload.get("retryable")
                future.set_exception(
                    RequestError(
                        code,
                        str(payload.get("message", "")),
                        retryable if isinstance(retryable, bool) else bool(spec and spec.retryable),
                        payload,
                    )
                )
                future.exception()
                return
            if on_result is not None:
                on_result(m)
            future.set_result(payload)
            return
        if m.type == "error":
            logger.warning("< hub error: %s", (m.payload or {}).get("message"))
        elif m.type == "reconnect":
            after = (m.payload or {}).get("afterMs")
            if isinstance(after, (int, float)) and not isinstance(after, bool) and after >= 0:
                self._hint = min(float(after) / 1000.0, MAX_RECONNECT_HINT)
        elif m.type == "warning":
            if (m.payload or {}).get("code") == "token_expiring":
                self._spawn(self._refresh_token())
        elif m.type == "signal.status":
            if self.on_signal_status is not None:
                self._spawn(self._call(self.on_signal_status, m.payload or {}))
        elif m.type == "subscribed":
            self._adopt(m.channel or "", m.payload or {})
        elif m.type == "unsubscribed":
            sub = self._subs.pop(m.channel or "", None)
            if sub is not None:
                reason = str((m.payload or {}).get("reason", "forbidden"))
                sub.end(RequestError(reason, f"the hub removed the subscription to {sub.channel}", False))
        else:
            logger.debug("< ignoring %s", m.type)

    def _adopt(self, channel: str, result: dict[str, Any]) -> None:
        """A subscription made for this connection over REST (a ``subscribed`` push): hand it to
        ``on_subscribed`` as a :class:`Subscription` of this client's own, before any of its messages
        (they follow the push on the same connection), so none is dropped."""
        if not channel or channel in self._subs:
            logger.debug("< subscribed to %s, which this client already holds", channel)
            return
        if self.on_subscribed is None:
            logger.warning(
                "< the hub subscribed this connection to %s (REST); without on_subscribed its "
                "messages are dropped",
                channel,
            )
            return
        sub = Subscription(
            self, channel, since=None, epoch=None, callback=None, on_gap=None, max_queue=DEFAULT_MAX_QUEUE
        )
        sub.generation = self._generation  # subscribed on this connection; resubscribed after a reconnect
        sub.pushed(result)
        self._subs[channel] = sub
        try:
            callback = self.on_subscribed(sub)
        except Exception:
            logger.exception("on_subscribed callback failed for %s", channel)
            return
        if callback is not None:
            sub.callback = callback
            sub.start_dispatcher()

    async def _refresh_token(self) -> None:
        if self._token_provider is None:
            logger.warning("token expires soon and no token_provider was given; the hub will close with 4004")
            return
        try:
            token = await self._token_now()
            await self.request("auth.refresh", payload={"token": token})
            self.stats.token_refreshes += 1
        except Exception as exc:
            logger.error("token refresh failed: %s", type(exc).__name__)

    async def _heartbeat(self, link: Link) -> None:
        assert self.heartbeat_interval is not None
        missed = 0
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            try:
                await self._request(link, "heartbeat", None, None, self.heartbeat_interval)
                missed = 0
            except RequestTimeout:
                missed += 1
                self.stats.heartbeats_missed += 1
                if missed >= self.max_missed_heartbeats:
                    logger.warning("! %d heartbeats unanswered: dropping the connection", missed)
                    self._forced_code = codes.HEARTBEAT_TIMEOUT.code
                    await link.close(1001, "heartbeat timeout")
                    return
            except ConnectionClosed:
                return

    async def _wait_open(self) -> None:
        while not self._open.is_set():
            if self._state in (State.CLOSING, State.CLOSED):
                raise self.close_error or ClientClosed(None, "client closed")
            waiter = asyncio.ensure_future(self._open.wait())
            closed = asyncio.ensure_future(self._closed.wait())
            try:
                await asyncio.wait({waiter, closed}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiter.cancel()
                closed.cancel()

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _quiet(coro: Awaitable[Any]) -> None:
        try:
            await coro
        except ClientError as exc:
            logger.debug("background request failed: %s", exc)

    @staticmethod
    async def _call(handler: StatusHandler, payload: dict[str, Any]) -> None:
        try:
            outcome = handler(payload)
            if outcome is not None:
                await outcome
        except Exception:
            logger.exception("signal.status handler failed")

    def __repr__(self) -> str:
        return f"<Client {redact_url(self.url)} {self._state.name}>"


async def connect(
    url: str,
    token: str | None = None,
    *,
    token_provider: TokenProvider | None = None,
    encoding: Literal["json", "msgpack"] | Encoding = "json",
    retry: bool = False,
    **options: Any,
) -> Client:
    """Connect to a hub, authenticate, and return a running :class:`Client`.

    Args:
        url: ``ws://HOST:8765/ws``.
        token: a JWT; or ``token_provider``, called for every connection and on ``token_expiring``.
        encoding: ``json`` or ``msgpack``.
        retry: keep retrying (with backoff) if the hub is not reachable yet.
        options: see :class:`Client` (transport, timeouts, callbacks, backoff overrides).
    """
    client = Client(url, token, token_provider=token_provider, encoding=encoding, **options)
    await client.start(retry=retry)
    return client
