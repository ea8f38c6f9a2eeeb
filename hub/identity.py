"""Who is calling: Sunbird/Keycloak JWTs, development tokens, and single-use WebSocket tickets.

Browsers cannot put a header on a WebSocket or EventSource, and a JWT in a URL ends up in proxy logs,
so sockets authenticate with a short-lived ticket that is worth nothing once used.
"""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
import jwt
import orjson
from redis.asyncio import Redis

from hub import errors, keys
from hub.config import DEV_JWT_SECRET, ConfigError, Settings, signs_with_public_keys
from hub.keyfolder import KeyFolder

log = logging.getLogger(__name__)
SUPPORT_ROLE = "SUPPORT"
TICKET_TTL_SECONDS = 30
LANGUAGE_KEPT_SECONDS = 90 * 24 * 3600
JWKS_COOLDOWN_SECONDS = 10.0
JWKS_TIMEOUT_SECONDS = 5.0


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


def roles_of(claims: dict[str, Any]) -> frozenset[str]:
    """The roles a token grants everywhere, from Sunbird's `roles` (names, or `{"role", "scope"}` objects as
    sunbird-devops' OPA rules read them) and Keycloak's `realm_access.roles`. A role scoped to organisations
    grants only in them, and a batch in the source names no organisation: so a scoped role counts for
    nothing here (mentors and creators are let in by the batch's own lists, whatever their roles)."""
    realm = claims.get("realm_access")
    if realm is not None and not isinstance(realm, dict):
        raise errors.ROLES_MALFORMED()
    listed = [claims.get("roles"), (realm or {}).get("roles")]
    if any(entries is not None and not isinstance(entries, list) for entries in listed):
        raise errors.ROLES_MALFORMED()
    roles = set()
    for entry in (entry for entries in listed for entry in entries or ()):
        if isinstance(entry, str):
            roles.add(entry)
        elif isinstance(entry, dict) and isinstance(entry.get("role"), str):
            if not entry.get("scope"):
                roles.add(entry["role"])
        else:
            raise errors.ROLES_MALFORMED()
    return frozenset(roles)


class IdentityKeysError(Exception):
    """The JWKS endpoint did not answer with a usable key set."""


class RemoteKeys:
    """Keycloak's signing keys from its JWKS endpoint, by key id. Keycloak rotates its key: a token naming
    a key id not held yet makes one fetch, at most one per `cooldown` seconds, so tokens with made-up key
    ids cannot turn the hub into a flood against Keycloak."""

    def __init__(self, url: str, cooldown: float = JWKS_COOLDOWN_SECONDS) -> None:
        self._url = url
        self._cooldown = cooldown
        self._keys: dict[str | None, Any] = {}
        self._fetched_at = -math.inf
        self._lock = asyncio.Lock()
        self._session: aiohttp.ClientSession | None = None

    async def fetch(self) -> None:
        """Raises IdentityKeysError with one line saying why the keys could not be had."""
        self._fetched_at = time.monotonic()
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=JWKS_TIMEOUT_SECONDS))
        try:
            async with self._session.get(self._url) as response:
                response.raise_for_status()
                keyset = jwt.PyJWKSet.from_json(await response.text())
        except (aiohttp.ClientError, TimeoutError, jwt.PyJWTError, ValueError) as exc:
            raise IdentityKeysError(f"{type(exc).__name__}: {exc}") from None
        self._keys = {key.key_id: key.key for key in keyset.keys if key.public_key_use in (None, "sig")}

    async def candidates(self, kid: str | None) -> list[Any]:
        if kid is None:
            return list(self._keys.values())
        if kid not in self._keys:
            async with self._lock:
                if kid not in self._keys and time.monotonic() - self._fetched_at >= self._cooldown:
                    try:
                        await self.fetch()
                    except IdentityKeysError as exc:
                        log.warning("JWT_JWKS_URL could not be fetched: %s", exc)
                        if not self._keys:
                            raise errors.IDENTITY_UNAVAILABLE() from None
        return [self._keys[kid]] if kid in self._keys else []

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


