"""A Redis cache that degrades to a miss: a Redis that is down or slow never fails a request.

Django's RedisCache raises redis.ConnectionError / TimeoutError to the caller. This subclass
turns every failure into a miss (get: the default, add/set/touch/delete: nothing stored),
logs one warning and leaves Redis alone for RETRY_AFTER_SECONDS in this process, so a dead
Redis costs one timeout per process per interval instead of one per request. It serves
everything that goes through the "default" alias: the item list, {% cache %} fragments and
cache_page. The socket timeouts come from CACHES[...]["OPTIONS"] (settings.py: 2 s).
"""

from __future__ import annotations

import logging
import time
from functools import partial
from typing import Any, Callable, TypeVar

import redis
from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.redis import RedisCache

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5.0
T = TypeVar("T")

# Back-off deadlines per LOCATION, shared by the per-thread backend instances of a process.
_off_until: dict[str, float] = {}


def describe_error(exc: BaseException) -> str:
    """One short line for health output and logs: 'error: ConnectionError Error 111 ...'."""
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"error: {type(exc).__name__} {detail}".strip()[:300]


class ResilientRedisCache(RedisCache):
    clock: Callable[[], float] = staticmethod(time.monotonic)

    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._location = server if isinstance(server, str) else ",".join(server)

    def _guard(self, operation: str, fallback: T, call: Callable[[], T], *, always: bool = False) -> T:
        # always=True: tried even inside the back-off window (writes that invalidate: a skipped
        # invalidation would serve stale data for a whole TTL, a failed one costs one timeout).
        if not always and self.clock() < _off_until.get(self._location, 0.0):
            return fallback
        try:
            return call()
        except redis.RedisError as exc:
            _off_until[self._location] = self.clock() + RETRY_AFTER_SECONDS
            log.warning(
                "redis cache %s failed, bypassing cache for %.0fs: %s",
                operation,
                RETRY_AFTER_SECONDS,
                describe_error(exc),
            )
            return fallback

    def add(self, key: str, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> bool:
        return self._guard("add", False, partial(super().add, key, value, timeout, version))

    def get(self, key: str, default: Any = None, version: int | None = None) -> Any:
        return self._guard("get", default, partial(super().get, key, default, version))

    def set(self, key: str, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> None:
        self._guard("set", None, partial(super().set, key, value, timeout, version))

    def touch(self, key: str, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> bool:
        return self._guard("touch", False, partial(super().touch, key, timeout, version))

    def delete(self, key: str, version: int | None = None) -> bool:
        return self._guard("delete", False, partial(super().delete, key, version), always=True)

    def get_many(self, keys: Any, version: int | None = None) -> dict[str, Any]:
        return self._guard("get_many", {}, partial(super().get_many, keys, version))

    def has_key(self, key: str, version: int | None = None) -> bool:
        return self._guard("has_key", False, partial(super().has_key, key, version))

    def set_many(
        self, data: dict[str, Any], timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> list[str]:
        return self._guard("set_many", list(data), partial(super().set_many, data, timeout, version))

    def delete_many(self, keys: Any, version: int | None = None) -> None:
        self._guard("delete_many", None, partial(super().delete_many, keys, version), always=True)

    def bump(self, key: str) -> None:
        """INCR a counter, creating it at 1 (the generation key of the item list: see items/views.py).

        Django's incr() refuses a missing key (EXISTS then INCRBY); a plain INCR creates it,
        in one round trip, like the Flask app. Never expires: it must outlive the entries it names.
        """
        redis_key = self.make_and_validate_key(key)
        self._guard(
            "incr", None, lambda: self._cache.get_client(redis_key, write=True).incr(redis_key), always=True
        )

    def ping(self) -> str:
        """Health check: bypasses the back-off window so it reports the current state."""
        try:
            self._cache.get_client(write=True).ping()
        except redis.RedisError as exc:
            return describe_error(exc)
        _off_until.pop(self._location, None)
        return "ok"
