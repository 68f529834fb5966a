"""JWT verification (RFC 7519, with RFC 8725's rules) and issuance.

The verifier fixes the allowed algorithms from configuration and never takes them from the token;
``none`` is never allowed, and an HMAC secret is never accepted for an asymmetric configuration
(or the reverse), so algorithm confusion fails. Time checks use an injected ``now`` so they are
tested without a clock.
"""

from __future__ import annotations

import json
import os
import secrets
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from jwt.algorithms import get_default_algorithms

from bridge.auth.exceptions import TokenExpired, TokenInvalid
from bridge.protocol.channels import Role

__all__ = [
    "DEFAULT_AUDIENCE",
    "DEFAULT_ISSUER",
    "DEFAULT_LEEWAY",
    "MAX_TOKEN_LENGTH",
    "Claims",
    "Verifier",
    "issue",
    "load_or_create_secret",
]

DEFAULT_AUDIENCE = "mtbridge"
DEFAULT_ISSUER = "mtbridge"
DEFAULT_LEEWAY = 5.0
MAX_TOKEN_LENGTH = 8192
MAX_LIST_CLAIM = 256
HMAC_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})
ASYMMETRIC_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "ES256", "ES384", "PS256"})


@dataclass(frozen=True, slots=True)
class Claims:
    """What a verified token grants."""

    sub: str
    role: Role
    exp: float
    accounts: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()
    subscribe: tuple[str, ...] = ()
    publish: tuple[str, ...] = ()
    jti: str | None = None
    iat: float | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)


def _str_list(payload: dict[str, Any], name: str) -> tuple[str, ...]:
    value = payload.get(name, [])
    if not isinstance(value, list) or len(value) > MAX_LIST_CLAIM:
        raise TokenInvalid(f"claim {name!r} must be a list of at most {MAX_LIST_CLAIM} strings")
    for item in value:
        if not isinstance(item, str) or not 0 < len(item) <= 200:
            raise TokenInvalid(f"claim {name!r} must hold non-empty strings")
    return tuple(value)


def _number(payload: dict[str, Any], name: str, required: bool) -> float | None:
    value = payload.get(name)
    if value is None:
        if required:
            raise TokenInvalid(f"claim {name!r} is required")
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TokenInvalid(f"claim {name!r} must be a number")
    return float(value)


