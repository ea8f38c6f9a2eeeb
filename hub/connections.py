"""Redis connection settings shared by the hub and the worker.

Commands retry with backoff on connection errors, so a Redis restart costs a pause, not a failed click
or a lost event.
"""

from __future__ import annotations

from arq.connections import RedisSettings
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError, TimeoutError

RETRIES = 8


def redis_settings(url: str) -> RedisSettings:
    settings = RedisSettings.from_dsn(url)
    settings.retry = Retry(ExponentialBackoff(cap=2.0, base=0.05), RETRIES)
    settings.retry_on_error = [ConnectionError, TimeoutError, ConnectionResetError]
    settings.conn_retries = RETRIES
    return settings
