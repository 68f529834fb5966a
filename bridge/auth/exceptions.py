"""Authentication errors.

AuthError
├── TokenInvalid   (bad signature, algorithm, audience, issuer, shape or claims)
├── TokenExpired   (``exp`` is in the past, beyond the leeway)
└── TokenRevoked   (its ``jti`` or ``sub`` is on the revocation list)
"""

from __future__ import annotations

__all__ = ["AuthError", "TokenExpired", "TokenInvalid", "TokenRevoked"]


class AuthError(Exception):
    """Base class; ``code`` is the reply error code from ``bridge.protocol.codes``."""

    code = "token_invalid"


class TokenInvalid(AuthError):
    code = "token_invalid"


class TokenExpired(AuthError):
    code = "token_expired"


class TokenRevoked(AuthError):
    code = "token_revoked"
