"""Request dependencies: the hub and the process's services from app state, and bearer-token
authorisation. Error statuses are not decided here but in :mod:`bridge.api.replies`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from bridge.api.replies import api_error
from bridge.auth.exceptions import AuthError
from bridge.auth.revocation import verify_unrevoked
from bridge.auth.tokens import Claims
from bridge.hub.hub import Hub
from bridge.protocol.channels import Role
from bridge.protocol.codes import Error
from bridge.services import Services

__all__ = ["AdminClaims", "BearerClaims", "HubDep", "ServicesDep", "get_hub", "get_services", "require_roles"]

_bearer = HTTPBearer(auto_error=False)
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def get_hub(request: Request) -> Hub:
    hub: Hub | None = getattr(request.state, "hub", None)
    if hub is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "hub not ready")
    return hub


HubDep = Annotated[Hub, Depends(get_hub)]


def get_services(request: Request) -> Services:
    services: Services | None = getattr(request.state, "services", None)
    if services is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "hub not ready")
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


def bearer_claims(
    hub: HubDep, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Claims:
    if creds is None or creds.scheme.lower() != "bearer":
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "bearer token required", headers=_CHALLENGE)
    try:
        return verify_unrevoked(hub.verifier, hub.revocations, creds.credentials, hub.clock())
    except AuthError as exc:
        raise api_error(exc.code, str(exc), headers=_CHALLENGE) from exc


BearerClaims = Annotated[Claims, Depends(bearer_claims)]


def require_roles(*roles: Role) -> Any:
    def check(claims: BearerClaims) -> Claims:
        if claims.role not in roles:
            raise api_error(Error.FORBIDDEN, "role not allowed")
        return claims

    return Depends(check)


AdminClaims = Annotated[Claims, require_roles(Role.ADMIN)]
