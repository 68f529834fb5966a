"""Running the hub under uvicorn with the WebSocket data path outside ASGI."""

from __future__ import annotations

import logging
from typing import Any

import uvicorn

from bridge.api.app import create_app
from bridge.config import Settings
from bridge.hub.http import HubHttpProtocol
from bridge.hub.websocket import HubWebSocketProtocol
from bridge.redact import RedactingFilter

__all__ = ["install_log_redaction", "run", "uvicorn_config"]


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
        "http": HubHttpProtocol,
        "lifespan": "on",
        "log_config": log_config(settings.log_level),
        "timeout_graceful_shutdown": settings.shutdown_timeout,
        "proxy_headers": False,
        "server_header": False,
        "backlog": 4096,
    }
    options.update(overrides)
    return uvicorn.Config(create_app(settings), **options)


def run(settings: Settings) -> None:
    server = uvicorn.Server(uvicorn_config(settings))
    server.run()
