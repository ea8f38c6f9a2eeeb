"""Every setting of the hub and its workers, read once from the environment at start.

A wrong setting stops the process with one line naming it (`ConfigError`), so an operator never has to
read a traceback to learn that `PORT=80a` was the problem.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlparse
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jwt
from cryptography.hazmat.primitives import serialization

from hub import sentinel
from hub.keyfolder import KeyFolderError, read_key_folder
from hub.logs import FORMATS
from hub.redact import redact

T = TypeVar("T")
ALL_INTERFACES = "0.0.0.0"
DEV_JWT_SECRET = "dev-only-secret-never-use-this-in-production"
# HMAC keys shorter than the hash (SHA-256: 32 bytes) are weaker than the hash itself (RFC 7518 3.2).
MIN_SECRET_LENGTH = 32
# The object stores' own variables (credentials, endpoint, region...), handed to obstore by hub.storage.
CLOUD_PREFIXES = ("AWS_", "AZURE_", "GOOGLE_")


class ConfigError(Exception):
    """A setting is missing or malformed; the message names it."""


# What start-up says when a service a setting names does not answer (the detail follows).
REDIS_UNREACHABLE = "REDIS_URL cannot be reached: {}"
REDIS_TOO_OLD = "REDIS_URL names Redis {}; the hub needs Redis 7.0 or newer (or Valkey)"
SOURCE_UNREADABLE = "SOURCE_URL cannot be read: {}"
STORAGE_UNUSABLE = "STORAGE_URL cannot be used: {}"
# Sunbird's on-demand reports are open to these roles; REPORT_ROLES replaces the list.
REPORT_ROLES = frozenset({"ORG_ADMIN", "REPORT_ADMIN", "COURSE_ADMIN"})
# A job's records (its hash and timeline, the user's event log) outlive its report file by this much, so
# whoever comes back just after the file was deleted is told the report expired, not that it never was.
RECORD_GRACE_SECONDS = 3600
# REDIS_WAIT_TIMEOUT's bound: below the hub's read timeout (hub.connections), so a WAIT never looks like a dead link.
MAX_WAIT_MS = 4000
AUDIT_RETENTION_DEFAULT = 365 * 24 * 3600  # a year: audits look back further than reports are kept
# REPORT_ZIP_ENCRYPTION's values and libarchive's names for them.
ZIP_CIPHERS = {"zipcrypto": "zipcrypt", "aes256": "aes256"}


@dataclass(frozen=True)
class Settings:
    redis_url: str | None
    source_url: str
    storage_url: str
    jwt_secret: str | None
    jwt_public_key: str | None
    jwt_jwks: str | None
    # Keycloak's JWKS endpoint (`.../realms/<realm>/protocol/openid-connect/certs`), fetched and cached.
    jwt_jwks_url: str | None
    jwt_issuer: str | None
    jwt_audience: str | None
    host: str
    port: int
    public_url: str
    link_ttl: int
    link_secret: str | None
    allowed_origins: tuple[str, ...]
    event_retention: int
    # Seconds a report file is kept after it was made: files hold teachers' and children's personal data.
    report_retention: int
    report_timeout: int
    max_tries: int
    rate_limit: int
    read_rate_limit: int
    dashboard_rate_limit: int
    # Sockets and streams one user may hold open at once, on all hub instances together.
    max_connections: int
    # Seconds the slot of a connection whose hub died stays taken.
    connection_lease: int
    report_parts: int
    small_batch: int
    source_timeout: int
    telemetry_path: str
    telemetry_rotate_bytes: int
    telemetry_max_bytes: int
    telemetry_url: str | None
    # Seconds a socket or stream may take to accept a frame before its client is dropped (it resumes later).
    send_timeout_seconds: int
    # A job no worker has started by then ends `report.failed` (NO_WORKER) instead of waiting for its deadline.
    queue_wait_seconds: int
    # How often each hub looks for jobs that can no longer finish.
    sweep_interval_seconds: float
    # On SIGTERM, how long requests in flight may take to finish before `hub serve` exits.
    drain_grace_seconds: float
    # `json` or `text`; unset, each command picks (json for serve and worker, text for the rest).
    log_format: str | None
    # The day a report is named by and shows, for instants (timestamps) in the source.
    report_zone: ZoneInfo
    storage_env: Mapping[str, str] = field(default_factory=dict, repr=False, hash=False)
    # Roles that may ask for any batch's report over the data-exhaust API, beside its mentors and creator.
    report_roles: frozenset[str] = REPORT_ROLES
    zip_encryption: str = "zipcrypt"  # libarchive's name of the cipher of password-protected reports
    notification_url: str | None = None  # Sunbird's notification service; None sends no feed items
    redis_sentinel_password: str | None = field(default=None, repr=False)  # the sentinels' own password
    # Replicas that must hold a submit and a job's end before they count as done, and how long (ms) to wait.
    redis_wait_replicas: int = 0
    redis_wait_timeout_ms: int = 500
    # Seconds between the frames a quiet socket or stream still gets, which a client can see (its liveness).
    heartbeat_seconds: float = 20.0
    metrics_port: int | None = None  # Prometheus metrics on a port of their own; None: on the public `/metrics`
    # Seconds the record of what support staff did is kept.
    audit_retention: int = AUDIT_RETENTION_DEFAULT
    # Sunbird's folder of PEM public keys, each file named by its `kid` (hub.keyfolder).
    jwt_keys_dir: str | None = None
    # The portal's base URL: feed notifications open the batch's dashboard there.
    portal_url: str | None = None

    @property
    def records_kept_seconds(self) -> int:
        """How long a job's records live after their last change (Redis expiries)."""
        return self.report_retention + RECORD_GRACE_SECONDS

    def with_(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]


