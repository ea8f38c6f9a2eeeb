"""Tokens as real deployments send them: Keycloak's RS256 with a PEM key or a JWKS file."""

from __future__ import annotations

import json
import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from hub.config import ConfigError, load
from hub.envelope import HubError
from hub.identity import TokenVerifier


@pytest.fixture(scope="module")
def keys() -> tuple[rsa.RSAPrivateKey, rsa.RSAPrivateKey]:
    """Keycloak's signing key, and a key nobody trusts."""
    return rsa.generate_private_key(65537, 2048), rsa.generate_private_key(65537, 2048)


def pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def signed(key: rsa.RSAPrivateKey, **claims: object) -> str:
    return jwt.encode({"exp": int(time.time()) + 300, **claims}, key, algorithm="RS256", headers={"kid": "k1"})


def test_an_rs256_token_verifies_with_a_pem_public_key(keys, tmp_path: Path) -> None:
    (tmp_path / "key.pem").write_bytes(pem(keys[0]))
    verifier = TokenVerifier(load({"JWT_PUBLIC_KEY": str(tmp_path / "key.pem")}))
    who = verifier.verify(signed(keys[0], sub="f:realm-1:user-7", realm_access={"roles": ["SUPPORT"]}))
    assert who.user_id == "user-7"
    assert who.is_support


def test_an_rs256_token_verifies_with_a_jwks_file(keys, tmp_path: Path) -> None:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(keys[0].public_key()))
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": [{**jwk, "kid": "k1", "use": "sig", "alg": "RS256"}]}))
    verifier = TokenVerifier(load({"JWT_JWKS": str(tmp_path / "jwks.json")}))
    assert verifier.verify(signed(keys[0], sub="user-8", roles=["COURSE_MENTOR"])).user_id == "user-8"


def test_a_token_signed_by_another_key_is_refused(keys, tmp_path: Path) -> None:
    (tmp_path / "key.pem").write_bytes(pem(keys[0]))
    verifier = TokenVerifier(load({"JWT_PUBLIC_KEY": str(tmp_path / "key.pem")}))
    with pytest.raises(HubError) as refused:
        verifier.verify(signed(keys[1], sub="user-9"))
    assert refused.value.status == 401


def test_an_hs256_token_is_refused_when_only_rs256_is_trusted(keys, tmp_path: Path) -> None:
    """The classic confusion attack: the public key used as an HMAC secret."""
    (tmp_path / "key.pem").write_bytes(pem(keys[0]))
    verifier = TokenVerifier(load({"JWT_PUBLIC_KEY": str(tmp_path / "key.pem")}))
    forged = jwt.encode({"sub": "user-1", "exp": int(time.time()) + 60}, "x" * 32, algorithm="HS256")
    with pytest.raises(HubError):
        verifier.verify(forged)


def test_a_token_without_exp_is_refused() -> None:
    verifier = TokenVerifier(load({"JWT_SECRET": "s" * 40}))
    with pytest.raises(HubError) as refused:
        verifier.verify(jwt.encode({"sub": "user-1"}, "s" * 40, algorithm="HS256"))
    assert refused.value.status == 401


def test_a_key_file_that_cannot_be_read_is_a_setting_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="JWT_PUBLIC_KEY"):
        load({"JWT_PUBLIC_KEY": str(tmp_path / "missing.pem")})
