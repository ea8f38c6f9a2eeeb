"""Redis connection settings shared by the hub and the worker.

Commands retry with backoff on connection errors, so a Redis restart costs a pause, not a failed click
or a lost event.
"""

from __future__ import annotations

from arq.connections import RedisSettings
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError, TimeoutError

# A worker rides out a Redis restart inside one command (~7 s of retries); its poll loop outlasts longer
# outages. A hub answers a person: it gives up within about a second and says 503, try again.
PATIENT_RETRIES, PATIENT_BACKOFF_CAP_SECONDS = 8, 2.0
PROMPT_RETRIES, PROMPT_BACKOFF_CAP_SECONDS = 3, 0.4
PROMPT_CONNECT_TIMEOUT_SECONDS = 0.5


def redis_settings(url: str, patient: bool = True) -> RedisSettings:
    settings = RedisSettings.from_dsn(url)
    retries, cap = (
        (PATIENT_RETRIES, PATIENT_BACKOFF_CAP_SECONDS) if patient else (PROMPT_RETRIES, PROMPT_BACKOFF_CAP_SECONDS)
    )
    settings.retry = Retry(ExponentialBackoff(cap=cap, base=0.05), retries)
    settings.retry_on_error = [ConnectionError, TimeoutError, ConnectionResetError]
    settings.conn_retries = PATIENT_RETRIES
    if not patient:
        settings.conn_timeout = PROMPT_CONNECT_TIMEOUT_SECONDS
    return settings
