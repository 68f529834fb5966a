"""X-Forwarded-For is believed only from trusted proxies (bridge/hub/proxies.py)."""

from __future__ import annotations

import ipaddress

from hypothesis import given
from hypothesis import strategies as st

from bridge.hub.proxies import TrustedProxies

P = TrustedProxies(["10.0.0.0/8", "::1/128", "127.0.0.1"])


def test_untrusted_peer_is_the_client_whatever_it_claims() -> None:
    assert P.client("203.0.113.9", ["1.2.3.4"]) == "203.0.113.9"
    assert TrustedProxies().client("10.0.0.1", ["1.2.3.4"]) == "10.0.0.1"


def test_walks_from_the_right_past_trusted_hops() -> None:
    assert P.client("127.0.0.1", ["198.51.100.7"]) == "198.51.100.7"
    # The client prepended a lie; the rightmost untrusted address is the one our proxies saw.
    assert P.client("127.0.0.1", ["6.6.6.6, 198.51.100.7, 10.1.2.3"]) == "198.51.100.7"
    # Several header lines count as one list, in order.
    assert P.client("10.9.9.9", ["6.6.6.6", "198.51.100.7"]) == "198.51.100.7"
    assert P.client("::ffff:127.0.0.1", ["2001:db8::1"]) == "2001:db8::1"


def test_all_trusted_or_malformed_stops_at_the_last_vouched_address() -> None:
    assert P.client("127.0.0.1", ["10.0.0.5"]) == "10.0.0.5"
    assert P.client("127.0.0.1", ["garbage, 10.0.0.5"]) == "10.0.0.5"
    assert P.client("127.0.0.1", ["nonsense"]) == "127.0.0.1"
    assert P.client("127.0.0.1", []) == "127.0.0.1"


@given(st.lists(st.text(max_size=40), max_size=5), st.sampled_from(["127.0.0.1", "10.2.3.4", "8.8.8.8"]))
def test_answer_is_the_peer_or_a_valid_address_from_the_header(values: list[str], peer: str) -> None:
    got = P.client(peer, values)
    if got != peer:
        ipaddress.ip_address(got)
        assert P.trusts(peer)
