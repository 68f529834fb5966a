"""In-process fakes so SDK users and our own tests need no server (like httpx's ``MockTransport``).

- :class:`MockTransport` runs ``handler(peer)`` as a task for every ``connect()``; the handler plays
  the hub through a :class:`MockPeer` (``recv()`` / ``send()`` / ``close()`` of plain dicts). Frames go
  through the real client codec, so JSON and MessagePack paths are both exercised.
- :class:`FakeHub` is a ready-made handler speaking protocol v1 from memory: auth with a token table,
  durable channels with offsets, epochs and recovery by ``since``, ephemeral channels, idempotent
  publish, ``signal.ack``, ``trade.event``, heartbeats, ``reconnect`` hints and forced closes.
  It is a test double, not a hub: one process, no persistence, no limits.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import msgpack
import orjson

from bridge.client._exceptions import ConnectError
from bridge.client._transport import ABNORMAL_CLOSURE, Link, Transport, TransportClosed
from bridge.protocol.envelope import Encoding
from bridge.protocol.events import EventInvalid, parse_event
from bridge.protocol.recovery import RECOVERY_ADVICE, refusal
from bridge.protocol.signals import SignalInvalid, parse_signal
from bridge.protocol.targeting import payload_accepts
from bridge.tasks import cancel_and_wait

__all__ = ["FakeHub", "FakeToken", "MockPeer", "MockTransport"]

Handler = Callable[["MockPeer"], Awaitable[None]]
_CLOSED = object()


class _Pipe:
    """One direction of a mock link: a queue of frames that ends with a close marker."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[object] = asyncio.Queue()
        self.closed: tuple[int, str] | None = None

    def put(self, item: str | bytes) -> None:
        if self.closed is not None:
            raise TransportClosed(*self.closed)
        self.queue.put_nowait(item)

    def close(self, code: int, reason: str) -> None:
        if self.closed is None:
            self.closed = (code, reason)
            self.queue.put_nowait(_CLOSED)

    async def get(self) -> str | bytes:
        item = await self.queue.get()
        if item is _CLOSED:
            self.queue.put_nowait(_CLOSED)  # later readers see the close too
            assert self.closed is not None
            raise TransportClosed(*self.closed)
        assert isinstance(item, (str, bytes))
        return item


class _MockLink(Link):
    def __init__(self, to_hub: _Pipe, to_client: _Pipe, subprotocol: str) -> None:
        self.to_hub = to_hub
        self.to_client = to_client
        self.subprotocol = subprotocol

    async def send(self, data: str | bytes) -> None:
        if self.to_client.closed is not None:
            raise TransportClosed(*self.to_client.closed)
        self.to_hub.put(data)

    async def recv(self) -> str | bytes:
        return await self.to_client.get()

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self.to_hub.close(code, reason)
        self.to_client.close(code, reason)


class MockPeer:
    """The hub's end of a mock link, speaking decoded dicts."""

    def __init__(self, url: str, encoding: Encoding, to_hub: _Pipe, to_client: _Pipe) -> None:
        self.url = url
        self.encoding = encoding
        self._in = to_hub
        self._out = to_client

    @property
    def closed(self) -> bool:
        return self._out.closed is not None

    async def recv(self) -> dict[str, Any]:
        """The next client message; raises :class:`TransportClosed` once the client closed."""
        data = await self._in.get()
        obj = orjson.loads(data) if isinstance(data, str) else msgpack.unpackb(data, raw=False)
        if not isinstance(obj, dict):
            raise ValueError("client sent a non-object")
        return obj

    async def send(self, message: dict[str, Any]) -> None:
        if self.encoding is Encoding.JSON:
            self._out.put(orjson.dumps(message).decode())
        else:
            self._out.put(msgpack.packb(message, use_bin_type=True))

    async def send_raw(self, data: str | bytes) -> None:
        """Send a frame as is (to test how the client copes with garbage)."""
        self._out.put(data)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self._out.close(code, reason)
        self._in.close(code, reason)

    def drop(self) -> None:
        """End the link with no close frame (as a killed hub would: 1006)."""
        self._out.close(ABNORMAL_CLOSURE, "")
        self._in.close(ABNORMAL_CLOSURE, "")


