"""Sunbird's own user tokens: RS256 with a `kid` naming a file of the key folder the portal and OPA
mount (JWT_KEYS_DIR), roles as `{role, scope}` objects beside plain names and Keycloak's realm roles."""

from __future__ import annotations

import asyncio
import base64
import signal
import time
from pathlib import Path

import aiohttp
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from hub.config import ConfigError, load
from hub.envelope import HubError
from hub.identity import TokenVerifier
from tests.helpers import start_hub_process, stop_process, wait_until_ready

ISSUER = "https://diksha.example.org/auth/realms/sunbird"


@pytest.fixture(scope="module")
def keys() -> dict[str, rsa.RSAPrivateKey]:
    return {name: rsa.generate_private_key(65537, 2048) for name in ("accessv1_key1", "accessv1_key2", "stranger")}


def pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def sunbird_token(key: rsa.RSAPrivateKey, kid: str, ttl: int = 300, **claims: object) -> str:
    """A token as Sunbird's user service issues it."""
    body = {"iss": ISSUER, "sub": "f:5a8a3f2b:user-7", "exp": int(time.time()) + ttl, **claims}
    return jwt.encode(body, key, algorithm="RS256", headers={"kid": kid})


@pytest.fixture
def folder(tmp_path: Path, keys) -> Path:
    """The key folder as Kubernetes mounts a secret: files named by kid, hidden `..data` beside them."""
    path = tmp_path / "keys"
    path.mkdir()
    (path / "accessv1_key1").write_bytes(pem(keys["accessv1_key1"]))
    (path / "..data").mkdir()
    (path / ".hidden").write_text("not a key")
    return path


@pytest.fixture
def verifier(folder: Path) -> TokenVerifier:
    return TokenVerifier(load({"JWT_KEYS_DIR": str(folder), "JWT_ISSUER": ISSUER}))


async def refused(verifier: TokenVerifier, token: str) -> HubError:
    with pytest.raises(HubError) as error:
        await verifier.verify(token)
    return error.value


async def test_a_token_verifies_with_the_key_its_kid_names(verifier, keys) -> None:
    who = await verifier.verify(sunbird_token(keys["accessv1_key1"], "accessv1_key1"))
    assert who.user_id == "user-7"


async def test_a_kid_not_in_the_folder_is_refused(verifier, keys) -> None:
    error = await refused(verifier, sunbird_token(keys["accessv1_key2"], "accessv1_key2"))
    assert (error.status, error.code) == (401, "UNAUTHORIZED")


async def test_a_token_signed_by_another_key_under_a_known_kid_is_refused(verifier, keys) -> None:
    assert (await refused(verifier, sunbird_token(keys["stranger"], "accessv1_key1"))).status == 401


async def test_an_expired_sunbird_token_is_refused(verifier, keys) -> None:
    error = await refused(verifier, sunbird_token(keys["accessv1_key1"], "accessv1_key1", ttl=-60))
    assert error.code == "TOKEN_EXPIRED"


async def test_a_key_file_holding_only_the_base64_body_is_read(folder: Path, keys) -> None:
    der = (
        keys["accessv1_key2"]
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    (folder / "accessv1_key2").write_text(base64.b64encode(der).decode())
    verifier = TokenVerifier(load({"JWT_KEYS_DIR": str(folder)}))
    assert (await verifier.verify(sunbird_token(keys["accessv1_key2"], "accessv1_key2"))).user_id == "user-7"


def test_a_folder_without_keys_stops_the_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="JWT_KEYS_DIR"):
        load({"JWT_KEYS_DIR": str(tmp_path)})


def test_a_file_that_is_not_a_key_stops_the_start_naming_it(folder: Path) -> None:
    (folder / "accessv1_key9").write_text("-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----")
    with pytest.raises(ConfigError, match="accessv1_key9"):
        load({"JWT_KEYS_DIR": str(folder)})


@pytest.mark.parametrize(
    ("claims", "support"),
    [
        ({"roles": [{"role": "SUPPORT", "scope": []}, {"role": "PUBLIC", "scope": []}]}, True),
        ({"roles": ["SUPPORT"]}, True),
        ({"realm_access": {"roles": ["SUPPORT", "offline_access"]}}, True),
        ({"roles": [{"role": "PUBLIC", "scope": []}], "realm_access": {"roles": ["SUPPORT"]}}, True),
        ({"roles": [{"role": "SUPPORT", "scope": [{"organisationId": "org-1"}]}]}, False),
        ({"roles": [{"role": "COURSE_MENTOR", "scope": []}]}, False),
        ({}, False),
    ],
)
async def test_roles_are_read_from_names_role_objects_and_realm_roles(verifier, keys, claims, support) -> None:
    who = await verifier.verify(sunbird_token(keys["accessv1_key1"], "accessv1_key1", **claims))
    assert who.is_support is support


@pytest.mark.parametrize(
    "claims",
    [
        {"roles": "SUPPORT"},
        {"roles": [42]},
        {"roles": [{"scope": []}]},
        {"roles": {"role": "SUPPORT"}},
        {"realm_access": {"roles": "SUPPORT"}},
        {"realm_access": ["SUPPORT"]},
    ],
)
async def test_roles_of_the_wrong_type_are_a_clear_401(verifier, keys, claims) -> None:
    error = await refused(verifier, sunbird_token(keys["accessv1_key1"], "accessv1_key1", **claims))
    assert error.status == 401
    assert "roles" in error.errmsg


async def test_a_key_added_to_the_folder_is_trusted_after_sighup(
    env, batch, folder: Path, keys, tmp_path: Path
) -> None:
    server_env = {**env, "JWT_SECRET": "", "JWT_KEYS_DIR": str(folder), "LOG_FORMAT": "text"}
    base = f"http://127.0.0.1:{env['PORT']}"
    process = await start_hub_process("serve", env=server_env, log=tmp_path / "hub.log")
    token = sunbird_token(keys["accessv1_key2"], "accessv1_key2")
    try:
        await wait_until_ready(base)
        async with aiohttp.ClientSession(headers={"x-authenticated-user-token": token}) as session:
            async with session.get(f"{base}/v1/notifications") as response:
                assert response.status == 401
            (folder / "accessv1_key2").write_bytes(pem(keys["accessv1_key2"]))
            process.send_signal(signal.SIGHUP)
            async with asyncio.timeout(10):
                while True:  # the hub reads the folder when the signal reaches it
                    async with session.get(f"{base}/v1/notifications") as response:
                        if response.status == 200:
                            break
                    await asyncio.sleep(0.05)
    finally:
        await stop_process(process)
