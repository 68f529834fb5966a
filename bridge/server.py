"""Running the hub under uvicorn with the WebSocket data path outside ASGI: the uvicorn options,
logging with token redaction, and the collector tuning of a serving process.

The hub's parts are assembled in :mod:`bridge.services` (started by the app's lifespan,
:mod:`bridge.api.app`), not here.
"""

from __future__ import annotations

import gc
import logging
from typing import Any

import uvicorn

from bridge.api.app import create_app
from bridge.config import Settings
from bridge.hub.http import HubHttpProtocol
from bridge.hub.websocket import HubWebSocketProtocol
from bridge.redact import RedactingFilter

__all__ = ["install_log_redaction", "run", "tune_collector", "uvicorn_config"]

#: How many young-generation collections make a middle one, and middle ones an old one, while serving
#: (CPython's defaults are 10 and 10); see :func:`tune_collector`.
GC_MIDDLE_EVERY = 50
GC_OLD_EVERY = 100


def install_log_redaction() -> None:
    """No token reaches a log line: filter the handlers of every logger we and uvicorn use."""
    flt = RedactingFilter()
    for name in ("", "uvicorn", "uvicorn.error", "uvicorn.access", "mtbridge", "websockets"):
        lg = logging.getLogger(name)
        lg.addFilter(flt)
        for handler in lg.handlers:
            handler.addFilter(flt)


def log_config(level: str) -> dict[str, Any]:
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"redact": {"()": "bridge.redact.RedactingFilter"}},
        "formatters": {
            "default": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        },
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "default",
                "filters": ["redact"],
                "stream": "ext://sys.stderr",
            },
        },
        "loggers": {
            "": {"handlers": ["default"], "level": level.upper()},
            "uvicorn": {"handlers": [], "level": level.upper(), "propagate": True},
            "uvicorn.access": {"handlers": [], "level": level.upper(), "propagate": True},
            "mtbridge.ws": {"level": "WARNING" if level.lower() == "info" else level.upper()},
            "websockets": {"level": "WARNING"},
        },
    }


def uvicorn_config(settings: Settings, **overrides: Any) -> uvicorn.Config:
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "ws": HubWebSocketProtocol,
        "http": HubHttpProtocol.configured(
            header_timeout=settings.http_header_timeout,
            body_timeout=settings.http_body_timeout,
            max_request_bytes=settings.max_request_bytes,
        ),
        "lifespan": "on",
        "log_config": log_config(settings.log_level),
        "timeout_graceful_shutdown": settings.shutdown_timeout,
        "proxy_headers": False,
        "server_header": False,
        "backlog": 4096,
    }
    options.update(overrides)
    return uvicorn.Config(create_app(settings), **options)


def tune_collector(young_threshold: int) -> None:
    """Keep CPython's cyclic collector off the hot path of a serving hub.

    With the defaults (700, 10, 10) the collector took 10-15 % of the hub's CPU under `mtbridge bench
    signals`, most of it in full collections that walked the ~150,000 objects of the imported modules
    (80 ms each) and found a few hundred cycles. Freezing what exists once startup is done takes those
    objects out of every later collection; a larger young threshold makes the remaining collections
    rarer. Reference counting frees everything else as before, so memory only waits longer for the
    rare reference cycle. ``young_threshold`` 0 leaves CPython's defaults (and freezes nothing).
    """
    if young_threshold <= 0:
        return
    gc.collect()
    gc.freeze()
    gc.set_threshold(young_threshold, GC_MIDDLE_EVERY, GC_OLD_EVERY)


class _Server(uvicorn.Server):
    """uvicorn's server, tuning the collector once the application has started."""

    def __init__(self, config: uvicorn.Config, young_threshold: int) -> None:
        super().__init__(config)
        self._young_threshold = young_threshold

    async def startup(self, sockets: list[Any] | None = None) -> None:
        await super().startup(sockets=sockets)
        tune_collector(self._young_threshold)

    async def shutdown(self, sockets: list[Any] | None = None) -> None:
        # SIGTERM: the hub drains (and /readyz fails) before uvicorn closes anything, also when no
        # WebSocket is open to start it from its connections' shutdown hook.
        hub = getattr(getattr(self, "lifespan", None), "state", {}).get("hub")
        if hub is not None:
            hub.begin_drain()
        await super().shutdown(sockets=sockets)


def run(settings: Settings) -> None:
    server = _Server(uvicorn_config(settings), settings.gc_young_threshold)
    server.run()
