"""A stand-in for a Keycloak realm as DIKSHA runs it: its JWKS endpoint on a real loopback port, signing
keys that rotate, and access tokens signed with the current key (RS256, `kid`, `iss`, `aud`)."""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator

import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa

from hub.embedded import free_port

AUDIENCE = "course-report-hub"
REALM_PATH = "/auth/realms/sunbird"


class Realm:
    def __init__(self, port: int) -> None:
        self.port = port
        self.issuer = f"http://127.0.0.1:{port}{REALM_PATH}"
        self.jwks_url = f"{self.issuer}/protocol/openid-connect/certs"
        self.fetches = 0
        self._keys: dict[str, rsa.RSAPrivateKey] = {}
        self._encryption_key = rsa.generate_private_key(65537, 2048).public_key()
        self.rotate()

    def rotate(self) -> str:
        """A new signing key replaces the old one, as a Keycloak key rotation does; returns its key id."""
        kid = uuid.uuid4().hex
        self._keys = {kid: rsa.generate_private_key(65537, 2048)}
        return kid

    @property
    def kid(self) -> str:
        return next(iter(self._keys))

    def token(self, sub: str, *roles: str, ttl: int = 300, **claims: object) -> str:
        """A claim given as None is left out of the token."""
        now = int(time.time())
        body = {"sub": sub, "iss": self.issuer, "aud": [AUDIENCE, "account"], "iat": now, "exp": now + ttl,
                "realm_access": {"roles": list(roles) or ["COURSE_MENTOR"]}, **claims}  # fmt: skip
        body = {name: value for name, value in body.items() if value is not None}
        return jwt.encode(body, self._keys[self.kid], algorithm="RS256", headers={"kid": self.kid})

    def _jwks(self) -> dict[str, object]:
        keys = []
        for kid, key in self._keys.items():
            jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
            keys.append({**jwk, "kid": kid, "use": "sig", "alg": "RS256"})
        # Keycloak also lists its encryption key; it must never be taken for a signing key.
        encryption = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self._encryption_key))
        return {"keys": [*keys, {**encryption, "kid": "enc-key", "use": "enc", "alg": "RSA-OAEP"}]}

    async def _certs(self, request: web.Request) -> web.Response:
        self.fetches += 1
        return web.json_response(self._jwks())


@contextlib.asynccontextmanager
async def serving_realm() -> AsyncIterator[Realm]:
    realm = Realm(free_port())
    app = web.Application()
    app.router.add_get(f"{REALM_PATH}/protocol/openid-connect/certs", realm._certs)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", realm.port).start()
    try:
        yield realm
    finally:
        await runner.cleanup()
