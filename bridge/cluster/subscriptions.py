"""Subscriptions made for a connection (REST), on whichever node holds it.

The REST API (:mod:`bridge.api.subscriptions`) authorises the caller and then asks a
:class:`SubscriptionRouter` to subscribe or unsubscribe a connection by id. A connection on this
node is handled here, as in a single hub. A connection on another node (presence says which
instance holds it) is handled by a ``subscribe`` or ``unsubscribe`` command on the control bus,
addressed to that instance: there :meth:`Hub.subscribe_on_behalf` decides under the connection's
own token, sends the ``subscribed`` push, replays from ``since``, and the reply carries the same
result or the same refusal (code, message, reason) back. Without Redis the router is local only,
exactly the single hub's behaviour.

A routed call answers ``unavailable`` (REST 503, retry) when the bus or presence is unreachable or
the holding node does not answer within :data:`SUBSCRIBE_TIMEOUT` / :data:`UNSUBSCRIBE_TIMEOUT`
seconds. The command may still have taken effect there: a retried subscribe then answers
``already_subscribed``, a retried unsubscribe ``not_subscribed``, so a retry never doubles anything.
"""

from __future__ import annotations

import logging
from typing import Any

from redis.exceptions import RedisError

from bridge.cluster.control import REQUEST_TIMEOUT, ControlBus
from bridge.cluster.model import BusMessage
from bridge.cluster.presence import Presence
from bridge.hub.connection import Connection
from bridge.hub.hub import Hub, HubError
from bridge.protocol.codes import ERRORS, Error
from bridge.store.exceptions import StoreError

__all__ = ["SUBSCRIBE_TIMEOUT", "UNSUBSCRIBE_TIMEOUT", "SubscriptionRouter"]

logger = logging.getLogger("mtbridge.cluster")

#: Seconds a routed subscribe waits for the holding node: it answers after the ``subscribed`` push
#: and the replay from ``since`` (up to one history page, 1,000 messages, read from the database),
#: which on a loaded 2-core machine takes well over the bus's 2 s default.
SUBSCRIBE_TIMEOUT = 10.0
#: Seconds a routed unsubscribe waits (no database work on the holding node).
UNSUBSCRIBE_TIMEOUT = REQUEST_TIMEOUT
#: Bus ops of this module.
SUBSCRIBE_OP = "subscribe"
UNSUBSCRIBE_OP = "unsubscribe"
_MAX_ID = 64
_MAX_CHANNEL = 233
_MAX_EPOCH = 64


def _unavailable(message: str) -> HubError:
    return HubError(Error.UNAVAILABLE, message, retryAfterMs=500)


