"""The connection lifecycle: one logical session with a hub that survives reconnects (the client's base).

Life of a client (one runner task drives it)::

    CONNECTING ──auth ok, subscriptions restored──▶ OPEN ──link lost──▶ RECONNECTING ─┐
        ▲                                                                               │
        └──────────────── backoff (or the hub's reconnect.afterMs) ◀────────────────────┘
    any state ──close() or terminal close code (4500-4999, 1000)──▶ CLOSED

Every connection reads ``welcome``, authenticates with its first message, then restores the
subscriptions (:meth:`Lifecycle._restore`, the client's) and only then lets application requests
through. Here: the state machine, the runner and its reconnect waits (backoff from
:mod:`bridge.client._backoff`), the token (given or from a provider, refreshed on
``token_expiring``), heartbeats, and the reader that hands every hub message to
:meth:`Lifecycle._dispatch`.

Not here: what the messages mean and the subscriptions (:class:`bridge.client.Client`, in
:mod:`bridge.client._client`), the request futures (:mod:`bridge.client._requests`), the socket
(:mod:`bridge.client._transport`).
"""

from __future__ import annotations

import abc
import asyncio
import inspect
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Literal, Self

from bridge.client._backoff import backoff_delay, minimum_delay
from bridge.client._exceptions import (
    AuthenticationFailed,
    ClientClosed,
    ClientError,
    ConnectError,
    ConnectionClosed,
    RequestError,
    RequestTimeout,
)
from bridge.client._messages import Incoming, ProtocolViolation, decode_incoming
from bridge.client._requests import Requests
from bridge.client._transport import Link, Transport, TransportClosed, WebSocketTransport
from bridge.protocol import codes
from bridge.protocol.envelope import Encoding
from bridge.tasks import cancel_and_wait

__all__ = [
    "DEFAULT_HEARTBEAT_INTERVAL",
    "DEFAULT_MAX_MESSAGE_BYTES",
    "DEFAULT_MAX_MISSED_HEARTBEATS",
    "DEFAULT_OPEN_TIMEOUT",
    "DEFAULT_REQUEST_TIMEOUT",
    "MAX_RECONNECT_HINT",
    "ClientStats",
    "Lifecycle",
    "State",
    "TokenProvider",
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


class State(IntEnum):
    CONNECTING = 0
    OPEN = 1
    RECONNECTING = 2
    CLOSING = 3
    CLOSED = 4


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


class Lifecycle(abc.ABC):
    """The connection lifecycle of a :class:`bridge.client.Client`; see the module docstring."""

    def __init__(
        self,
        url: str,
        token: str | None,
        *,
        token_provider: TokenProvider | None,
        encoding: Literal["json", "msgpack"] | Encoding,
        transport: Transport | None,
        request_timeout: float,
        open_timeout: float,
        heartbeat_interval: float | None,
        max_missed_heartbeats: int,
        max_message_bytes: int | None,
        reconnect: bool,
        backoff_initial: float | None,
        backoff_factor: float | None,
        backoff_max: float | None,
        rand: Callable[[], float],
        on_state: Callable[[State], None] | None,
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
        self.on_state = on_state
        self.stats = ClientStats()
        #: ``result`` of the last ``auth`` (sub, role, expiresAt, connectionId).
        self.session: dict[str, Any] = {}
        #: ``welcome.payload`` of the current connection.
        self.welcome: dict[str, Any] = {}
        #: Why the client closed for good (None while running or after a normal close).
        self.close_error: ClientError | None = None
        self._state = State.CONNECTING
        self._requests = Requests(self.encoding)
        self._link: Link | None = None
        self._generation = 0
        self._open = asyncio.Event()
        self._closed = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._hint: float | None = None
        self._forced_code: int | None = None

    # -- what the client adds -------------------------------------------------------------------------

    @abc.abstractmethod
    def _dispatch(self, m: Incoming) -> None:
        """Act on one checked hub message (synchronously, from the reader)."""

    @abc.abstractmethod
    async def _restore(self, link: Link, generation: int) -> None:
        """Resubscribe on a new, authenticated connection, before it counts as open."""

    @abc.abstractmethod
    def _connection_lost(self) -> None:
        """The connection ended; the client reconnects (or closes) next."""

    @abc.abstractmethod
    async def _end_subscriptions(self, error: ClientError | None) -> None:
        """The client closed (``error`` None: normally): end every subscription."""

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
        self._requests.fail_all(ClientClosed(None, "client closed"))
        await self._end_subscriptions(error)
        await cancel_and_wait(self._tasks)
        self._open.clear()
        self._set_state(State.CLOSED)
        self._closed.set()

    async def wait_closed(self) -> None:
        """Until the client is closed; raises the terminal error if it ended on one."""
        await self._closed.wait()
        if self.close_error is not None:
            raise self.close_error

    async def __aenter__(self) -> Self:
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
        return await self._requests.send(link, mtype, channel, payload, max(0.0, deadline - loop.time()))

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
            delay = backoff_delay(
                attempt,
                rand=self.rand,
                initial=self.backoff_initial,
                factor=self.backoff_factor,
                cap=self.backoff_max,
            )
        delay = max(delay, minimum_delay(code))
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
            await self._restore(link, generation)
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
            self._requests.fail_all(ConnectionClosed(self._forced_code, "connection lost"))
            self._connection_lost()

    async def _authenticate(self, link: Link) -> None:
        token = await self._token_now()
        try:
            self.session = await self._requests.send(link, "auth", None, {"token": token}, self.open_timeout)
        except RequestError as exc:
            refreshable = exc.code == "token_expired" and self._token_provider is not None
            if not refreshable:
                raise _Terminal(AuthenticationFailed(exc.code, exc.message)) from exc
            raise ConnectionClosed(codes.TOKEN_EXPIRED.code, exc.message) from exc

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
                await self._requests.send(link, "heartbeat", None, None, self.heartbeat_interval)
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
