"""Tokens and connections: issue and revoke tokens, list and close connections."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, HTTPException, Request, status
from pydantic import BaseModel, Field
from redis.exceptions import RedisError

from bridge.api.deps import AdminClaims, BearerClaims, HubDep, ServicesDep
from bridge.api.replies import api_error
from bridge.auth.tokens import issue
from bridge.cluster import LocalCluster, cluster_of
from bridge.protocol.channels import Role
from bridge.protocol.codes import Error

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["tokens and connections"])


class TokenRequest(BaseModel):
    model_config = {"extra": "forbid"}

    role: Role
    sub: str = Field(min_length=1, max_length=128)
    accounts: list[str] = Field(default_factory=list, max_length=256)
    groups: list[str] = Field(default_factory=list, max_length=256)
    subscribe: list[str] = Field(default_factory=list, max_length=256)
    publish: list[str] = Field(default_factory=list, max_length=256)
    ttl: int = Field(3600, gt=0, le=366 * 86400)


class RevokeRequest(BaseModel):
    model_config = {"extra": "forbid"}

    kind: Literal["jti", "sub"]
    value: str = Field(min_length=1, max_length=128)
    expiresAt: float | None = None


@router.post("/tokens", status_code=status.HTTP_201_CREATED)
async def issue_token(body: TokenRequest, request: Request, hub: HubDep, _: AdminClaims) -> dict[str, object]:
    """Issue a token signed with the hub's HMAC secret (admin only)."""
    secret: bytes | None = getattr(request.state, "hmac_secret", None)
    if secret is None:
        raise HTTPException(
            status.HTTP_409_CONFLICT, "tokens are issued by your identity provider (RS/ES keys)"
        )
    now = hub.clock()
    token = issue(
        secret,
        sub=body.sub,
        role=body.role,
        now=now,
        ttl=body.ttl,
        accounts=body.accounts,
        groups=body.groups,
        subscribe=body.subscribe,
        publish=body.publish,
        audience=hub.verifier.audience,
        issuer=hub.verifier.issuer,
        algorithm=hub.verifier.algorithms[0],
    )
    claims = hub.verifier.verify(token, now)
    return {"token": token, "jti": claims.jti, "expiresAt": int(claims.exp)}


@router.post("/tokens/revoke")
async def revoke_token(body: RevokeRequest, hub: HubDep, _: AdminClaims) -> dict[str, object]:
    """Revoke a token id or a subject; its live connections are closed at once."""
    closed = await hub.revoke(body.kind, body.value, body.expiresAt)
    return {"revoked": {"kind": body.kind, "value": body.value}, "closedConnections": closed}


@router.get("/me")
async def me(claims: BearerClaims) -> dict[str, object]:
    """Who the bearer token says you are (the dashboard shows controls by role)."""
    return {
        "sub": claims.sub,
        "role": claims.role.value,
        "accounts": sorted(claims.accounts),
        "expiresAt": int(claims.exp),
    }


@router.get("/connections")
async def list_connections(services: ServicesDep, claims: BearerClaims) -> dict[str, object]:
    """Live connections of every node of the cluster, each with its ``node`` (dashboards and admins).

    This node's own entries are live; another node's counters (messages, queue, subscriptions) are
    at most ``PRESENCE_REFRESH`` (5 s) old, and a dead node's entries vanish within 5 s. While Redis
    is unreachable the list holds this node's connections only and ``complete`` is false."""
    if claims.role not in (Role.ADMIN, Role.DASHBOARD):
        raise api_error(Error.FORBIDDEN, "role not allowed")
    cluster = cluster_of(services)
    try:
        return {"items": await cluster.connections(), "complete": True}
    except (RedisError, OSError):
        # Redis unreachable: this node's own connections, said to be only part of the list.
        return {"items": await LocalCluster.connections(cluster), "complete": False}


@router.delete("/connections/{conn_id}")
async def close_connection(conn_id: str, services: ServicesDep, _: AdminClaims) -> dict[str, object]:
    """Close one connection, on whichever node holds it, with 4006 (the client reconnects)."""
    if not 0 < len(conn_id) <= 64:
        raise api_error(Error.NOT_FOUND, "no such connection")
    try:
        closed = await cluster_of(services).close_connection(conn_id)
    except TimeoutError as exc:
        raise api_error(
            Error.UNAVAILABLE,
            "the node holding this connection did not answer; retry",
            status_code=status.HTTP_504_GATEWAY_TIMEOUT,
        ) from exc
    except (RedisError, OSError) as exc:
        raise api_error(Error.UNAVAILABLE, "cluster presence unreachable; retry") from exc
    if closed is None:
        raise api_error(Error.NOT_FOUND, "no such connection")
    return closed


@router.get("/cluster")
async def cluster_status(services: ServicesDep, _: AdminClaims) -> dict[str, object]:
    """This node's view of the cluster: its node id, the live nodes, Redis and bus state, and what
    it leads (``sweeps``: retention, signal expiry, the health sample; ``marketdata``: the adapters)."""
    return cluster_of(services).status()
