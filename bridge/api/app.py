"""The FastAPI application and its lifespan: starts the process's :class:`~bridge.services.Services`
(the wiring of verifier, store, hub, ledger and cluster lives there, not here) and yields the hub
and the WebSocket options.

The app object serves REST, health, metrics and the dashboard. WebSocket upgrades never reach it:
uvicorn hands them to :class:`bridge.hub.websocket.HubWebSocketProtocol`, which finds the hub in
the lifespan state this module yields.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.staticfiles import StaticFiles

from bridge.api import accounts, admin, errors, events, ops, signals, subscriptions
from bridge.api.params import strict_query
from bridge.config import Settings
from bridge.hub.websocket import WebSocketOptions
from bridge.services import Services

__all__ = ["create_app"]

STATIC_DIR = Path(__file__).resolve().parent.parent / "dashboard" / "static"


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        services = await Services.start(settings)
        app.state.services = services
        try:
            yield {
                "hub": services.hub,
                "ws_options": WebSocketOptions(
                    allowed_origins=settings.origins,
                    test_mode=settings.test_mode,
                    trusted_proxies=settings.trusted_proxies,
                ),
                "hmac_secret": services.hmac_secret,
                "ready_check": services.ready_check,
                "services": services,
            }
        finally:
            await services.stop(settings.shutdown_timeout)

    app = FastAPI(
        title="mtbridge",
        version="0.1.0",
        summary="MetaTrader bridge and signal relay",
        lifespan=lifespan,
        responses=errors.ERROR_RESPONSES,
        dependencies=[Depends(strict_query)],
    )
    errors.install(app)
    app.include_router(ops.router)
    app.include_router(admin.router)
    app.include_router(signals.router)
    app.include_router(events.router)
    app.include_router(accounts.router)
    app.include_router(subscriptions.router)
    if STATIC_DIR.is_dir():
        app.mount("/", StaticFiles(directory=STATIC_DIR, html=True), name="dashboard")
    return app
