"""Exceptions of the benchmark harness.

BenchError
 └── NotAvailable   a scenario the server under test does not support (yet)
"""

from __future__ import annotations

__all__ = ["BenchError", "NotAvailable"]


class BenchError(Exception):
    """A benchmark could not run: a server did not start, a client failed, a setup step broke."""


class NotAvailable(BenchError):
    """The server rejects what a scenario needs, e.g. a message type it does not implement yet."""

    def __init__(self, scenario: str, reason: str) -> None:
        super().__init__(f"{scenario}: not available: {reason}")
        self.scenario = scenario
        self.reason = reason
