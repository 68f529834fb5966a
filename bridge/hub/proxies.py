"""Which address a connection comes from when it reaches the hub through reverse proxies.

The per-IP connection limit must count clients, not the proxy in front of them, but
``X-Forwarded-For`` is only a claim: anyone can send it. The hub therefore believes it only from
peers listed in ``trusted_proxies`` (CIDRs) and walks the header from the right, skipping hops that
are trusted proxies themselves, exactly as nginx's ``real_ip_recursive on`` does. A malformed entry
stops the walk at the last address a trusted proxy vouched for. Pure and I/O-free.

uvicorn's ``forwarded_allow_ips`` does the same for ASGI requests only; ``/ws`` does not go through
ASGI (docs/architecture.md), so the hub has this one rule and uvicorn's proxy headers stay off.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

__all__ = ["TrustedProxies"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

#: A header longer than this is not walked past its last entries (a client may pad it).
MAX_HOPS = 16


class TrustedProxies:
    def __init__(self, cidrs: Iterable[str] = ()) -> None:
        self.networks: tuple[Network, ...] = tuple(
            ipaddress.ip_network(c.strip(), strict=False) for c in cidrs
        )

    def __bool__(self) -> bool:
        return bool(self.networks)

    def trusts(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in net for net in self.networks)

    def client(self, peer: str, forwarded_for: Iterable[str]) -> str:
        """The client's address: ``peer`` unless a trusted proxy says otherwise."""
        if not self.networks or not self.trusts(peer):
            return peer
        hops = [h.strip() for value in forwarded_for for h in value.split(",")]
        current = peer
        for hop in reversed(hops[-MAX_HOPS:]):
            if not self.trusts(current):
                break
            try:
                current = str(ipaddress.ip_address(hop))
            except ValueError:
                break
        return current
