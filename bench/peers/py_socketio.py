"""Peer: python-socketio (ASGI) on uvicorn, websocket transport only.

Every "pub" event is re-emitted as "msg" to every other connected client.
"""

from __future__ import annotations

import sys

import socketio
import uvicorn

sio = socketio.AsyncServer(async_mode="asgi", transports=["websocket"], cors_allowed_origins=None)
app = socketio.ASGIApp(sio)


@sio.on("pub")  # type: ignore[untyped-decorator]
async def on_pub(sid: str, data: object) -> None:
    await sio.emit("msg", data, skip_sid=sid)


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 9005
    print(f"py-socketio listening on {port}", flush=True)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", ws_per_message_deflate=False, backlog=4096)
