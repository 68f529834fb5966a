"""A free TCP port on 127.0.0.1 for a server a test starts (hub, Redis, PostgreSQL, nginx, Vite), and
whether a server answers on a port."""

from __future__ import annotations

import socket

__all__ = ["free_port", "reachable"]


def free_port() -> int:
    """A port the kernel just handed out and released: free now, very probably still free when the
    server binds it a moment later (the kernel cycles through ~28 000 ephemeral ports)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def reachable(host: str, port: int) -> bool:
    """Whether a TCP server accepts a connection on ``host:port`` within 1 s."""
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False
