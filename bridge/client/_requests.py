"""Request/response correlation: every request the client sends waits here for its answer.

A request carries a ``requestId`` (a counter, unique for the client's life, not per connection, so a
late answer from an old connection can never resolve a new request) and waits on a future with a
timeout. :meth:`Requests.answer` resolves it from the hub's ``result``, ``error`` or ``heartbeat``;
:meth:`Requests.fail_all` fails whatever is in flight when a connection ends (publishing a signal
again with the same ``id`` is safe: the hub answers ``duplicate: true``).

Timeouts use ``asyncio.timeout``, not ``asyncio.wait_for``: on Python 3.11, ``wait_for`` can lose a
cancellation that arrives as its inner awaitable finishes (CPython gh-86296, fixed in 3.12), and a
runner that survives ``close()``'s cancel leaves ``close()`` waiting for it forever. A CI run hung in
a client test's teardown, in ``close()``, with the event loop idle.

Not here: which requests are sent when (the lifecycle in :mod:`bridge.client._lifecycle`, the public
requests in :mod:`bridge.client._client`) and the wire codec (:mod:`bridge.client._messages`).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable
from typing import Any

from bridge.client._exceptions import ClientError, ConnectionClosed, RequestError, RequestTimeout
from bridge.client._messages import Incoming, encode_outgoing
from bridge.client._transport import Link, TransportClosed
from bridge.protocol import codes
from bridge.protocol.envelope import Encoding

__all__ = ["Requests", "ResultHook"]

logger = logging.getLogger("mtbridge.client")

#: Called with the ``result`` message of a request, synchronously from the reader, before the
#: request's awaiter resumes (a subscribe applies its result before any message of the channel).
ResultHook = Callable[[Incoming], None]


class Requests:
    """The requests in flight of one client, by ``requestId``."""

    def __init__(self, encoding: Encoding) -> None:
        self.encoding = encoding
        self._pending: dict[str, tuple[asyncio.Future[dict[str, Any]], ResultHook | None]] = {}
        self._ids = itertools.count(1)

    async def send(
        self,
        link: Link,
        mtype: str,
        channel: str | None,
        payload: dict[str, Any] | None,
        timeout: float,  # noqa: ASYNC109
        *,
        on_result: ResultHook | None = None,
    ) -> dict[str, Any]:
        """Send one request on ``link`` and return its ``result`` payload.

        Raises:
            RequestError: the hub answered ``error``.
            RequestTimeout: no answer in time.
            ConnectionClosed: the link dropped before the answer.
        """
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

    def answer(self, m: Incoming) -> None:
        """Resolve the request ``m`` answers (a ``result``, ``error`` or ``heartbeat`` with a
        ``requestId``); an answer to a request no longer waiting is dropped."""
        assert m.request_id is not None
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

    def fail_all(self, error: ClientError) -> None:
        """Fail every request in flight with ``error`` (the connection or the client ended)."""
        pending, self._pending = self._pending, {}
        for future, _ in pending.values():
            if not future.done():
                future.set_exception(error)
                future.exception()
