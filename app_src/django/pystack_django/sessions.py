"""SESSION_ENGINE for REDIS_SESSION_URL: Django's cache sessions, visible when Redis is down.

The "sessions" cache alias is a plain RedisCache on the durable Redis instance (noeviction,
AOF). Django's cache session store reads a failing Redis as an empty session, which would
silently log a user out and forget what the request stores. Here a session store that does
not answer is an error the client sees: reading or saving the session raises
DependencyUnavailable, which handler500 (pystack_django.errors) answers with a JSON 503 and
Retry-After. Django reads Redis only when a view touches request.session, so endpoints that
never use it keep serving.
"""

from __future__ import annotations

from typing import Any

import redis
from django.contrib.sessions.backends.cache import SessionStore as CacheSessionStore

from .cache import describe_error
from .errors import DependencyUnavailable


class SessionStore(CacheSessionStore):
    def load(self) -> dict[str, Any]:
        # Django's own, but a Redis error is not read as "no such session".
        try:
            session_data = self._cache.get(self.cache_key)
        except redis.RedisError as exc:
            raise DependencyUnavailable("session store", describe_error(exc)) from exc
        if session_data is not None:
            return session_data
        self._session_key = None
        return {}

    def exists(self, session_key: str) -> bool:
        try:
            return super().exists(session_key)
        except redis.RedisError as exc:
            raise DependencyUnavailable("session store", describe_error(exc)) from exc

    def save(self, must_create: bool = False) -> None:
        try:
            super().save(must_create=must_create)
        except redis.RedisError as exc:
            raise DependencyUnavailable("session store", describe_error(exc)) from exc

    def delete(self, session_key: str | None = None) -> None:
        try:
            super().delete(session_key)
        except redis.RedisError as exc:
            raise DependencyUnavailable("session store", describe_error(exc)) from exc
