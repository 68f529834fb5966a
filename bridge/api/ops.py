"""Health, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from bridge.api.deps import HubDep

__all__ = ["router"]

router = APIRouter(tags=["operations"])


class Readiness(BaseModel):
    status: str
    checks: dict[str, bool]


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up and its loop answers."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"model": Readiness, "description": "not ready"}})
async def readyz(request: Request, response: Response) -> dict[str, object]:
    """Ready to take connections: hub accepting and the store answering.

    On a cluster node, ``checks.redis`` says whether the node reaches Redis. Without it the node is
    ``degraded`` but still ready (200): it serves its own subscribers, and what other nodes publish
    reaches them from PostgreSQL by the periodic gap check (docs/scaling.md)."""
    hub = getattr(request.state, "hub", None)
    checks: dict[str, object] = {"hub": bool(hub and hub.accepting)}
    ready_check = getattr(request.state, "ready_check", None)
    if ready_check is not None:
        try:
            await ready_check()
            checks["store"] = True
        except Exception:
            checks["store"] = False
    ok = all(v is True for v in checks.values())
    if not ok:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    services = getattr(request.state, "services", None)
    degraded = False
    if hub is not None and services is not None and getattr(services, "redis", None) is not None:
        checks["redis"] = bool(hub.broker.healthy)
        degraded = not hub.broker.healthy
    state = "unavailable" if not ok else "degraded" if degraded else "ok"
    return {"status": state, "checks": checks, "node": getattr(hub, "node_id", "") or None}


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}, "description": "OK"}},
)
async def metrics(hub: HubDep) -> Response:
    """Prometheus exposition of this hub's metrics."""
    hub.sync_metrics()
    return Response(generate_latest(hub.metrics.registry), media_type=CONTENT_TYPE_LATEST)
