"""Wiring: the verifier, the store, the hub and the ledger of one hub process, started and
stopped together. The app's lifespan, the CLI and tests all start a hub through here."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from bridge.api.app import build_verifier
from bridge.config import Settings
from bridge.hub.hub import Hub

__all__ = ["Services"]

logger = logging.getLogger("mtbridge")


@dataclass
class Services:
    settings: Settings
    hub: Hub
    hmac_secret: bytes | None
    store: Any = None
    extras: list[Any] = field(default_factory=list)
    ready_check: Callable[[], Awaitable[None]] | None = None

    @classmethod
    async def start(cls, settings: Settings) -> Services:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        verifier, secret = build_verifier(settings)
        hub = Hub(verifier, limits=settings.hub_limits())
        services = cls(settings, hub, secret)
        await hub.start()
        logger.info("hub ready (epoch %s)", hub.epoch)
        return services

    async def stop(self, timeout: float) -> None:
        await self.hub.stop(drain_timeout=min(timeout, 5.0))