def _parsed(env: Mapping[str, str], name: str, parse: Callable[[str], T], what: str) -> T | None:
    """The setting read by `parse`, or None when it is unset; `what` says what it must be when it does not
    parse."""
    raw = env.get(name, "").strip()
    if not raw:
        return None
    try:
        return parse(raw)
    except ValueError:
        raise ConfigError(f"{name} must be {what}, got {raw!r}") from None


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 1) -> int:
    value = _parsed(env, name, int, "a whole number")
    if value is None:
        return default
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return value


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str | None:
    value = env.get(name, "").strip().lower()
    if value and value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value or None


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    value = _parsed(env, name, float, "a number of seconds")
    if value is None:
        return default
    if not 0 < value < float("inf"):
        raise ConfigError(f"{name} must be more than 0 seconds, got {value}")
    return value


def _url(env: Mapping[str, str], name: str, default: str, schemes: tuple[str, ...]) -> str:
    value = env.get(name, "").strip() or default
    scheme = urlparse(value).scheme
    if scheme not in schemes:
        raise ConfigError(
            f"{name} must start with one of {', '.join(s + '://' for s in schemes)}, got {redact(value)!r}"
        )
    return value


def _origins(raw: str) -> tuple[str, ...]:
    """Origins as browsers send them (`https://portal.example.org`, no path), or `*`."""
    origins = tuple(origin.strip().rstrip("/") for origin in raw.split(",") if origin.strip())
    for origin in origins:
        parsed = urlparse(origin)
        if origin != "*" and (parsed.scheme not in ("http", "https") or not parsed.hostname or parsed.path):
            raise ConfigError(f"ALLOWED_ORIGINS entries must look like https://portal.example.org (or be *), "
                              f"got {origin!r}")  # fmt: skip
    return origins


def _zone(env: Mapping[str, str], name: str, default: str) -> ZoneInfo:
    value = env.get(name, "").strip() or default
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{name} must be an IANA time zone such as {default}, got {value!r}") from None


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


def local_root(storage_url: str) -> Path:
    """The directory of a `file://` STORAGE_URL."""
    parsed = urlparse(storage_url)
    return Path(parsed.netloc + parsed.path).expanduser().resolve()


def _apart_from_reports(storage_url: str, telemetry_path: str) -> None:
    """Telemetry in the report directory would share its files' fate: listed, served, or crowding them."""
    if storage_url.startswith("file:") and Path(telemetry_path).expanduser().resolve().is_relative_to(
        local_root(storage_url)
    ):
        raise ConfigError("TELEMETRY_PATH must be outside the report directory of STORAGE_URL")


