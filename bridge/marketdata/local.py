"""The in-process sink: adapters running inside the hub publish straight into its fan-out.

Instrument channels are ephemeral and coalesce per channel for slow subscribers (the hub's
policy), so the adapter's ``key`` needs no handling here.
"""

from __future__ import annotations

from typing import Any

from bridge.hub.hub import Hub, HubError

__all__ = ["HubLocalSink"]


class HubLocalSink:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.published = 0
        self.refused = 0

    async def publish(self, channel: str, payload: dict[str, object], key: str | None) -> None:
        try:
            self.hub.policy_for(channel)
        except HubError:
            self.refused += 1
            return
        data: dict[str, Any] = dict(payload)
        self.hub.publish_ephemeral(channel, data)
        self.published += 1