class MockTransport(Transport):
    """A transport whose every ``connect()`` runs ``handler(peer)`` in a task instead of dialing.

    Set ``refusing = True`` to make ``connect()`` fail like a hub that is down; ``attempts`` counts calls.
    """

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.refusing = False
        self.attempts = 0
        self.urls: list[str] = []
        self.tasks: set[asyncio.Task[None]] = set()

    async def connect(self, url: str, subprotocol: str, *, open_timeout: float, max_size: int | None) -> Link:
        self.attempts += 1
        self.urls.append(url)
        if self.refusing:
            raise ConnectError("mock transport refusing connections")
        encoding = Encoding.MSGPACK if subprotocol.endswith("msgpack") else Encoding.JSON
        to_hub, to_client = _Pipe(), _Pipe()
        peer = MockPeer(url, encoding, to_hub, to_client)
        task = asyncio.create_task(self._run(peer), name="mtbridge-mock-peer")
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return _MockLink(to_hub, to_client, subprotocol)

    async def _run(self, peer: MockPeer) -> None:
        try:
            await self.handler(peer)
        except TransportClosed:
            pass
        finally:
            peer.drop()

    async def aclose(self) -> None:
        """Cancel every handler task still running."""
        await cancel_and_wait(list(self.tasks))


@dataclass
class FakeToken:
    """What a token stands for in :class:`FakeHub` (no JWT: the token string is a key)."""

    sub: str
    role: str
    accounts: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()
    expires_at: int = 4_102_444_800  # 2100-01-01


@dataclass
class _Log:
    epoch: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    entries: list[tuple[int, dict[str, Any], int | None]] = field(default_factory=list)
    first_available: int = 1
    by_id: dict[str, int] = field(default_factory=dict)

    @property
    def last(self) -> int:
        return self.entries[-1][0] if self.entries else self.first_available - 1


@dataclass
class _Session:
    peer: MockPeer
    id: str = ""
    token: FakeToken | None = None
    subscriptions: set[str] = field(default_factory=set)


