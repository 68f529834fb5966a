"""The FastAPI application and its lifespan: builds the hub, the store and the WebSocket options.

The app object serves REST, health, metrics and the dashboard. WebSocket upgrades never reach it:
uvicorn hands them to :class:`bridge.hub.websocket.HubWebSocketProtocol`, which finds the hub in
the lifespan state this module yields.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.staticfiles import StaticFiles

from bridge.api import accounts, admin, errors, events, ops, signals, subscriptions
from bridge.api.params import strict_query
from bridge.auth.tokens import Verifier, load_or_create_secret
from bridge.config import Settings
from bridge.hub.websocket import WebSocketOptions

__all__ = ["build_verifier", "create_app"]

logger = logging.getLogger("mtbridge.api")

STATIC_DIR = Path(__file__).resolve().parent.parent / "dashboard" / "static"


def build_verifier(settings: Settings) -> tuple[Verifier, bytes | None]:
    """The verifier the settings describe, and the HMAC secret when there is one."""
    algs = settings.jwt_algorithms
    common: dict[str, Any] = {
        "audience": settings.jwt_audience,
        "issuer": settings.jwt_issuer,
        "leeway": settings.jwt_leeway,
    }
    if all(a.startswith("HS") for a in algs):
        secret, created = load_or_create_secret(settings.secret_path)
        if created:
            logger.warning("generated a new HS256 signing secret at %s (mode 0600)", settings.secret_path)
        return Verifier(algs, secret=secret, **common), secret
    if settings.jwt_jwks_file is not None:
        return Verifier.from_jwks(algs, settings.jwt_jwks_file.read_text(), **common), None
    if settings.jwt_public_key_file is not None:
        return Verifier.from_pem(algs, settings.jwt_public_key_file.read_bytes(), **common), None
    raise ValueError("RS*/ES* algorithms need jwt_public_key_file or jwt_jwks_file")


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        from bridge.services import Services

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
