"""The revocation list: token ids and subjects that must be refused.

Kept in memory for a constant-time check on every auth, loaded from and persisted to the store by
the hub. A revoked ``jti`` is refused until the entry expires (once the token itself has expired it
is harmless). A revoked ``sub`` refuses every token of that subject issued at or before the
revocation, so the subject can be given a fresh token afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass

from bridge.auth.exceptions import TokenRevoked
from bridge.auth.tokens import Claims, Verifier

__all__ = ["Revocation", "RevocationList", "verify_unrevoked"]


@dataclass(frozen=True, slots=True)
class Revocation:
    kind: str  # "jti" or "sub"
    value: str
    revoked_at: float
    expires_at: float


class RevocationList:
    def __init__(self) -> None:
        self._jti: dict[str, Revocation] = {}
        self._sub: dict[str, Revocation] = {}

    def add(self, rev: Revocation) -> bool:
        """Add ``rev``; False if an entry at least as strong was already there."""
        if rev.kind not in ("jti", "sub"):
            raise ValueError("kind must be 'jti' or 'sub'")
        table = self._jti if rev.kind == "jti" else self._sub
        old = table.get(rev.value)
        if old is not None and old.expires_at >= rev.expires_at and old.revoked_at >= rev.revoked_at:
            return False
        table[rev.value] = rev
        return True

    def covers(self, rev: Revocation, claims: Claims) -> bool:
        if rev.kind == "jti":
            return claims.jti == rev.value
        return claims.sub == rev.value and (claims.iat is None or claims.iat <= rev.revoked_at)

    def is_revoked(self, claims: Claims, now: float) -> bool:
        if claims.jti is not None:
            rev = self._jti.get(claims.jti)
            if rev is not None and rev.expires_at > now:
                return True
        rev = self._sub.get(claims.sub)
        return rev is not None and rev.expires_at > now and self.covers(rev, claims)

    def prune(self, now: float) -> None:
        for table in (self._jti, self._sub):
            for key in [k for k, r in table.items() if r.expires_at <= now]:
                del table[key]

    def entries(self) -> list[Revocation]:
        return [*self._jti.values(), *self._sub.values()]


def verify_unrevoked(verifier: Verifier, revocations: RevocationList, token: object, now: float) -> Claims:
    """The one check of a presented token, for WebSocket ``auth``/``auth.refresh`` and REST bearer
    tokens alike: signature, claims and expiry, then the revocation list. Raises
    :class:`~bridge.auth.exceptions.AuthError` (its ``code`` is the reply error)."""
    claims = verifier.verify(token, now)
    if revocations.is_revoked(claims, now):
        raise TokenRevoked("token revoked")
    return claims