class SubscriptionRouter:
    """Subscribe or unsubscribe a connection by id, here or on the node that holds it."""

    def __init__(
        self,
        hub: Hub,
        presence: Presence | None = None,
        bus: ControlBus | None = None,
        instance: str | None = None,
    ) -> None:
        self.hub = hub
        self.presence = presence
        self.bus = bus
        self.instance = instance

    def install(self) -> None:
        """Register the bus handlers (a clustered node, once its bus started)."""
        assert self.bus is not None
        self.bus.on(SUBSCRIBE_OP, self._on_subscribe)
        self.bus.on(UNSUBSCRIBE_OP, self._on_unsubscribe)

    # -- where connections live -----------------------------------------------------------------

    def _local(self, conn_id: str) -> Connection | None:
        conn = self.hub.connections.get(conn_id)
        if conn is None or conn.closing or conn.claims is None:
            return None
        return conn

    async def locate(self, conn_id: str) -> str | None:
        """``""`` for a live connection of this node, the instance holding it elsewhere, else None.
        Raises ``unavailable`` when presence cannot be read."""
        if self._local(conn_id) is not None:
            return ""
        if self.presence is None:
            return None
        try:
            instance = await self.presence.locate(conn_id)
        except (RedisError, OSError) as exc:
            raise _unavailable("cluster presence unreachable; retry") from exc
        return None if instance == self.instance else instance

    async def of_subject(self, subject: str) -> list[tuple[str, str]]:
        """Every live connection of ``subject`` as ``(connection id, where)`` (``""``: this node),
        this node's first, each group in id order. Presence of other nodes is at most one write
        behind a connection's authentication."""
        here = sorted(c.id for c in self.hub.by_subject.get(subject, ()) if not c.closing)
        found = [(cid, "") for cid in here]
        if self.presence is None:
            return found
        try:
            located = await self.presence.by_instance()
        except (RedisError, OSError) as exc:
            raise _unavailable("cluster presence unreachable; retry") from exc
        for instance in sorted(located):
            if instance == self.instance:
                continue
            ids = sorted(str(e["id"]) for e in located[instance] if e.get("sub") == subject and "id" in e)
            found.extend((cid, instance) for cid in ids)
        return found

    # -- the calls ------------------------------------------------------------------------------

    async def subscribe(
        self, conn_id: str, channel: str, since: int | None, epoch: str | None, where: str | None = None
    ) -> dict[str, Any]:
        """The ``subscribed`` payload; :class:`HubError` when refused (``not_found`` when no node
        holds the connection, ``unavailable`` when its node cannot be asked in time)."""
        if where is None:
            where = await self.locate(conn_id)
        if where == "":
            return await self._subscribe_here(conn_id, channel, since, epoch)
        if where is None:
            raise HubError(Error.NOT_FOUND, f"no live connection {conn_id}")
        body = {"conn": conn_id, "channel": channel, "since": since, "epoch": epoch}
        return await self._ask(where, SUBSCRIBE_OP, body, SUBSCRIBE_TIMEOUT)

    async def unsubscribe(self, conn_id: str, channel: str, where: str | None = None) -> None:
        """Remove the subscription; :class:`HubError` ``not_subscribed``, ``not_found`` or
        ``unavailable`` as :meth:`subscribe`."""
        if where is None:
            where = await self.locate(conn_id)
        if where == "":
            self._unsubscribe_here(conn_id, channel)
            return
        if where is None:
            raise HubError(Error.NOT_FOUND, f"no live connection {conn_id}")
        await self._ask(where, UNSUBSCRIBE_OP, {"conn": conn_id, "channel": channel}, UNSUBSCRIBE_TIMEOUT)

    async def _ask(self, instance: str, op: str, body: dict[str, Any], within: float) -> dict[str, Any]:
        assert self.bus is not None
        try:
            reply = await self.bus.request(instance, op, body, within=within)
        except TimeoutError as exc:
            raise _unavailable("the node holding this connection did not answer in time; retry") from exc
        except (RedisError, OSError) as exc:
            raise _unavailable("the control bus is unreachable; retry") from exc
        error = reply.get("error")
        if isinstance(error, dict):
            code, message = error.get("code"), error.get("message")
            extra = error.get("extra")
            raise HubError(
                Error(code) if isinstance(code, str) and code in ERRORS else Error.INTERNAL,
                message if isinstance(message, str) else "refused",
                **(extra if isinstance(extra, dict) else {}),
            )
        if error is not None:  # the handler itself failed (the bus's {"error": <type>})
            raise _unavailable("the node holding this connection failed to answer; retry")
        result = reply.get("result")
        return result if isinstance(result, dict) else {}

    # -- this node --------------------------------------------------------------------------------

    async def _subscribe_here(
        self, conn_id: str, channel: str, since: int | None, epoch: str | None
    ) -> dict[str, Any]:
        conn = self._local(conn_id)
        if conn is None:
            raise HubError(Error.NOT_FOUND, f"no live connection {conn_id}")
        try:
            return await self.hub.subscribe_on_behalf(conn, channel, since, epoch)
        except StoreError as exc:
            # The store's trouble is `unavailable` (503, retry), as on the WebSocket.
            if not exc.retryable:
                raise
            logger.warning("rest subscribe: store unavailable: %s", exc)
            raise _unavailable("store unavailable; retry") from exc

    def _unsubscribe_here(self, conn_id: str, channel: str) -> None:
        conn = self._local(conn_id)
        if conn is None:
            raise HubError(Error.NOT_FOUND, f"no live connection {conn_id}")
        self.hub.unsubscribe_on_behalf(conn, channel)

    # -- bus handlers (the holding node) ------------------------------------------------------------

    async def _on_subscribe(self, msg: BusMessage) -> dict[str, Any]:
        b = msg.body
        conn_id, channel, since, epoch = b.get("conn"), b.get("channel"), b.get("since"), b.get("epoch")
        if (
            not isinstance(conn_id, str)
            or not 0 < len(conn_id) <= _MAX_ID
            or not isinstance(channel, str)
            or not 0 < len(channel) <= _MAX_CHANNEL
            or not (since is None or (isinstance(since, int) and not isinstance(since, bool) and since >= 0))
            or not (epoch is None or (isinstance(epoch, str) and 0 < len(epoch) <= _MAX_EPOCH))
        ):
            return _refusal(HubError(Error.VALIDATION_FAILED, "malformed subscribe command"))
        try:
            result = await self._subscribe_here(conn_id, channel, since, epoch)
        except HubError as exc:
            return _refusal(exc)
        logger.info("bus subscribe from %s: %s on %s", msg.sender, conn_id, channel)
        return {"result": result}

    def _on_unsubscribe(self, msg: BusMessage) -> dict[str, Any]:
        conn_id, channel = msg.body.get("conn"), msg.body.get("channel")
        if (
            not isinstance(conn_id, str)
            or not 0 < len(conn_id) <= _MAX_ID
            or not isinstance(channel, str)
            or not 0 < len(channel) <= _MAX_CHANNEL
        ):
            return _refusal(HubError(Error.VALIDATION_FAILED, "malformed unsubscribe command"))
        try:
            self._unsubscribe_here(conn_id, channel)
        except HubError as exc:
            return _refusal(exc)
        logger.info("bus unsubscribe from %s: %s on %s", msg.sender, conn_id, channel)
        return {"result": {}}


def _refusal(exc: HubError) -> dict[str, Any]:
    return {"error": {"code": exc.code, "message": exc.message, "extra": exc.extra}}
