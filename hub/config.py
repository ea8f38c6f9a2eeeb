"""Every setting of the hub and its workers, read once from the environment at start.

A wrong setting stops the process with one line naming it (`ConfigError`), so an operator never has to
read a traceback to learn that `PORT=80a` was the problem.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlparse

import jwt
from cryptography.hazmat.primitives import serialization

DEV_JWT_SECRET = "dev-only-secret-never-use-this-in-production"
# The object stores' own variables (credentials, endpoint, region...), handed to obstore by hub.storage.
CLOUD_PREFIXES = ("AWS_", "AZURE_", "GOOGLE_")


class ConfigError(Exception):
    """A setting is missing or malformed; the message names it."""


@dataclass(frozen=True)
class Settings:
    redis_url: str | None
    source_url: str
    storage_url: str
    jwt_secret: str | None
    jwt_public_key: str | None
    jwt_jwks: str | None
    host: str
    port: int
    public_url: str
    link_ttl: int
    link_secret: str
    allowed_origins: tuple[str, ...]
    event_retention: int
    report_timeout: int
    max_tries: int
    rate_limit: int
    report_parts: int
    small_batch: int
    source_timeout: int
    telemetry_path: str
    telemetry_url: str | None
    storage_env: Mapping[str, str] = field(default_factory=dict, repr=False, hash=False)

    def with_(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 1) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return value


def _url(env: Mapping[str, str], name: str, default: str, schemes: tuple[str, ...]) -> str:
    value = env.get(name, "").strip() or default
    scheme = urlparse(value).scheme
    if scheme not in schemes:
        raise ConfigError(f"{name} must start with one of {', '.join(s + '://' for s in schemes)}, got {value!r}")
    return value


def _readable_file(env: Mapping[str, str], name: str) -> str | None:
    path = env.get(name, "").strip()
    if not path:
        return None
    try:
        return Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"{name} names a file that cannot be read: {path} ({exc.strerror})") from None


def _check_keys(public_key: str | None, jwks: str | None) -> None:
    """A key that does not parse would start a server that refuses every token; say so at start instead."""
    try:
        if public_key:
            serialization.load_pem_public_key(public_key.encode())
    except ValueError as exc:
        raise ConfigError(f"JWT_PUBLIC_KEY is not a PEM public key: {exc}") from None
    try:
        if jwks:
            jwt.PyJWKSet.from_json(jwks)
    except (jwt.PyJWTError, ValueError) as exc:
        raise ConfigError(f"JWT_JWKS is not a JWKS with a usable key: {exc}") from None


def load(env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    redis_url = env.get("REDIS_URL", "").strip() or None
    if redis_url:
        _url(env, "REDIS_URL", redis_url, ("redis", "rediss", "unix"))
    port = _int(env, "PORT", 8080, minimum=0)
    if port > 65535:
        raise ConfigError(f"PORT must be at most 65535, got {port}")
    host = env.get("HOST", "").strip() or "127.0.0.1"
    jwt_secret = env.get("JWT_SECRET", "").strip() or None
    public_key = _readable_file(env, "JWT_PUBLIC_KEY")
    jwks = _readable_file(env, "JWT_JWKS")
    _check_keys(public_key, jwks)
    link_secret = env.get("LINK_SECRET", "").strip() or jwt_secret or ""
    origins = tuple(o.strip().rstrip("/") for o in env.get("ALLOWED_ORIGINS", "").split(",") if o.strip())
    telemetry_url = env.get("TELEMETRY_URL", "").strip() or None
    if telemetry_url:
        _url(env, "TELEMETRY_URL", telemetry_url, ("http", "https"))
    return Settings(
        redis_url=redis_url,
        source_url=_url(env, "SOURCE_URL", "sqlite:///./var/hub.db", ("sqlite", "postgresql", "postgres")),
        storage_url=_url(env, "STORAGE_URL", "file://./var/reports", ("file", "s3", "az", "gs")),
        jwt_secret=jwt_secret,
        jwt_public_key=public_key,
        jwt_jwks=jwks,
        host=host,
        port=port,
        public_url=(env.get("PUBLIC_URL", "").strip() or f"http://{host}:{port}").rstrip("/"),
        link_ttl=_int(env, "LINK_TTL", 1800),
        link_secret=link_secret,
        allowed_origins=origins,
        event_retention=_int(env, "EVENT_RETENTION", 1000),
        report_timeout=_int(env, "REPORT_TIMEOUT", 300),
        max_tries=_int(env, "REPORT_MAX_TRIES", 3),
        rate_limit=_int(env, "RATE_LIMIT", 120),
        # Each part writer is a process of ~50 MB: more cores than four buy little for one report.
        report_parts=_int(env, "REPORT_PARTS", min(os.cpu_count() or 1, 4)),
        # The seed's promise for a batch under 10,000 participants: ready in 10 s whatever else runs.
        small_batch=_int(env, "SMALL_BATCH", 10_000, minimum=0),
        source_timeout=_int(env, "SOURCE_TIMEOUT", 30),
        telemetry_path=env.get("TELEMETRY_PATH", "").strip() or "./var/telemetry.jsonl",
        telemetry_url=telemetry_url,
        storage_env={name: value for name, value in env.items() if name.startswith(CLOUD_PREFIXES)},
    )


def require_redis(settings: Settings) -> str:
    if not settings.redis_url:
        raise ConfigError("REDIS_URL must be set (only `hub dev` starts an embedded Valkey)")
    return settings.redis_url


def require_verifier(settings: Settings) -> None:
    """The server must be able to check tokens and sign links; the worker only signs links."""
    if not (settings.jwt_secret or settings.jwt_public_key or settings.jwt_jwks):
        raise ConfigError("JWT_SECRET, JWT_PUBLIC_KEY or JWT_JWKS must be set to verify tokens")
    require_link_secret(settings)


def require_link_secret(settings: Settings) -> None:
    if not settings.link_secret:
        raise ConfigError("LINK_SECRET (or JWT_SECRET) must be set to sign download links")
