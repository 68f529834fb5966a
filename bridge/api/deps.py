"""Request dependencies: the hub from app state, and bearer-token authorisation."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from bridge.auth.exceptions import AuthError
from bridge.auth.revocation import verify_unrevoked
from bridge.auth.tokens import Claims
from bridge.hub.hub import Hub, HubError
from bridge.protocol.channels import Role

__all__ = ["AdminClaims", "BearerClaims", "HubDep", "ServicesDep", "get_hub", "hub_error", "require_roles"]

_bearer = HTTPBearer(auto_error=False)


def get_hub(request: Request) -> Hub:
    hub: Hub | None = getattr(request.state, "hub", None)
    if hub is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "hub not ready")
    return hub


HubDep = Annotated[Hub, Depends(get_hub)]


def get_services(request: Request) -> Any:
    services = getattr(request.state, "services", None)
    if services is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "hub not ready")
    return services


ServicesDep = Annotated[Any, Depends(get_services)]


def bearer_claims(
    hub: HubDep, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Claims:
    if creds is None or creds.scheme.lower() != "bearer":
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "bearer token required", headers={"WWW-Authenticate": "Bearer"}
        )
    try:
        return verify_unrevoked(hub.verifier, hub.revocations, creds.credentials, hub.clock())
    except AuthError as exc:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            {"code": exc.code, "message": str(exc)},
            headers={"WWW-Authenticate": "Bearer"},
        ) from exc


BearerClaims = Annotated[Claims, Depends(bearer_claims)]


def require_roles(*roles: Role) -> Any:
    def check(claims: BearerClaims) -> Claims:
        if claims.role not in roles:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, {"code": "forbidden", "message": "role not allowed"}
            )
        return claims

    return Depends(check)


AdminClaims = Annotated[Claims, require_roles(Role.ADMIN)]


#: HTTP status of each reply error code a REST handler can meet; any other is a 400 (bad input).
HUB_ERROR_STATUS = {
    "validation_failed": status.HTTP_422_UNPROCESSABLE_CONTENT,
    "forbidden": status.HTTP_403_FORBIDDEN,
    "paused": status.HTTP_409_CONFLICT,
    "unavailable": status.HTTP_503_SERVICE_UNAVAILABLE,
    "not_found": status.HTTP_404_NOT_FOUND,
    "not_subscribed": status.HTTP_404_NOT_FOUND,
    "already_subscribed": status.HTTP_409_CONFLICT,
    "too_many_subscriptions": status.HTTP_409_CONFLICT,
}


def hub_error(exc: HubError, **extra: object) -> HTTPException:
    """The REST answer to a refused hub request: ``{"detail": {code, message, ...}}``."""
    return HTTPException(
        HUB_ERROR_STATUS.get(exc.code, status.HTTP_400_BAD_REQUEST),
        {"code": exc.code, "message": exc.message, **exc.extra, **extra},
    )
