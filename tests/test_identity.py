"""Tokens as real deployments send them: Keycloak's RS256 with a PEM key, a JWKS file or its JWKS URL
(keys that rotate), checked for issuer and audience; HS256 only where no Keycloak key is configured."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from hub.config import ConfigError, Settings, load
from hub.embedded import free_port
from hub.envelope import HubError
from hub.identity import TokenVerifier
from tests.helpers import SECRET, Call
from tests.keycloak import AUDIENCE, Realm, serving_realm


@pytest.fixture(scope="module")
def keys() -> tuple[rsa.RSAPrivateKey, rsa.RSAPrivateKey]:
    """Keycloak's signing key, and a key nobody trusts."""
    return rsa.generate_private_key(65537, 2048), rsa.generate_private_key(65537, 2048)


def pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def signed(key: rsa.RSAPrivateKey, **claims: object) -> str:
    return jwt.encode({"exp": int(time.time()) + 300, **claims}, key, algorithm="RS256", headers={"kid": "k1"})


async def test_an_rs256_token_verifies_with_a_pem_public_key(keys, tmp_path: Path) -> None:
    (tmp_path / "key.pem").write_bytes(pem(keys[0]))
    verifier = TokenVerifier(load({"JWT_PUBLIC_KEY": str(tmp_path / "key.pem")}))
    who = await verifier.verify(signed(keys[0], sub="f:realm-1:user-7", realm_access={"roles": ["SUPPORT"]}))
    assert who.user_id == "user-7"
    assert who.is_support


async def test_an_rs256_token_verifies_with_a_jwks_file(keys, tmp_path: Path) -> None:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(keys[0].public_key()))
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": [{**jwk, "kid": "k1", "use": "sig", "alg": "RS256"}]}))
    verifier = TokenVerifier(load({"JWT_JWKS": str(tmp_path / "jwks.json")}))
    assert (await verifier.verify(signed(keys[0], sub="user-8", roles=["COURSE_MENTOR"]))).user_id == "user-8"


async def test_a_token_signed_by_another_key_is_refused(keys, tmp_path: Path) -> None:
    (tmp_path / "key.pem").write_bytes(pem(keys[0]))
    verifier = TokenVerifier(load({"JWT_PUBLIC_KEY": str(tmp_path / "key.pem")}))
    with pytest.raises(HubError) as refused:
        await verifier.verify(signed(keys[1], sub="user-9"))
    assert refused.value.status == 401


async def test_an_hs256_token_is_refused_when_only_rs256_is_trusted(keys, tmp_path: Path) -> None:
    """The classic confusion attack: the public key used as an HMAC secret."""
    (tmp_path / "key.pem").write_bytes(pem(keys[0]))
    verifier = TokenVerifier(load({"JWT_PUBLIC_KEY": str(tmp_path / "key.pem")}))
    forged = jwt.encode({"sub": "user-1", "exp": int(time.time()) + 60}, "x" * 32, algorithm="HS256")
    with pytest.raises(HubError):
        await verifier.verify(forged)


async def test_a_token_without_exp_is_refused() -> None:
    verifier = TokenVerifier(load({"JWT_SECRET": "s" * 40}))
    with pytest.raises(HubError) as refused:
        await verifier.verify(jwt.encode({"sub": "user-1"}, "s" * 40, algorithm="HS256"))
    assert refused.value.status == 401


def test_a_key_file_that_cannot_be_read_is_a_setting_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="JWT_PUBLIC_KEY"):
        load({"JWT_PUBLIC_KEY": str(tmp_path / "missing.pem")})


@pytest.fixture
async def realm() -> AsyncIterator[Realm]:
    async with serving_realm() as running:
        yield running


def realm_settings(realm: Realm, **extra: str) -> Settings:
    return load({"JWT_JWKS_URL": realm.jwks_url, "JWT_ISSUER": realm.issuer, "JWT_AUDIENCE": AUDIENCE, **extra})


@pytest.fixture
async def verifier(realm: Realm) -> AsyncIterator[TokenVerifier]:
    started = TokenVerifier(realm_settings(realm), jwks_cooldown=0)
    await started.start()
    yield started
    await started.close()


async def test_a_keycloak_token_verifies_with_the_keys_of_the_jwks_url(realm: Realm, verifier: TokenVerifier) -> None:
    who = await verifier.verify(realm.token("f:realm-1:user-3", "SUPPORT"))
    assert (who.user_id, who.is_support) == ("user-3", True)


async def test_a_rotated_key_is_fetched_when_its_first_token_arrives(realm: Realm, verifier: TokenVerifier) -> None:
    await verifier.verify(realm.token("user-1"))
    realm.rotate()
    assert (await verifier.verify(realm.token("user-2"))).user_id == "user-2"
    assert realm.fetches == 2


async def test_unknown_key_ids_fetch_the_keys_at_most_once_per_cooldown(realm: Realm, keys) -> None:
    """Tokens with made-up key ids must not turn the hub into a flood against Keycloak."""
    verifier = TokenVerifier(realm_settings(realm))
    await verifier.start()
    try:
        for attempt in range(20):
            forged = jwt.encode({"sub": "x", "exp": int(time.time()) + 60}, keys[1], "RS256",
                                headers={"kid": f"made-up-{attempt}"})  # fmt: skip
            with pytest.raises(HubError):
                await verifier.verify(forged)
    finally:
        await verifier.close()
    assert realm.fetches == 1


@pytest.mark.parametrize(
    ("claims", "code"),
    [
        ({"iss": "https://other.example.org/auth/realms/sunbird"}, "UNAUTHORIZED"),
        ({"iss": None}, "UNAUTHORIZED"),
        ({"aud": "another-client"}, "UNAUTHORIZED"),
        ({"aud": None}, "UNAUTHORIZED"),
        ({"exp": int(time.time()) - 10}, "TOKEN_EXPIRED"),
    ],
    ids=["wrong-issuer", "no-issuer", "wrong-audience", "no-audience", "expired"],
)
async def test_a_token_for_another_realm_or_client_is_refused(
    realm: Realm, verifier: TokenVerifier, claims: dict[str, object], code: str
) -> None:
    token = realm.token("user-1", **claims)
    with pytest.raises(HubError) as refused:
        await verifier.verify(token)
    assert (refused.value.status, refused.value.code) == (401, code)


async def test_hs256_is_refused_beside_a_keycloak_key_even_with_a_secret_set(realm: Realm) -> None:
    """Whoever holds JWT_SECRET could otherwise mint a SUPPORT token for any user."""
    verifier = TokenVerifier(realm_settings(realm, JWT_SECRET=SECRET))
    forged = jwt.encode({"sub": "user-1", "exp": int(time.time()) + 60, "iss": realm.issuer, "aud": AUDIENCE,
                         "roles": ["SUPPORT"]}, SECRET, algorithm="HS256")  # fmt: skip
    with pytest.raises(HubError) as refused:
        await verifier.verify(forged)
    assert refused.value.status == 401


async def test_a_jwks_url_that_cannot_be_fetched_stops_the_start() -> None:
    verifier = TokenVerifier(load({"JWT_JWKS_URL": f"http://127.0.0.1:{free_port()}/certs"}))
    with pytest.raises(ConfigError, match="JWT_JWKS_URL"):
        await verifier.start()
    await verifier.close()


async def test_the_bearer_scheme_is_matched_whatever_its_case(call: Call, token: Callable[..., str]) -> None:
    status, _ = await call("GET", "/v1/mentor/batches", headers={"Authorization": f"bEARER {token()}"})
    assert status == 200
