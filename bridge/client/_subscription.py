"""Subscriptions: the ordered, de-duplicated stream of one channel as the application sees it.

A :class:`Subscription` outlives connections. The client feeds it what the hub sends; it remembers
the highest offset it accepted (``received``) and the channel's epoch, and the client resubscribes
with ``since=received`` after every reconnect. Everything accepted is either already handed to the
application or still in the local queue, which survives the reconnect, so the application sees no
gap and no duplicate: anything at or below ``received`` that the hub sends again is dropped.

A gap the hub cannot fill (``recovered: false``) is queued in order as a :class:`RecoveryFailed`
and surfaced where the application reads: the iterator raises it (iteration may continue), the
callback mode calls ``on_gap``.

Not here: sending subscribe/unsubscribe requests and resubscribing after a reconnect (the client,
:mod:`bridge.client._client`); a subscription reaches its client only through :class:`Owner`, so
this module does not import the client.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Protocol

from bridge.client._exceptions import ClientClosed, ClientError, RecoveryFailed
from bridge.tasks import cancel_and_wait

__all__ = [
    "DEFAULT_MAX_QUEUE",
    "GapHandler",
    "Message",
    "MessageHandler",
    "Owner",
    "SubState",
    "Subscription",
]

logger = logging.getLogger("mtbridge.client")

#: Messages a subscription queues for a slow application before it pauses the channel (durable
#: channels: unsubscribe, then resubscribe with ``since`` once half drained) or drops the oldest
#: (ephemeral channels, which are lossy by contract).
DEFAULT_MAX_QUEUE = 10_000


@dataclass(frozen=True, slots=True)
class Message:
    """One publication as delivered to the application."""

    channel: str
    offset: int
    payload: dict[str, Any]


MessageHandler = Callable[[Message], "Awaitable[None] | None"]
GapHandler = Callable[[RecoveryFailed], "Awaitable[None] | None"]


class _Counters(Protocol):
    duplicates_dropped: int


class Owner(Protocol):
    """What a subscription needs of its client (:class:`bridge.client.Client` is one)."""

    @property
    def stats(self) -> _Counters: ...

    def suspend(self, sub: Subscription) -> None: ...

    def resume(self, sub: Subscription) -> None: ...

    async def report_gap(self, sub: Subscription, gap: RecoveryFailed) -> None: ...

    async def unsubscribe(self, sub: Subscription) -> None: ...


class SubState(IntEnum):
    PENDING = 0  # registered, no result yet on the current connection
    ACTIVE = 1
    SUSPENDED = 2  # unsubscribed locally because the application fell behind
    ENDED = 3


class _End:
    """Queue marker: the subscription ended (``error`` None = normally)."""

    def __init__(self, error: BaseException | None) -> None:
        self.error = error


_Item = Message | RecoveryFailed | _End


class Subscription:
    """One channel's stream. Iterate it (``async for message in sub``) or give a callback."""

    def __init__(
        self,
        client: Owner,
        channel: str,
        *,
        since: int | None,
        epoch: str | None,
        callback: MessageHandler | None,
        on_gap: GapHandler | None,
        max_queue: int,
    ) -> None:
        self.client = client
        self.channel = channel
        self.received: int | None = since
        self.epoch = epoch
        #: Offset of the last message handed to the application.
        self.offset: int | None = since
        self.durable: bool | None = None
        self.callback = callback
        self.on_gap = on_gap
        self.max_queue = max_queue
        self.state = SubState.PENDING
        self.duplicates_dropped = 0
        self.lossy_dropped = 0
        self.gaps: list[RecoveryFailed] = []
        self.generation = -1  # the connection generation this subscription was last sent on
        self.sent_since: int | None = None
        self._queue: deque[_Item] = deque()
        self._wakeup = asyncio.Event()
        self._first: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._dispatcher: asyncio.Task[None] | None = None
        self._ended = False

    def __repr__(self) -> str:
        return (
            f"<Subscription {self.channel} {self.state.name} offset={self.offset} queued={len(self._queue)}>"
        )

    # -- fed by the client (synchronously, from its reader) -------------------------------------------

    def subscribed(self, result: dict[str, Any]) -> None:
        """Apply a subscribe ``result``: where the live stream starts, and whether a gap is left."""
        offset = result.get("offset")
        epoch = result.get("epoch")
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            offset = 0
        self.durable = bool(result.get("durable"))
        self.state = SubState.ACTIVE
        since = self.sent_since
        if since is None:
            self.received = offset
        elif result.get("recovered") is False:
            self._gap(result, since, offset, epoch if isinstance(epoch, str) else None)
            self.received = offset
        self.epoch = epoch if isinstance(epoch, str) else None
        if not self._first.done():
            self._first.set_result(None)

    def pushed(self, result: dict[str, Any]) -> None:
        """Apply a ``subscribed`` push: a subscription the hub made for this connection (REST).

        Its replay (with the REST call's ``since``) follows the push at offsets up to ``offset``, so
        the first of them, not ``offset``, is where this subscription's stream starts; a gap the hub
        could not fill is queued like one of a resubscribe (``since`` unknown here: None)."""
        self.subscribed(result)
        replayed = result.get("replayed")
        if isinstance(replayed, int) and not isinstance(replayed, bool) and replayed > 0:
            self.received = None
        if result.get("recovered") is False:
            self._gap(result, None, self.received or 0, self.epoch)

    def refused(self, error: ClientError) -> None:
        """The hub refused the subscribe (e.g. ``forbidden``): end the subscription with that error."""
        if not self._first.done():
            self._first.set_exception(error)
            self._first.exception()  # retrieved here; subscribe() re-raises it
        self.end(error)

    def feed(self, offset: int | None, payload: dict[str, Any]) -> None:
        """One ``message`` from the hub."""
        if self.state is not SubState.ACTIVE:
            return  # suspended, or a straggler after unsubscribe: the resubscribe replays it
        if offset is None:
            offset = (self.received or 0) + 1
        if self.received is not None and offset <= self.received:
            self.duplicates_dropped += 1
            self.client.stats.duplicates_dropped += 1
            return
        if self._message_count() >= self.max_queue:
            if self.durable:
                self.client.suspend(self)
                return
            self._drop_oldest_message()
        self.received = offset
        self._put(Message(self.channel, offset, payload))

    def end(self, error: BaseException | None = None) -> None:
        if self._ended:
            return
        self._ended = True
        self.state = SubState.ENDED
        if not self._first.done():
            self._first.set_exception(error or ClientClosed(None, "subscription ended"))
            self._first.exception()
        self._put(_End(error))

    # -- read by the application ----------------------------------------------------------------------

    async def wait_subscribed(self) -> None:
        """Until the first ``result`` arrived (raises what the hub answered instead)."""
        await asyncio.shield(self._first)

    def __aiter__(self) -> AsyncIterator[Message]:
        return self

    async def __anext__(self) -> Message:
        """The next message, in offset order.

        Raises:
            RecoveryFailed: a gap the hub could not fill; iterating again continues live after it.
            StopAsyncIteration: the subscription or the client was closed normally.
            ClientError: the subscription ended with an error (e.g. access was withdrawn).
        """
        while not self._queue:
            self._wakeup.clear()
            await self._wakeup.wait()
        item = self._queue[0]
        if isinstance(item, _End):
            if item.error is not None:
                self._queue.popleft()
                self._queue.append(_End(None))
                raise item.error
            raise StopAsyncIteration
        self._queue.popleft()
        if self.state is SubState.SUSPENDED and self._message_count() <= self.max_queue // 2:
            self.client.resume(self)
        if isinstance(item, RecoveryFailed):
            raise item
        self.offset = item.offset
        return item

    async def unsubscribe(self) -> None:
        """Stop receiving this channel; the iterator ends once the queue is drained."""
        await self.client.unsubscribe(self)

    @property
    def queued(self) -> int:
        return self._message_count()

    # -- callback mode --------------------------------------------------------------------------------

    def start_dispatcher(self) -> None:
        if self.callback is not None and self._dispatcher is None:
            self._dispatcher = asyncio.create_task(self._dispatch(), name=f"mtbridge-sub-{self.channel}")

    async def stop_dispatcher(self) -> None:
        task, self._dispatcher = self._dispatcher, None
        await cancel_and_wait([task])

    async def _dispatch(self) -> None:
        assert self.callback is not None
        while True:
            try:
                message = await self.__anext__()
            except StopAsyncIteration:
                return
            except RecoveryFailed as gap:
                await self.client.report_gap(self, gap)
                continue
            except ClientError as exc:
                logger.error("subscription %s ended: %s", self.channel, exc)
                return
            try:
                outcome = self.callback(message)
                if outcome is not None:
                    await outcome
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("callback for %s failed at offset %d", self.channel, message.offset)

    # -- internals ------------------------------------------------------------------------------------

    def _gap(self, result: dict[str, Any], since: int | None, offset: int, epoch: str | None) -> None:
        """Queue the gap a ``recovered: false`` result leaves, in order with the messages."""
        gap = RecoveryFailed(
            self.channel,
            str(result.get("reason", "unknown")),
            str(result.get("advice", "")),
            since,
            offset,
            epoch,
        )
        self.gaps.append(gap)
        self._put(gap)

    def _put(self, item: _Item) -> None:
        self._queue.append(item)
        self._wakeup.set()

    def _message_count(self) -> int:
        return len(self._queue)

    def _drop_oldest_message(self) -> None:
        for i, item in enumerate(self._queue):
            if isinstance(item, Message):
                del self._queue[i]
                self.lossy_dropped += 1
                return
