"""Prometheus counters for the market-data adapters, registered once on the default registry.

Importing the module twice (tests, the hub embedding adapters, a reload) must not fail with
"Duplicated timeseries", so each collector is looked up in the registry before being created.
"""

from __future__ import annotations

from typing import cast

from prometheus_client import REGISTRY, Counter

__all__ = [
    "CHECKSUMS_VERIFIED",
    "CONNECTIONS",
    "DROPPED",
    "MESSAGES",
    "PUBLISHED",
    "RATE_LIMITED",
    "RECONNECTS",
    "RESYNCS",
]


def _counter(name: str, documentation: str, labels: tuple[str, ...]) -> Counter:
    # prometheus_client registers counters under the name without the _total suffix.
    existing = REGISTRY._names_to_collectors.get(name)
    if existing is not None:
        return cast(Counter, existing)
    return Counter(name, documentation, labels)


RESYNCS = _counter(
    "mtbridge_marketdata_resyncs", "Book resyncs after a gap or checksum mismatch", ("venue", "reason")
)
CHECKSUMS_VERIFIED = _counter(
    "mtbridge_marketdata_checksums_verified", "Venue book checksums that matched the local book", ("venue",)
)
RECONNECTS = _counter(
    "mtbridge_marketdata_reconnects", "Venue connections re-established", ("venue", "reason")
)
CONNECTIONS = _counter("mtbridge_marketdata_connections", "Venue connections opened", ("venue",))
MESSAGES = _counter("mtbridge_marketdata_messages", "Frames received from venues", ("venue",))
PUBLISHED = _counter(
    "mtbridge_marketdata_published", "Normalised messages handed to the sink", ("venue", "kind")
)
RATE_LIMITED = _counter(
    "mtbridge_marketdata_rate_limited", "Requests a venue refused for rate reasons", ("venue",)
)
DROPPED = _counter(
    "mtbridge_marketdata_dropped", "Malformed or unexpected frames ignored", ("venue", "reason")
)