class TokenVerifier:
    """Either Keycloak's public keys (RS256) or, for development only, one HS256 secret: never both, so
    a leaked development secret cannot sign a token a Keycloak deployment accepts."""

    def __init__(self, settings: Settings, jwks_cooldown: float = JWKS_COOLDOWN_SECONDS) -> None:
        self._static: list[tuple[str | None, Any]] = []
        self._folder = KeyFolder(settings.jwt_keys_dir) if settings.jwt_keys_dir else None
        if settings.jwt_public_key:
            self._static.append((None, settings.jwt_public_key))
        if settings.jwt_jwks:
            self._static += [(key.key_id, key.key) for key in jwt.PyJWKSet.from_json(settings.jwt_jwks).keys]
        self._remote = RemoteKeys(settings.jwt_jwks_url, jwks_cooldown) if settings.jwt_jwks_url else None
        self._secret = None if signs_with_public_keys(settings) else settings.jwt_secret
        self._algorithm = "HS256" if self._secret else "RS256"
        self._issuer = settings.jwt_issuer
        self._audience = settings.jwt_audience

    async def start(self) -> None:
        """A JWKS endpoint that cannot be read at start would refuse every token; say so at start."""
        if self._remote is not None:
            try:
                await self._remote.fetch()
            except IdentityKeysError as exc:
                await self._remote.close()  # the process stops: its session must not be left to the collector
                raise ConfigError(f"JWT_JWKS_URL cannot be fetched: {exc}") from None

    async def close(self) -> None:
        if self._remote is not None:
            await self._remote.close()

    def reload(self) -> None:
        """SIGHUP: JWT_KEYS_DIR read again, for a key Sunbird added."""
        if self._folder is not None:
            self._folder.reload()

    async def _keys_for(self, token: str) -> list[Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise errors.UNTRUSTED_TOKEN() from None
        if header.get("alg") != self._algorithm:
            raise errors.UNTRUSTED_TOKEN()
        if self._secret:
            return [self._secret]
        kid = header.get("kid") if isinstance(header.get("kid"), str) else None
        held = self._static + list(self._folder.keys.items() if self._folder else ())
        keys = [key for key_id, key in held if kid is None or key_id in (None, kid)]
        if self._remote is not None:
            keys += await self._remote.candidates(kid)
        return keys

    async def verify(self, token: str) -> Principal:
        claims = None
        expired = False
        for key in await self._keys_for(token):
            try:
                claims = jwt.decode(
                    token,
                    key,
                    algorithms=[self._algorithm],
                    issuer=self._issuer,
                    audience=self._audience,
                    options={"require": ["sub", "exp"], "verify_aud": self._audience is not None},
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
        return Principal(user_id=user_id_of(str(claims["sub"])), roles=roles_of(claims), expires=int(claims["exp"]))


def bearer(header: str | None) -> str:
    """RFC 9110 makes the scheme name case-insensitive: `bearer` and `BEARER` are the same."""
    scheme, _, token = (header or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise errors.NO_BEARER()
    return token.strip()


def mint_token(user_id: str, roles: list[str], ttl: int, secret: str | None) -> str:
    now = int(time.time())
    claims = {"sub": user_id, "roles": roles, "iat": now, "exp": now + ttl, "iss": "course-report-hub-dev"}
    return jwt.encode(claims, secret or DEV_JWT_SECRET, algorithm="HS256")


class Tickets:
    """Single use is enforced by GETDEL: two sockets racing with one ticket cannot both win."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def issue(self, principal: Principal, lang: str) -> str:
        """`lang`: the language the socket opened with this ticket speaks, unless it asks for another; kept
        as the user's, for what reaches them with no socket (feed notifications)."""
        ticket = secrets.token_urlsafe(24)
        value = orjson.dumps({"u": principal.user_id, "r": sorted(principal.roles), "e": principal.expires, "l": lang})
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.set(keys.ticket(ticket), value, ex=TICKET_TTL_SECONDS)
            pipe.set(keys.user_language(principal.user_id), lang, ex=LANGUAGE_KEPT_SECONDS)
            await pipe.execute()
        return ticket

    async def redeem(self, ticket: str) -> tuple[Principal, str]:
        """The ticket's user and language."""
        raw = await self._redis.getdel(keys.ticket(ticket)) if ticket else None
        if raw is None:
            raise errors.INVALID_TICKET()
        data = orjson.loads(raw)
        return Principal(user_id=data["u"], roles=frozenset(data["r"]), expires=data["e"]), data["l"]
