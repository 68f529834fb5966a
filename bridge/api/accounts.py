"""Accounts (last seen, connected, last snapshot) and operator control (pause/resume)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from bridge.api.deps import AdminClaims, BearerClaims, ServicesDep
from bridge.api.replies import api_error
from bridge.cluster import cluster_of
from bridge.protocol.channels import Role, holds_account
from bridge.protocol.codes import Error

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["accounts and control"])


@router.get("/accounts")
async def list_accounts(services: ServicesDep, claims: BearerClaims) -> dict[str, Any]:
    """Every known account with connection state (an EA online on any node) and its last snapshot."""
    ledger = services.ledger
    online = await cluster_of(services).online_accounts()
    items = []
    for acc in await services.store.list_accounts():
        if claims.role is not Role.ADMIN and not holds_account(claims.accounts, acc.login):
            continue
        snap = acc.snapshot or {}
        items.append(
            {
                "account": acc.login,
                "connected": acc.login in online,
                "lastSeen": acc.last_seen_ms,
                "balance": snap.get("balance"),
                "equity": snap.get("equity"),
                "margin": snap.get("margin"),
                "freeMargin": snap.get("freeMargin"),
                "currency": snap.get("currency"),
                "positions": snap.get("positions", []),
                "updatedAt": acc.snapshot_ts_ms,
                "paused": acc.login in ledger.paused_accounts,
            }
        )
    return {"items": items}


class ControlRequest(BaseModel):
    model_config = {"extra": "forbid"}

    scope: Literal["account", "strategy"]
    command: Literal["pause", "resume"]
    account: str | None = Field(None, pattern=r"^[A-Za-z0-9_-]{1,32}$")
    strategy: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]{1,64}$")


@router.post("/control")
async def control(body: ControlRequest, services: ServicesDep, claims: AdminClaims) -> dict[str, Any]:
    """Pause or resume an account or a strategy (admin). EAs obey; a paused strategy is refused at the hub."""
    key = body.account if body.scope == "account" else body.strategy
    if key is None:
        raise api_error(Error.VALIDATION_FAILED, f"{body.scope} is required for scope {body.scope}")
    state = await services.ledger.control(body.scope, body.command, key, claims.sub)
    await cluster_of(services).control_changed()  # every node reads the control log now
    return state


@router.get("/control")
async def control_state(services: ServicesDep, _: BearerClaims) -> dict[str, Any]:
    """What is paused now."""
    return services.ledger.control_state()


@router.get("/health")
async def health(services: ServicesDep, _: BearerClaims) -> dict[str, Any]:
    """The latest health sample, of the whole cluster (also pushed every second on ``system:health``)."""
    return cluster_of(services).health_latest()


@router.get("/health/history")
async def health_history(services: ServicesDep, _: BearerClaims) -> dict[str, Any]:
    """Up to five minutes of one-second health samples, oldest first."""
    return {"items": cluster_of(services).health_history()}
