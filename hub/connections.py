"""Redis connections of the hub and the worker.

Commands retry with backoff on connection errors, so a Redis restart costs a pause, not a failed click
or a lost event. A worker rides out a restart inside one command (~7 s of retries), and its poll loop
outlasts longer outages. A hub answers a person: it gives up within about a second and says 503, try
again; and since a connection that a proxy or NAT dropped without a word would otherwise hang a request
forever, its reads time out and idle connections are checked before use.
"""

from __future__ import annotations

from arq.connections import ArqRedis, RedisSettings
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError, TimeoutError

RETRY_ON = [ConnectionError, TimeoutError, ConnectionResetError]
PATIENT_RETRIES, PATIENT_BACKOFF_CAP_SECONDS = 8, 2.0
PROMPT_RETRIES, PROMPT_BACKOFF_CAP_SECONDS = 3, 0.4
PROMPT_CONNECT_TIMEOUT_SECONDS = 0.5
# No command of the hub's takes longer; one that does is on a dead connection.
PROMPT_READ_TIMEOUT_SECONDS = 5.0
# A pooled connection idle this long is pinged before it is used again.
HEALTH_CHECK_SECONDS = 15


def redis_settings(url: str) -> RedisSettings:
    """The worker's (arq's) connection settings."""
    settings = RedisSettings.from_dsn(url)
    settings.retry = Retry(ExponentialBackoff(cap=PATIENT_BACKOFF_CAP_SECONDS, base=0.05), PATIENT_RETRIES)
    settings.retry_on_error = RETRY_ON
    settings.conn_retries = PATIENT_RETRIES
    return settings


def prompt_client(url: str, listening: bool = False) -> ArqRedis:
    """The hub's client. One `listening` (the pub/sub connection of `hub.bus`) has no read timeout: it
    waits for messages by design, judges its own liveness by pings, and redis-py's read timeout can
    swallow the cancellation that stops it."""
    timeouts = {} if listening else {"socket_timeout": PROMPT_READ_TIMEOUT_SECONDS,
                                     "health_check_interval": HEALTH_CHECK_SECONDS}  # fmt: skip
    return ArqRedis.from_url(
        url,
        socket_connect_timeout=PROMPT_CONNECT_TIMEOUT_SECONDS,
        retry=Retry(ExponentialBackoff(cap=PROMPT_BACKOFF_CAP_SECONDS, base=0.05), PROMPT_RETRIES),
        retry_on_error=RETRY_ON,
        **timeouts,
    )
