"""Peer: a minimal Python `websockets` server using `broadcast()`.

Subscribers connect to /sub, the publisher to /pub; each publisher message is
broadcast to every subscriber. Plain asyncio event loop, no compression.
"""

from __future__ import annotations

import asyncio
import sys

from websockets.asyncio.server import ServerConnection, broadcast, serve

SUBSCRIBERS: set[ServerConnection] = set()


async def handler(ws: ServerConnection) -> None:
    if ws.request is not None and ws.request.path == "/pub":
        async for message in ws:
            broadcast(SUBSCRIBERS, message)
        return
    SUBSCRIBERS.add(ws)
    try:
        await ws.wait_closed()
    finally:
        SUBSCRIBERS.discard(ws)


async def main(port: int) -> None:
    async with serve(
        handler, "127.0.0.1", port, compression=None, ping_interval=None, max_queue=None, backlog=4096
    ) as server:
        print(f"py-websockets listening on {port}", flush=True)
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 9004))