class FakeHub:
    """A protocol v1 hub in memory; use ``MockTransport(fake_hub)`` (the hub is the handler)."""

    def __init__(self, tokens: dict[str, FakeToken], *, clock: Callable[[], float] = time.time) -> None:
        self.tokens = tokens
        self.clock = clock
        self.logs: dict[str, _Log] = {}
        self.ephemeral_seq: dict[str, int] = {}
        self.sessions: list[_Session] = []
        self.acks: list[tuple[str, str]] = []
        self.events: dict[str, dict[str, Any]] = {}
        self.received: list[dict[str, Any]] = []
        self.connections = 0
        #: Client message types the hub swallows without an answer (to provoke timeouts).
        self.ignore_types: set[str] = set()

    # -- control from tests -----------------------------------------------------------------

    def durable(self, channel: str) -> bool:
        return channel.split(":", 1)[0] in ("signals", "account")

    def log(self, channel: str) -> _Log:
        return self.logs.setdefault(channel, _Log())

    async def publish(self, channel: str, payload: dict[str, Any], message_id: str | None = None) -> int:
        """Append (durable) and fan out, as a hub-side publication would."""
        if not self.durable(channel):
            seq = self.ephemeral_seq.get(channel, 0) + 1
            self.ephemeral_seq[channel] = seq
            await self._fanout(channel, seq, payload)
            return seq
        log = self.log(channel)
        if message_id is not None and message_id in log.by_id:
            return log.by_id[message_id]
        offset = log.last + 1
        expires = payload.get("expiresAt") if isinstance(payload.get("expiresAt"), int) else None
        log.entries.append((offset, payload, expires))
        if message_id is not None:
            log.by_id[message_id] = offset
        await self._fanout(channel, offset, payload)
        return offset

    async def kick(self, code: int = 1001, reason: str = "going away", after_ms: int | None = None) -> None:
        """Close every live connection (after a ``reconnect`` hint when ``after_ms`` is given)."""
        for s in list(self.sessions):
            if s.peer.closed:
                continue
            if after_ms is not None:
                await s.peer.send({"type": "reconnect", "payload": {"afterMs": after_ms, "reason": reason}})
            await s.peer.close(code, reason)

    def drop_all(self) -> None:
        """End every live connection without a close frame (a crash)."""
        for s in self.sessions:
            s.peer.drop()

    def trim(self, channel: str, first_available: int) -> None:
        log = self.log(channel)
        log.entries = [e for e in log.entries if e[0] >= first_available]
        log.first_available = first_available

    async def subscribe_for(
        self, connection_id: str, channel: str, since: int | None = None, epoch: str | None = None
    ) -> dict[str, Any]:
        """What ``POST /api/v1/connections/{id}/subscriptions`` does: subscribe a live connection
        without it asking; it gets a ``subscribed`` push, then the replay. Returns the push's payload;
        raises KeyError for no such live connection, ValueError when already subscribed."""
        session = next((x for x in self.sessions if x.id == connection_id and not x.peer.closed), None)
        if session is None or session.token is None:
            raise KeyError(connection_id)
        if channel in session.subscriptions:
            raise ValueError(f"already subscribed to {channel}")
        pushed: dict[str, Any] = {}

        async def push(result: dict[str, Any]) -> None:
            pushed.update(result)
            await session.peer.send({"type": "subscribed", "channel": channel, "payload": result})

        body = {k: v for k, v in (("since", since), ("epoch", epoch)) if v is not None}
        await self._subscribe(session, None, channel, body, push)
        return pushed

    async def broadcast(self, message: dict[str, Any]) -> None:
        for s in self.sessions:
            if not s.peer.closed and s.token is not None:
                await s.peer.send(message)

    # -- the handler --------------------------------------------------------------------------

    async def __call__(self, peer: MockPeer) -> None:
        self.connections += 1
        session = _Session(peer, f"c-fake{self.connections}")
        self.sessions.append(session)
        await peer.send(
            {
                "type": "welcome",
                "payload": {
                    "connectionId": session.id,
                    "protocol": "mtbridge.v1",
                    "encoding": peer.encoding.value,
                    "authenticated": False,
                    "limits": {"maxMessageBytes": 65536},
                },
            }
        )
        try:
            while True:
                message = await peer.recv()
                self.received.append(message)
                if message.get("type") in self.ignore_types:
                    continue
                await self._handle(session, message)
        finally:
            self.sessions.remove(session)

    async def _reply(
        self, s: _Session, rid: Any, payload: dict[str, Any], channel: str | None = None
    ) -> None:
        out: dict[str, Any] = {"type": "result", "requestId": rid}
        if channel is not None:
            out["channel"] = channel
        out["payload"] = payload
        await s.peer.send(out)

    async def _error(self, s: _Session, rid: Any, code: str, message: str, **extra: Any) -> None:
        payload = {
            "code": code,
            "message": message,
            "retryable": code in ("paused", "unavailable", "internal"),
        }
        payload.update(extra)
        await s.peer.send({"type": "error", "requestId": rid, "payload": payload})

    async def _handle(self, s: _Session, m: dict[str, Any]) -> None:
        mtype, rid = m.get("type"), m.get("requestId")
        payload = m.get("payload") or {}
        channel = m.get("channel")
        if mtype == "heartbeat":
            await s.peer.send(
                {"type": "heartbeat", "requestId": rid, "payload": {"ts": int(self.clock() * 1000)}}
            )
            return
        if mtype == "auth":
            token = self.tokens.get(str(payload.get("token")))
            if token is None:
                await self._error(s, rid, "token_invalid", "bad token")
                await s.peer.close(4500, "unauthorized")
                return
            s.token = token
            await self._reply(
                s,
                rid,
                {"sub": token.sub, "role": token.role, "expiresAt": token.expires_at, "connectionId": "c"},
            )
            return
        if s.token is None:
            await self._error(s, rid, "auth_required", "authenticate first")
            return
        if mtype == "auth.refresh":
            token = self.tokens.get(str(payload.get("token")))
            if token is None or token.sub != s.token.sub:
                await self._error(s, rid, "token_invalid", "bad token")
                return
            s.token = token
            await self._reply(s, rid, {"sub": token.sub, "role": token.role, "expiresAt": token.expires_at})
        elif mtype == "subscribe" and isinstance(channel, str):
            await self._subscribe(s, rid, channel, payload)
        elif mtype == "unsubscribe" and isinstance(channel, str):
            s.subscriptions.discard(channel)
            await self._reply(s, rid, {}, channel)
        elif mtype == "publish" and isinstance(channel, str):
            await self._publish(s, rid, channel, payload)
        elif mtype == "signal.ack":
            self.acks.append((str(payload.get("signalId")), str(payload.get("account"))))
            await self._reply(
                s,
                rid,
                {"signalId": payload.get("signalId"), "account": payload.get("account"), "status": "acked"},
            )
        elif mtype == "trade.event":
            try:
                event = parse_event(payload, self.clock())
            except EventInvalid as exc:
                details = [e.as_dict() for e in exc.errors]
                await self._error(s, rid, "validation_failed", str(exc), details=details)
                return
            duplicate = event.id in self.events
            if not duplicate:
                self.events[event.id] = event.to_payload()
                await self.publish(f"account:{event.account}:events", event.to_payload(), event.id)
            await self._reply(s, rid, {"id": event.id, "duplicate": duplicate})
        else:
            await self._error(s, rid, "unknown_type", f"unknown type {mtype!r}")

    async def _subscribe(
        self,
        s: _Session,
        rid: Any,
        channel: str,
        payload: dict[str, Any],
        push: Callable[[dict[str, Any]], Awaitable[None]] | None = None,
    ) -> None:
        """A ``subscribe`` of the connection's own (answered with a ``result``), or one made for it
        (``push``: answered with a ``subscribed`` push instead)."""
        since, epoch = payload.get("since"), payload.get("epoch")

        async def answer(result: dict[str, Any]) -> None:
            if push is not None:
                await push(result)
            else:
                await self._reply(s, rid, result, channel)

        if channel in s.subscriptions:
            await self._error(s, rid, "already_subscribed", channel)
            return
        if not self.durable(channel):
            result: dict[str, Any] = {
                "offset": self.ephemeral_seq.get(channel, 0),
                "epoch": "eph",
                "durable": False,
            }
            if since is not None:
                result.update(
                    recovered=False, reason="no_history", advice="ephemeral channel; live data only"
                )
            s.subscriptions.add(channel)
            await answer(result)
            return
        log = self.log(channel)
        result = {"offset": log.last, "epoch": log.epoch, "durable": True}
        replay: list[tuple[int, dict[str, Any]]] = []
        if since is not None:
            reason = refusal(
                since,
                epoch,
                current_epoch=log.epoch,
                last_offset=log.last,
                first_available=log.first_available,
            )
            if reason is None:
                now_ms = int(self.clock() * 1000)
                for offset, body, expires in log.entries:
                    if offset <= since or (expires is not None and expires <= now_ms):
                        continue
                    if not self._targets(s, channel, body):
                        continue
                    replay.append((offset, body))
                result.update(recovered=True, replayed=len(replay))
            else:
                result.update(recovered=False, reason=reason, advice=RECOVERY_ADVICE)
        s.subscriptions.add(channel)
        await answer(result)
        for offset, body in replay:
            await s.peer.send({"type": "message", "channel": channel, "offset": offset, "payload": body})

    def _targets(self, s: _Session, channel: str, body: dict[str, Any]) -> bool:
        if s.token is None or s.token.role != "ea" or not channel.startswith("signals:"):
            return True
        return payload_accepts(body, s.token.accounts, s.token.groups)

    async def _publish(self, s: _Session, rid: Any, channel: str, payload: dict[str, Any]) -> None:
        message_id = None
        if channel.startswith("signals:"):
            try:
                signal = parse_signal(payload, self.clock())
            except SignalInvalid as exc:
                details = [e.as_dict() for e in exc.errors]
                await self._error(s, rid, "validation_failed", str(exc), details=details)
                return
            payload, message_id = signal.to_payload(), signal.id
        log = self.log(channel) if self.durable(channel) else None
        duplicate = log is not None and message_id is not None and message_id in log.by_id
        offset = await self.publish(channel, payload, message_id)
        epoch = log.epoch if log is not None else "eph"
        await self._reply(s, rid, {"offset": offset, "epoch": epoch, "duplicate": duplicate})

    async def _fanout(self, channel: str, offset: int, payload: dict[str, Any]) -> None:
        for s in list(self.sessions):
            if channel in s.subscriptions and not s.peer.closed and self._targets(s, channel, payload):
                with contextlib.suppress(TransportClosed):
                    await s.peer.send(
                        {"type": "message", "channel": channel, "offset": offset, "payload": payload}
                    )
