"""Token verification: RFC 8725's rules, without a clock or sockets."""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from bridge.auth.exceptions import TokenExpired, TokenInvalid
from bridge.auth.revocation import Revocation, RevocationList
from bridge.auth.tokens import Verifier, issue
from bridge.protocol.channels import Role

SECRET = b"s" * 64
NOW = 1_700_000_000.0


def token(**overrides: object) -> str:
    payload = {"sub": "ea-1", "role": "ea", "exp": NOW + 60, "iat": NOW, "aud": "mtbridge", "iss": "mtbridge"}
    payload.update(overrides)
    return jwt.encode({k: v for k, v in payload.items() if v is not None}, SECRET, algorithm="HS256")


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TestHmac:
    v = Verifier(["HS256"], secret=SECRET)

    def test_verifier_accepts_a_good_token(self) -> None:
        claims = self.v.verify(token(accounts=["50123"], subscribe=["signals:*"]), NOW)
        assert claims.role is Role.EA and claims.accounts == frozenset({"50123"})
        assert claims.subscribe == ("signals:*",)

    def test_verifier_rejects_alg_none(self) -> None:
        header = b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
        body = b64(json.dumps({"sub": "x", "role": "admin", "exp": NOW + 60}).encode())
        with pytest.raises(TokenInvalid):
            self.v.verify(f"{header}.{body}.", NOW)

    def test_verifier_rejects_wrong_key(self) -> None:
        forged = jwt.encode(
            {"sub": "x", "role": "admin", "exp": NOW + 60, "aud": "mtbridge", "iss": "mtbridge"}, b"k" * 64
        )
        with pytest.raises(TokenInvalid):
            self.v.verify(forged, NOW)

    @pytest.mark.parametrize("field", ["aud", "iss"])
    def test_verifier_rejects_wrong_audience_or_issuer(self, field: str) -> None:
        with pytest.raises(TokenInvalid):
            self.v.verify(token(**{field: "someone-else"}), NOW)

    def test_verifier_rejects_expired_and_missing_exp(self) -> None:
        with pytest.raises(TokenExpired):
            self.v.verify(token(exp=NOW - 10), NOW)
        with pytest.raises(TokenInvalid):
            self.v.verify(token(exp=None), NOW)

    def test_verifier_applies_leeway_to_nbf_and_exp(self) -> None:
        self.v.verify(token(exp=NOW - 2), NOW)  # within 5 s leeway
        self.v.verify(token(nbf=NOW + 2), NOW)
        with pytest.raises(TokenInvalid):
            self.v.verify(token(nbf=NOW + 30), NOW)

    def test_verifier_rejects_bad_claims(self) -> None:
        for bad in ({"role": "root"}, {"sub": ""}, {"accounts": "50123"}, {"accounts": [1]}, {"exp": "soon"}):
            with pytest.raises(TokenInvalid):
                self.v.verify(token(**bad), NOW)
        with pytest.raises(TokenInvalid):
            self.v.verify("x" * 9000, NOW)
        with pytest.raises(TokenInvalid):
            self.v.verify(12, NOW)

    def test_issue_round_trips(self) -> None:
        t = issue(SECRET, sub="eng", role="engine", now=NOW, ttl=60, publish=["signals:*"], jti="j1")
        claims = self.v.verify(t, NOW)
        assert claims.jti == "j1" and claims.publish == ("signals:*",)

    def test_verifier_refuses_none_and_mixed_configurations(self) -> None:
        with pytest.raises(ValueError):
            Verifier(["none"], secret=SECRET)
        with pytest.raises(ValueError):
            Verifier(["HS256", "RS256"], secret=SECRET)


class TestAsymmetric:
    def setup_method(self) -> None:
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.rsa_pub = self.rsa.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.payload = {"sub": "ea", "role": "ea", "exp": NOW + 60, "aud": "mtbridge", "iss": "mtbridge"}

    def test_rs256_with_pem(self) -> None:
        v = Verifier.from_pem(["RS256"], self.rsa_pub)
        assert v.verify(jwt.encode(self.payload, self.rsa, algorithm="RS256"), NOW).sub == "ea"

    def test_hs256_signed_with_the_rs256_public_key_is_rejected(self) -> None:
        v = Verifier.from_pem(["RS256"], self.rsa_pub)
        header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        body = b64(json.dumps(self.payload).encode())
        import hashlib
        import hmac

        sig = b64(hmac.new(self.rsa_pub, f"{header}.{body}".encode(), hashlib.sha256).digest())
        with pytest.raises(TokenInvalid):
            v.verify(f"{header}.{body}.{sig}", NOW)

    def test_es256_with_jwks_and_kid(self) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
        jwk["kid"] = "k1"
        v = Verifier.from_jwks(["ES256"], {"keys": [jwk]})
        good = jwt.encode(self.payload, key, algorithm="ES256", headers={"kid": "k1"})
        assert v.verify(good, NOW).role is Role.EA
        with pytest.raises(TokenInvalid):
            v.verify(jwt.encode(self.payload, key, algorithm="ES256", headers={"kid": "other"}), NOW)


class TestRevocationList:
    def test_jti_and_subject_revocations(self) -> None:
        v = Verifier(["HS256"], secret=SECRET)
        revs = RevocationList()
        c1 = v.verify(token(jti="a"), NOW)
        revs.add(Revocation("jti", "a", NOW, NOW + 100))
        assert revs.is_revoked(c1, NOW)
        assert not revs.is_revoked(c1, NOW + 200)
        revs.add(Revocation("sub", "ea-1", NOW + 1, NOW + 100))
        old = v.verify(token(jti="b", iat=NOW), NOW)
        fresh = v.verify(token(jti="c", iat=NOW + 5), NOW + 5)
        assert revs.is_revoked(old, NOW + 2)
        assert not revs.is_revoked(fresh, NOW + 5)
        revs.prune(NOW + 1000)
        assert revs.entries() == []


def test_clock_is_not_read() -> None:
    v = Verifier(["HS256"], secret=SECRET)
    t = token(exp=time.time() - 3600)
    assert v.verify(t, time.time() - 3600 - 10).sub == "ea-1"