def load(env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    redis_url = env.get("REDIS_URL", "").strip() or None
    if redis_url:
        _redis_url(env, redis_url)
    port = _int(env, "PORT", 8080, minimum=0)
    if port > 65535:
        raise ConfigError(f"PORT must be at most 65535, got {port}")
    # Every interface by default, so the Procfile's `web` is reachable on a platform; `hub dev` uses loopback.
    host = env.get("HOST", "").strip() or ALL_INTERFACES
    jwt_secret = env.get("JWT_SECRET", "").strip() or None
    public_key = _readable_file(env, "JWT_PUBLIC_KEY")
    jwks = _readable_file(env, "JWT_JWKS")
    _check_keys(public_key, jwks)
    jwks_url = env.get("JWT_JWKS_URL", "").strip() or None
    if jwks_url:
        _url(env, "JWT_JWKS_URL", jwks_url, ("http", "https"))
    origins = _origins(env.get("ALLOWED_ORIGINS", ""))
    public_url = env.get("PUBLIC_URL", "").strip()
    if public_url:
        _url(env, "PUBLIC_URL", public_url, ("http", "https"))
        if not urlparse(public_url).hostname:
            raise ConfigError(f"PUBLIC_URL must name a host, like https://hub.example.org, got {public_url!r}")
    else:
        public_url = f"http://{'127.0.0.1' if host == ALL_INTERFACES else host}:{port}"
    telemetry_url = env.get("TELEMETRY_URL", "").strip() or None
    storage_url = _url(env, "STORAGE_URL", "file://./var/reports", ("file", "s3", "az", "gs"))
    telemetry_path = env.get("TELEMETRY_PATH", "").strip() or "./var/telemetry/telemetry.jsonl"
    _apart_from_reports(storage_url, telemetry_path)
    if telemetry_url:
        _url(env, "TELEMETRY_URL", telemetry_url, ("http", "https"))
    return Settings(
        redis_url=redis_url,
        source_url=_url(env, "SOURCE_URL", "sqlite:///./var/hub.db", ("sqlite", "postgresql", "postgres")),
        storage_url=storage_url,
        jwt_secret=jwt_secret,
        jwt_public_key=public_key,
        jwt_jwks=jwks,
        jwt_jwks_url=jwks_url,
        jwt_issuer=env.get("JWT_ISSUER", "").strip() or None,
        jwt_audience=env.get("JWT_AUDIENCE", "").strip() or None,
        host=host,
        port=port,
        public_url=public_url.rstrip("/"),
        link_ttl=_int(env, "LINK_TTL", 1800),
        link_secret=env.get("LINK_SECRET", "").strip() or None,
        allowed_origins=origins,
        event_retention=_int(env, "EVENT_RETENTION", 1000),
        report_retention=_int(env, "REPORT_RETENTION", 7 * 24 * 3600),
        audit_retention=_int(env, "AUDIT_RETENTION", AUDIT_RETENTION_DEFAULT),
        report_timeout=_int(env, "REPORT_TIMEOUT", 300),
        max_tries=_int(env, "REPORT_MAX_TRIES", 3),
        rate_limit=_int(env, "RATE_LIMIT", 120),
        read_rate_limit=_int(env, "READ_RATE_LIMIT", 600),
        dashboard_rate_limit=_int(env, "DASHBOARD_RATE_LIMIT", 60),
        max_connections=_int(env, "MAX_CONNECTIONS", 20),
        connection_lease=_int(env, "CONNECTION_LEASE", 60, minimum=3),
        # Each part writer is a process of ~50 MB: more cores than four buy little for one report.
        report_parts=_int(env, "REPORT_PARTS", min(os.cpu_count() or 1, 4)),
        telemetry_path=telemetry_path,
        telemetry_rotate_bytes=_int(env, "TELEMETRY_ROTATE_BYTES", 16 * 1024 * 1024, minimum=1024),
        telemetry_max_bytes=_int(env, "TELEMETRY_MAX_BYTES", 512 * 1024 * 1024, minimum=1024),
        # The seed's promise for a batch under 10,000 participants: ready in 10 s whatever else runs.
        small_batch=_int(env, "SMALL_BATCH", 10_000, minimum=0),
        source_timeout=_int(env, "SOURCE_TIMEOUT", 30),
        telemetry_url=telemetry_url,
        send_timeout_seconds=_int(env, "SEND_TIMEOUT", 10),
        queue_wait_seconds=_int(env, "QUEUE_WAIT", 120),
        sweep_interval_seconds=_seconds(env, "SWEEP_INTERVAL", 5.0),
        drain_grace_seconds=_seconds(env, "DRAIN_GRACE", 10.0),
        heartbeat_seconds=_seconds(env, "HEARTBEAT_INTERVAL", 20.0),
        log_format=_choice(env, "LOG_FORMAT", FORMATS),
        # Mentors are in India: the day a report is named by and shows is India's unless told otherwise.
        report_zone=_zone(env, "REPORT_TIMEZONE", "Asia/Kolkata"),
        storage_env={name: value for name, value in env.items() if name.startswith(CLOUD_PREFIXES)},
        metrics_port=_metrics_port(env, port),
        **_sunbird(env),
        **_redis(env),
    )


def _metrics_port(env: Mapping[str, str], port: int) -> int | None:
    metrics_port = _parsed(env, "METRICS_PORT", int, "a whole number")
    if metrics_port is not None and not 1 <= metrics_port <= 65535:
        raise ConfigError(f"METRICS_PORT must be from 1 to 65535, got {metrics_port}")
    if metrics_port is not None and metrics_port == port:
        raise ConfigError(f"METRICS_PORT must differ from PORT ({port}): metrics are never on the public port")
    return metrics_port


def _sunbird(env: Mapping[str, str]) -> dict[str, object]:
    """The settings of the Sunbird side: the data-exhaust API, its ZIPs, the notification feed, the portal,
    the token key folder."""
    roles = frozenset(role.strip() for role in env.get("REPORT_ROLES", "").split(",") if role.strip())
    cipher = env.get("REPORT_ZIP_ENCRYPTION", "").strip().lower() or "zipcrypto"
    if cipher not in ZIP_CIPHERS:
        raise ConfigError(f"REPORT_ZIP_ENCRYPTION must be one of {', '.join(ZIP_CIPHERS)}, got {cipher!r}")
    notification_url = env.get("SUNBIRD_NOTIFICATION_URL", "").strip() or None
    if notification_url:
        _url(env, "SUNBIRD_NOTIFICATION_URL", notification_url, ("http", "https"))
    portal_url = env.get("PORTAL_URL", "").strip() or None
    if portal_url:
        _url(env, "PORTAL_URL", portal_url, ("http", "https"))
    keys_dir = env.get("JWT_KEYS_DIR", "").strip() or None
    if keys_dir:
        try:
            read_key_folder(keys_dir)
        except KeyFolderError as exc:
            raise ConfigError(f"JWT_KEYS_DIR {exc}") from None
    return {
        "jwt_keys_dir": keys_dir,
        "portal_url": portal_url.rstrip("/") if portal_url else None,
        "report_roles": roles or REPORT_ROLES,
        "zip_encryption": ZIP_CIPHERS[cipher],
        "notification_url": notification_url.rstrip("/") if notification_url else None,
    }


def _redis_url(env: Mapping[str, str], url: str) -> None:
    _url(env, "REDIS_URL", url, ("redis", "rediss", "unix", *sentinel.SCHEMES))
    if sentinel.is_sentinel_url(url):
        try:
            sentinel.parse(url)
        except ValueError as exc:
            raise ConfigError(f"REDIS_URL must look like {sentinel.SHAPE}, but {exc}: {redact(url)!r}") from None


def _redis(env: Mapping[str, str]) -> dict[str, object]:
    """The settings of Redis beside REDIS_URL: the sentinels' password, and how many replicas must hold a
    click or a job's end before it counts (see hub.durability)."""
    timeout_ms = _int(env, "REDIS_WAIT_TIMEOUT", 500)
    if timeout_ms > MAX_WAIT_MS:
        raise ConfigError(f"REDIS_WAIT_TIMEOUT must be at most {MAX_WAIT_MS} (ms), got {timeout_ms}")
    return {
        "redis_sentinel_password": env.get("REDIS_SENTINEL_PASSWORD", "").strip() or None,
        "redis_wait_replicas": _int(env, "REDIS_WAIT_REPLICAS", 0, minimum=0),
        "redis_wait_timeout_ms": timeout_ms,
    }


def require_redis(settings: Settings) -> str:
    if not settings.redis_url:
        raise ConfigError("REDIS_URL must be set (only `hub dev` starts an embedded Valkey)")
    return settings.redis_url


def signs_with_public_keys(settings: Settings) -> bool:
    """With a Keycloak key configured, only its signatures count: an HS256 secret beside it would let
    whoever holds that secret mint any user's token."""
    return bool(settings.jwt_public_key or settings.jwt_jwks or settings.jwt_jwks_url or settings.jwt_keys_dir)


def require_verifier(settings: Settings) -> None:
    """The server must be able to check tokens, with a key nobody else knows, and sign links."""
    if not (settings.jwt_secret or signs_with_public_keys(settings)):
        raise ConfigError(
            "JWT_SECRET, JWT_PUBLIC_KEY, JWT_JWKS, JWT_JWKS_URL or JWT_KEYS_DIR must be set to verify tokens"
        )
    if settings.jwt_secret == DEV_JWT_SECRET:
        raise ConfigError("JWT_SECRET is the development secret that `hub dev` uses; set a secret of your own")
    if settings.jwt_secret and len(settings.jwt_secret) < MIN_SECRET_LENGTH:
        raise ConfigError(f"JWT_SECRET must be at least {MIN_SECRET_LENGTH} characters")
    require_link_secret(settings)


def require_link_secret(settings: Settings) -> None:
    """Local download links are signed with LINK_SECRET, which the hub and every worker hold. It is never
    a token key, so a worker's environment cannot mint a token."""
    if not settings.storage_url.startswith("file:"):
        return  # cloud stores presign their own links
    if not settings.link_secret:
        raise ConfigError("LINK_SECRET must be set to sign download links of local storage (STORAGE_URL=file://)")
    if len(settings.link_secret) < MIN_SECRET_LENGTH:
        raise ConfigError(f"LINK_SECRET must be at least {MIN_SECRET_LENGTH} characters")
    if settings.link_secret == settings.jwt_secret:
        raise ConfigError("LINK_SECRET must differ from JWT_SECRET: a worker must hold nothing that signs a token")


def require_writable(path: str, name: str) -> None:
    """A file the process will append to: its folder must exist (or be made) and take a new file."""
    folder = Path(path).expanduser().resolve().parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise ConfigError(f"{name} names a file that cannot be written: {path} ({exc.strerror})") from None