class Verifier:
    """Checks tokens against fixed algorithms and keys.

    Args:
        algorithms: allowed ``alg`` values; all HMAC or all asymmetric.
        secret: the HMAC secret, for HS* algorithms.
        public_keys: PEM public keys or a JWKS, for RS*/ES* algorithms, by ``kid`` ("" for a
            single key without ``kid``).
    """

    def __init__(
        self,
        algorithms: Iterable[str],
        *,
        secret: bytes | None = None,
        public_keys: dict[str, Any] | None = None,
        audience: str | None = DEFAULT_AUDIENCE,
        issuer: str | None = DEFAULT_ISSUER,
        leeway: float = DEFAULT_LEEWAY,
    ) -> None:
        algs = tuple(algorithms)
        if not algs or "none" in {a.lower() for a in algs}:
            raise ValueError("at least one algorithm, and never 'none'")
        hmac = set(algs) <= HMAC_ALGORITHMS
        asym = set(algs) <= ASYMMETRIC_ALGORITHMS
        if not (hmac or asym):
            raise ValueError("algorithms must be all HMAC or all asymmetric, from the supported set")
        if hmac and not secret:
            raise ValueError("HMAC algorithms need a secret")
        if asym and not public_keys:
            raise ValueError("asymmetric algorithms need public keys")
        self.algorithms = algs
        self._secret = secret
        self._keys = public_keys or {}
        self.audience = audience
        self.issuer = issuer
        self.leeway = leeway

    @classmethod
    def from_pem(cls, algorithms: Iterable[str], pem: bytes, **kwargs: Any) -> Verifier:
        algs = tuple(algorithms)
        alg_obj = get_default_algorithms()[algs[0]]
        key = alg_obj.prepare_key(pem)
        return cls(algs, public_keys={"": key}, **kwargs)

    @classmethod
    def from_jwks(cls, algorithms: Iterable[str], jwks: str | dict[str, Any], **kwargs: Any) -> Verifier:
        data = json.loads(jwks) if isinstance(jwks, str) else jwks
        keys: dict[str, Any] = {}
        for jwk in jwt.PyJWKSet.from_dict(data).keys:
            keys[jwk.key_id or ""] = jwk.key
        return cls(algorithms, public_keys=keys, **kwargs)

    def _key_for(self, header: dict[str, Any]) -> Any:
        if self._secret is not None:
            return self._secret
        kid = header.get("kid") or ""
        if not isinstance(kid, str) or kid not in self._keys:
            if len(self._keys) == 1 and not kid:
                return next(iter(self._keys.values()))
            raise TokenInvalid("unknown key id")
        return self._keys[kid]

    def verify(self, token: object, now: float) -> Claims:
        """Verify ``token`` at time ``now``; raise TokenInvalid or TokenExpired."""
        if not isinstance(token, str) or not 0 < len(token) <= MAX_TOKEN_LENGTH:
            raise TokenInvalid("token must be a string of at most 8 KiB")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise TokenInvalid("malformed token") from exc
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self.algorithms:
            raise TokenInvalid("algorithm not allowed")
        key = self._key_for(header)
        try:
            payload = jwt.decode(
                token,
                key,
                algorithms=list(self.algorithms),
                audience=self.audience,
                issuer=self.issuer,
                options={
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    "verify_aud": self.audience is not None,
                    "verify_iss": self.issuer is not None,
                    "require": ["exp", "sub"],
                },
            )
        except jwt.PyJWTError as exc:
            raise TokenInvalid(type(exc).__name__) from exc
        return self._claims(payload, now)

    def _claims(self, payload: dict[str, Any], now: float) -> Claims:
        exp = _number(payload, "exp", True)
        assert exp is not None
        nbf = _number(payload, "nbf", False)
        iat = _number(payload, "iat", False)
        if nbf is not None and now + self.leeway < nbf:
            raise TokenInvalid("token not yet valid (nbf)")
        if iat is not None and now + self.leeway < iat:
            raise TokenInvalid("token issued in the future (iat)")
        if now - self.leeway >= exp:
            raise TokenExpired("token expired")
        sub = payload.get("sub")
        if not isinstance(sub, str) or not 0 < len(sub) <= 128:
            raise TokenInvalid("claim 'sub' must be a non-empty string")
        try:
            role = Role(str(payload.get("role")))
        except ValueError as exc:
            raise TokenInvalid("claim 'role' must be engine, ea, dashboard or admin") from exc
        jti = payload.get("jti")
        if jti is not None and (not isinstance(jti, str) or not 0 < len(jti) <= 128):
            raise TokenInvalid("claim 'jti' must be a string")
        return Claims(
            sub=sub,
            role=role,
            exp=exp,
            accounts=frozenset(_str_list(payload, "accounts")),
            groups=frozenset(_str_list(payload, "groups")),
            subscribe=_str_list(payload, "subscribe"),
            publish=_str_list(payload, "publish"),
            jti=jti,
            iat=iat,
        )


def issue(
    secret: bytes,
    *,
    sub: str,
    role: Role | str,
    now: float,
    ttl: float,
    accounts: Iterable[str] = (),
    groups: Iterable[str] = (),
    subscribe: Iterable[str] = (),
    publish: Iterable[str] = (),
    audience: str | None = DEFAULT_AUDIENCE,
    issuer: str | None = DEFAULT_ISSUER,
    algorithm: str = "HS256",
    jti: str | None = None,
) -> str:
    """Mint an HMAC-signed token (the embedded default's way of issuing credentials)."""
    payload: dict[str, Any] = {
        "sub": sub,
        "role": Role(role).value,
        "iat": int(now),
        "nbf": int(now),
        "exp": int(now + ttl),
        "jti": jti or uuid.uuid4().hex,
    }
    if audience:
        payload["aud"] = audience
    if issuer:
        payload["iss"] = issuer
    for name, values in (
        ("accounts", accounts),
        ("groups", groups),
        ("subscribe", subscribe),
        ("publish", publish),
    ):
        items = list(values)
        if items:
            payload[name] = items
    return jwt.encode(payload, secret, algorithm=algorithm)


def load_or_create_secret(path: Path) -> tuple[bytes, bool]:
    """Read the HMAC secret, creating a random one with mode 0600 on first use."""
    if path.exists():
        data = path.read_bytes().strip()
        if len(data) < 32:
            raise ValueError(f"{path} holds a secret shorter than 32 bytes")
        return data, False
    path.parent.mkdir(parents=True, exist_ok=True)
    data = secrets.token_hex(32).encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with open(fd, "wb") as fh:
        fh.write(data + b"\n")
    return data, True
