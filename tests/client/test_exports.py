"""The public surface of bridge.client: everything in __all__ exists, nothing private leaks."""

from __future__ import annotations

import bridge.client
from bridge.client import _client, _exceptions, _mock, _subscription, _transport


def test_exports_all_names_exist() -> None:
    for name in bridge.client.__all__:
        assert hasattr(bridge.client, name), name


def test_exports_no_private_names() -> None:
    assert all(not name.startswith("_") for name in bridge.client.__all__)


def test_exports_public_classes_are_reexported() -> None:
    expected = {
        "Client": _client.Client,
        "connect": _client.connect,
        "Subscription": _subscription.Subscription,
        "MockTransport": _mock.MockTransport,
        "FakeHub": _mock.FakeHub,
        "WebSocketTransport": _transport.WebSocketTransport,
        "RecoveryFailed": _exceptions.RecoveryFailed,
    }
    for name, obj in expected.items():
        assert getattr(bridge.client, name) is obj


def test_exports_exceptions_share_a_base() -> None:
    for name in bridge.client.__all__:
        obj = getattr(bridge.client, name)
        if isinstance(obj, type) and issubclass(obj, Exception) and obj is not bridge.client.TransportClosed:
            assert issubclass(obj, bridge.client.ClientError), name
