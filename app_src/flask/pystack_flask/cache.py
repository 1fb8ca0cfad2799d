"""Redis cache that degrades to a miss: a Redis that is down or slow never fails a request.

After an error the cache stays off for RETRY_AFTER_SECONDS in this process, so a dead Redis
costs one timeout per worker per interval instead of one per request.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable

import redis

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_SECONDS = 2.0
SOCKET_TIMEOUT_SECONDS = 2.0
RETRY_AFTER_SECONDS = 5.0


def redis_from_url(url: str) -> redis.Redis:
    return redis.Redis.from_url(
        url,
        socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
        socket_timeout=SOCKET_TIMEOUT_SECONDS,
        health_check_interval=30,
    )


def describe_error(exc: BaseException) -> str:
    """One short line for health output and logs: 'error: ConnectionError Error 111 ...'."""
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"error: {type(exc).__name__} {detail}".strip()[:300]


class Cache:
    def __init__(self, client: Any, clock: Callable[[], float] = time.monotonic) -> None:
        # client: a redis.Redis (or fakeredis) instance, or None when no cache is configured.
        self.client = client
        self._clock = clock
        self._off_until = 0.0

    @property
    def enabled(self) -> bool:
        return self.client is not None

    def _usable(self) -> bool:
        return self.client is not None and self._clock() >= self._off_until

    def _failed(self, operation: str, exc: redis.RedisError) -> None:
        self._off_until = self._clock() + RETRY_AFTER_SECONDS
        log.warning(
            "redis cache %s failed, bypassing cache for %.0fs: %s",
            operation,
            RETRY_AFTER_SECONDS,
            describe_error(exc),
        )

    def get(self, key: str) -> bytes | None:
        if not self._usable():
            return None
        try:
            return self.client.get(key)
        except redis.RedisError as exc:
            self._failed("get", exc)
            return None

    def set(self, key: str, value: bytes, ttl: int) -> None:
        if not self._usable():
            return
        try:
            self.client.set(key, value, ex=ttl)
        except redis.RedisError as exc:
            self._failed("set", exc)

    def incr(self, key: str) -> None:
        # Tried even inside the back-off window: a skipped invalidation would serve stale data
        # for a whole TTL, a failed one costs at most one timeout.
        if self.client is None:
            return
        try:
            self.client.incr(key)
        except redis.RedisError as exc:
            self._failed("incr", exc)

    def ping(self) -> str:
        """Health check: bypasses the back-off window so it reports the current state."""
        if self.client is None:
            return "disabled"
        try:
            self.client.ping()
        except redis.RedisError as exc:
            return describe_error(exc)
        self._off_until = 0.0
        return "ok"
