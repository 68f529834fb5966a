"""The client: the SDK's public face, and where a hub message's meaning is decided.

:class:`Client` is a :class:`bridge.client._lifecycle.Lifecycle` (the connection lifecycle: connect,
authenticate, reconnect with backoff, heartbeats, token refresh) that adds the public requests
(``publish``, ``signal_ack``, ``trade_event``, ``heartbeat``, ``subscribe``), the subscriptions
bookkeeping (one :class:`Subscription` per channel, resubscribed with ``since`` and ``epoch`` on
every connection before application requests go through, see :mod:`bridge.client._subscription`),
and :meth:`Client._dispatch`, which decides what each hub message means: a channel's ``message``,
an answer to a request (resolved by :mod:`bridge.client._requests`), a pushed ``subscribed`` or
``unsubscribed`` (subscriptions made or removed over REST), a ``reconnect`` hint, a token warning.

Not here: the runner and its states (:mod:`bridge.client._lifecycle`), a subscription's queue, order
and de-duplication (:mod:`bridge.client._subscription`), the wire codec
(:mod:`bridge.client._messages`), the in-memory hub for tests (:mod:`bridge.client._mock`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from bridge.client._exceptions import (
    ClientClosed,
    ClientError,
    ConnectionClosed,
    RecoveryFailed,
    RequestError,
    RequestTimeout,
)
from bridge.client._lifecycle import (
    DEFAULT_HEARTBEAT_INTERVAL,
    DEFAULT_MAX_MESSAGE_BYTES,
    DEFAULT_MAX_MISSED_HEARTBEATS,
    DEFAULT_OPEN_TIMEOUT,
    DEFAULT_REQUEST_TIMEOUT,
    MAX_RECONNECT_HINT,
    Lifecycle,
    State,
    TokenProvider,
)
from bridge.client._messages import Incoming
from bridge.client._subscription import (
    DEFAULT_MAX_QUEUE,
    GapHandler,
    MessageHandler,
    Subscription,
    SubState,
)
from bridge.client._transport import Link, Transport
from bridge.protocol.envelope import Encoding
from bridge.redact import redact_url

__all__ = ["Client", "PublishResult", "StatusHandler", "SubscribedHandler", "connect"]

logger = logging.getLogger("mtbridge.client")

StatusHandler = Callable[[dict[str, Any]], "Awaitable[None] | None"]
#: Called (synchronously, from the reader, before any of its messages) with a :class:`Subscription`
#: the hub made for this connection over REST; return a message callback to consume it in callback
#: mode, or None and iterate the subscription. docs/protocol.md, "Subscriptions managed over REST".
SubscribedHandler = Callable[[Subscription], "MessageHandler | None"]


@dataclass(frozen=True, slots=True)
class PublishResult:
    offset: int
    epoch: str | None
    duplicate: bool


class Client(Lifecycle):
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
        super().__init__(
            url,
            token,
            token_provider=token_provider,
            encoding=encoding,
            transport=transport,
            request_timeout=request_timeout,
            open_timeout=open_timeout,
            heartbeat_interval=heartbeat_interval,
            max_missed_heartbeats=max_missed_heartbeats,
            max_message_bytes=max_message_bytes,
            reconnect=reconnect,
            backoff_initial=backoff_initial,
            backoff_factor=backoff_factor,
            backoff_max=backoff_max,
            rand=rand,
            on_state=on_state,
        )
        self.on_gap = on_gap
        self.on_signal_status = on_signal_status
        self.on_subscribed = on_subscribed
        self._subs: dict[str, Subscription] = {}

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
                self._quiet(self._requests.send(link, "unsubscribe", sub.channel, None, self.request_timeout))
            )

    def resume(self, sub: Subscription) -> None:
        """Half the queue was drained: resubscribe from what is already queued."""
        sub.state = SubState.PENDING
        sub.generation = -1
        if self._link is not None and self._open.is_set():
            self._spawn(self._resubscribe(self._link, self._generation, sub))

    # -- the session's hooks --------------------------------------------------------------------------

    async def _restore(self, link: Link, generation: int) -> None:
        await asyncio.gather(
            *(
                self._resubscribe(link, generation, s)
                for s in list(self._subs.values())
                if s.state is not SubState.SUSPENDED
            )
        )

    def _connection_lost(self) -> None:
        for sub in self._subs.values():
            if sub.state is SubState.ACTIVE:
                sub.state = SubState.PENDING

    async def _end_subscriptions(self, error: ClientError | None) -> None:
        for sub in list(self._subs.values()):
            sub.end(error)
        subs = list(self._subs.values())
        self._subs.clear()
        for sub in subs:
            await sub.stop_dispatcher()

    # -- subscriptions and hub messages ---------------------------------------------------------------

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
                    await self._requests.send(
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
                    await self._requests.send(link, "unsubscribe", sub.channel, None, self.request_timeout)
        except RequestError as exc:
            self._subs.pop(sub.channel, None)
            sub.refused(exc)
        except (ConnectionClosed, RequestTimeout) as exc:
            sub.generation = -1
            logger.debug("resubscribe %s interrupted: %s", sub.channel, exc)

    def _dispatch(self, m: Incoming) -> None:
        if m.type == "message":
            sub = self._subs.get(m.channel or "")
            if sub is not None:
                sub.feed(m.offset, m.payload or {})
            return
        if m.type in ("result", "error", "heartbeat") and m.request_id is not None:
            self._requests.answer(m)
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
