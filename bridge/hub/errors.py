"""The hub's request error: a refusal that becomes an ``error`` reply with a named code.

Raised by the command handlers (``commands.py``, ``admission.py``), publish hooks (the ledger) and
the REST entry points that call into the hub; turned into a reply by ``commands.py``. The codes
themselves live in ``bridge/protocol/codes.py``.
"""

from __future__ import annotations

from typing import Any

from bridge.protocol import codes

__all__ = ["HubError"]


class HubError(Exception):
    """A request that fails with a reply error (``code`` from ``codes.ERRORS``)."""

    def __init__(self, code: codes.Error, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.extra = extra
