"""Who is calling: Sunbird/Keycloak JWTs, development tokens, and single-use WebSocket tickets.

Browsers cannot put a header on a WebSocket or EventSource, and a JWT in a URL ends up in proxy logs,
so sockets authenticate with a short-lived ticket that is worth nothing once used.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

import jwt
import orjson
from redis.asyncio import Redis

from hub import errors, keys
from hub.config import DEV_JWT_SECRET, Settings

SUPPORT_ROLE = "SUPPORT"
TICKET_TTL_SECONDS = 30


@dataclass(frozen=True)
class Principal:
    user_id: str
    roles: frozenset[str]
    expires: int  # the token's `exp`: a socket opened with it is closed then, as the token stops working

    @property
    def is_support(self) -> bool:
        return SUPPORT_ROLE in self.roles


def user_id_of(subject: str) -> str:
    """Keycloak federated subjects look like `f:<realm-id>:<userId>`; Sunbird's user id is the last part."""
    if subject.startswith("f:") and subject.count(":") >= 2:
        return subject.rsplit(":", 1)[1]
    return subject


class TokenVerifier:
    def __init__(self, settings: Settings) -> None:
        self._keys: list[tuple[object, list[str]]] = []
        if settings.jwt_public_key:
            self._keys.append((settings.jwt_public_key, ["RS256"]))
        if settings.jwt_jwks:
            for key in jwt.PyJWKSet.from_json(settings.jwt_jwks).keys:
                self._keys.append((key.key, ["RS256"]))
        if settings.jwt_secret:
            self._keys.append((settings.jwt_secret, ["HS256"]))

    def verify(self, token: str) -> Principal:
        claims = None
        expired = False
        for key, algorithms in self._keys:
            try:
                claims = jwt.decode(
                    token,
                    key,
                    algorithms=algorithms,
                    options={"require": ["sub", "exp"], "verify_aud": False},
                )
                break
            except jwt.ExpiredSignatureError:
                expired = True
            except jwt.PyJWTError:
                continue
        if claims is None:
            if expired:
                raise errors.TOKEN_EXPIRED()
            raise errors.UNTRUSTED_TOKEN()
        roles = claims.get("roles") or (claims.get("realm_access") or {}).get("roles") or []
        if not isinstance(roles, list):
            roles = []
        return Principal(
            user_id=user_id_of(str(claims["sub"])), roles=frozenset(str(r) for r in roles), expires=int(claims["exp"])
        )


def bearer(header: str | None) -> str:
    if not header or not header.startswith("Bearer ") or not header[7:].strip():
        raise errors.NO_BEARER()
    return header[7:].strip()


def mint_token(user_id: str, roles: list[str], ttl: int, secret: str | None) -> str:
    now = int(time.time())
    claims = {"sub": user_id, "roles": roles, "iat": now, "exp": now + ttl, "iss": "course-report-hub-dev"}
    return jwt.encode(claims, secret or DEV_JWT_SECRET, algorithm="HS256")


class Tickets:
    """Single use is enforced by GETDEL: two sockets racing with one ticket cannot both win."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def issue(self, principal: Principal) -> str:
        ticket = secrets.token_urlsafe(24)
        value = orjson.dumps({"u": principal.user_id, "r": sorted(principal.roles), "e": principal.expires})
        await self._redis.set(keys.ticket(ticket), value, ex=TICKET_TTL_SECONDS)
        return ticket

    async def redeem(self, ticket: str) -> Principal:
        raw = await self._redis.getdel(keys.ticket(ticket)) if ticket else None
        if raw is None:
            raise errors.INVALID_TICKET()
        data = orjson.loads(raw)
        return Principal(user_id=data["u"], roles=frozenset(data["r"]), expires=data["e"])
