"""The revocation list: token ids and subjects that must be refused.

Kept in memory for the constant-time-per-check hot path, loaded from and persisted to the store
by the hub. Entries carry an expiry after which they can be forgotten (a revoked ``jti`` is
harmless once its token has expired; a revoked subject defaults to a long expiry).
"""

from __future__ import annotations

from dataclasses import dataclass

from bridge.auth.tokens import Claims

__all__ = ["Revocation", "RevocationList"]


@dataclass(frozen=True, slots=True)
class Revocation:
    kind: str  # "jti" or "sub"
    value: str
    expires_at: float


class RevocationList:
    def __init__(self) -> None:
        self._jti: dict[str, float] = {}
        self._sub: dict[str, float] = {}

    def add(self, rev: Revocation) -> None:
        if rev.kind == "jti":
            self._jti[rev.value] = max(rev.expires_at, self._jti.get(rev.value, 0.0))
        elif rev.kind == "sub":
            self._sub[rev.value] = max(rev.expires_at, self._sub.get(rev.value, 0.0))
        else:
            raise ValueError("kind must be 'jti' or 'sub'")

    def is_revoked(self, claims: Claims, now: float) -> bool:
        if claims.jti is not None and self._jti.get(claims.jti, 0.0) > now:
            return True
        return self._sub.get(claims.sub, 0.0) > now

    def prune(self, now: float) -> None:
        for table in (self._jti, self._sub):
            for key in [k for k, exp in table.items() if exp <= now]:
                del table[key]

    def entries(self) -> list[Revocation]:
        return [Revocation("jti", k, v) for k, v in self._jti.items()] + [
            Revocation("sub", k, v) for k, v in self._sub.items()
        ]
