"""Authentication errors.

AuthError
├── TokenInvalid   (bad signature, algorithm, audience, issuer, shape or claims)
├── TokenExpired   (``exp`` is in the past, beyond the leeway)
└── TokenRevoked   (its ``jti`` or ``sub`` is on the revocation list)
"""

from __future__ import annotations

from bridge.protocol.codes import Error

__all__ = ["AuthError", "TokenExpired", "TokenInvalid", "TokenRevoked"]


class AuthError(Exception):
    """Base class; ``code`` is the reply error code from ``bridge.protocol.codes``."""

    code: Error = Error.TOKEN_INVALID


class TokenInvalid(AuthError):
    code: Error = Error.TOKEN_INVALID


class TokenExpired(AuthError):
    code: Error = Error.TOKEN_EXPIRED


class TokenRevoked(AuthError):
    code: Error = Error.TOKEN_REVOKED
