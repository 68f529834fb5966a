"""The Python SDK (``bridge.client``) against its mock hub, for the SDK's own tests: the tokens the
mock hub accepts and the type of the ``make_client`` fixture (tests/client/conftest.py). The SDK
against a real hub uses :mod:`tests.support.hub` instead."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from bridge.client import Client, FakeHub, FakeToken

__all__ = ["EA", "ENGINE", "ClientFactory", "fake_hub"]

#: A token of the engine ``eng``, allowed everything an engine is.
ENGINE = "engine-token"
#: A token of the EA of account 50123 (``ea-2`` is a second one of the same subject).
EA = "ea-token"

#: ``make_client(token=ENGINE, **options)``: a connected SDK client, closed after the test.
ClientFactory = Callable[..., Coroutine[Any, Any, Client]]


def fake_hub() -> FakeHub:
    return FakeHub(
        {
            ENGINE: FakeToken("eng", "engine"),
            EA: FakeToken("ea-50123", "ea", frozenset({"50123"})),
            "ea-2": FakeToken("ea-50123", "ea", frozenset({"50123"})),
        }
    )
