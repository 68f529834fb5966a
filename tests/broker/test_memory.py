"""The in-process broker (bridge/broker/memory.py), a single hub's fan-out backend."""

from __future__ import annotations

from bridge.broker.base import Broker
from bridge.broker.memory import MemoryBroker


def test_memory_broker_satisfies_the_interface() -> None:
    _: Broker = MemoryBroker()
