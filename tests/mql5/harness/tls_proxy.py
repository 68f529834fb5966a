"""TLS termination in front of a plain TCP server, as a reverse proxy does in front of the hub.

Usage: python tls_proxy.py CERT KEY LISTEN_PORT BACKEND_PORT  (prints "ready" once listening)
"""

from __future__ import annotations

import asyncio
import ssl
import sys

__all__ = ["main"]


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        writer.close()


async def _serve(cert: str, key: str, port: int, backend: int) -> None:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            b_reader, b_writer = await asyncio.open_connection("127.0.0.1", backend)
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pipe(reader, b_writer), _pipe(b_reader, writer))

    server = await asyncio.start_server(client, "127.0.0.1", port, ssl=ctx)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    cert, key, port, backend = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    asyncio.run(_serve(cert, key, port, backend))


if __name__ == "__main__":
    main()
